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

from pipeline.configs import PipelineConfig
from rw_tf.data.corpus import embedded_corpus, read_text_files
from rw_tf.data.jsonl import columns_to_rows, write_jsonl
from rw_tf.data.labelled import documentation_source_examples
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.tokenization import learn_vocabulary, write_vocabulary


def prepare_data(config: PipelineConfig, corpus_files: Sequence[str] = ()) -> Dict[str, str]:
    paths = {"pretrain": os.path.join(config.examples_dir("pretrain"), "pairs.jsonl"),
             "finetune": os.path.join(config.examples_dir("finetune"), "labelled.jsonl"),
             "vocab": config.vocab_file}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
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
