"""Prepares the pipelines' inputs from the embedded corpus (or the user's text files).

Writes, under ``config.data_dir``:
- ``pretrain/pairs.jsonl``: candidate segment pairs (``text_a``, ``text_b``, ``text_random``, ``doc_id``);
- ``finetune/labelled.jsonl``: the documentation-source classification set (``text``, ``label``);
- ``vocab.txt``: a WordPiece vocabulary learned from the pretraining documents. Transform embeds
  it in the transform graph as an asset; fine-tuning uses the same file so ids match the encoder.
Existing files are kept (ExampleGen fingerprints its inputs, so rewriting would defeat caching).
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

from rw_tf.data.corpus import embedded_corpus, read_text_files
from rw_tf.data.jsonl import columns_to_rows, write_jsonl
from rw_tf.data.labelled import documentation_source_examples
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.tokenization import learn_vocabulary, write_vocabulary
from rw_tf_pipeline.configs import PipelineConfig


def _prepare_nations_knowledge(config: PipelineConfig):
    """The Nations domain demo: its documents, an alias table and a TransE model (train triples)."""
    from rw_tf.knowledge.demo import nations_demo
    from rw_tf.knowledge.training import TransEConfig, train_transe

    demo = nations_demo(seed=config.seed)
    if not os.path.exists(config.alias_file):
        os.makedirs(os.path.dirname(config.alias_file), exist_ok=True)
        with open(config.alias_file, "w", encoding="utf-8") as f:
            f.writelines(f"{alias}\t{alias}\n" for alias in sorted(demo.alias_to_entity))
    if not os.path.exists(os.path.join(config.knowledge_dir, "transe.keras")):
        train_transe(TransEConfig(dataset="nations", embedding_dim=32, epochs=100, seed=config.seed),
                     config.knowledge_dir, verbose=0)
    return demo.train_documents


def prepare_data(config: PipelineConfig, corpus_files: Sequence[str] = ()) -> Dict[str, str]:
    paths = {"pretrain": os.path.join(config.examples_dir("pretrain"), "pairs.jsonl"),
             "finetune": os.path.join(config.examples_dir("finetune"), "labelled.jsonl"),
             "vocab": config.vocab_file}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    if config.corpus == "nations":
        docs = _prepare_nations_knowledge(config)
    else:
        docs = read_text_files(corpus_files) if corpus_files else embedded_corpus(max_documents=config.max_documents)
    if not os.path.exists(paths["vocab"]):
        os.makedirs(config.data_dir, exist_ok=True)
        write_vocabulary(learn_vocabulary((s for d in docs for s in d), config.vocab_size), paths["vocab"])
    if not os.path.exists(paths["pretrain"]):
        pairs = segment_pair_candidates(docs, config.target_words, config.seed)
        write_jsonl(columns_to_rows(pairs), paths["pretrain"])
    if not os.path.exists(paths["finetune"]):
        write_jsonl(documentation_source_examples(config.finetune_max_per_class, seed=config.seed),
                    paths["finetune"])
    return paths
