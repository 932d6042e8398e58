"""Prepares the pipelines' inputs (the pipeline's first step, ``PrepareData``; also ``rw-tf pipeline
prepare``). Writes, under ``config.data_dir`` (a local folder or a URI such as gs://...), what the
pipeline kind reads (``KIND_DATA``: fine-tuning also the pretraining data, for their vocabulary;
``all`` everything but the qa and domain kinds'):
- ``pretrain/{train,eval}/pairs.jsonl``: candidate segment pairs (``text_a``, ``text_b``,
  ``text_random``, ``doc_id``). Exact-duplicate sentences are removed first, then whole documents
  are assigned to train or eval (``eval_fraction``) *before* pairs are built, so no evaluation
  segment occurs in training (ExampleGen reads the two folders as the two splits);
- ``finetune/{train,eval}/labelled.jsonl``: the documentation-source classification set (every text
  distinct), cut 80/20, or the rows of ``finetune_train_file`` and ``finetune_eval_file`` (bad ones
  counted by reason in ``finetune_rows_rejected``); an eval text seen in training is removed;
- ``embedding/{train,eval}/pairs.jsonl``: standard-library docstring (query, item) pairs (or the
  rows of ``embedding_pairs_file``, bad ones counted) split by module (or ``group``; no group on
  both sides), each with a hard negative (another item of its module); in
  both sets an evaluation row that repeats a training text anyway (a docstring copied into two
  modules) is removed and counted (``embedding_rows_rejected`` in the report);
- ``recommendation/{train,eval}/examples.jsonl`` (``user``, ``history``: space-separated item ids,
  ``item``) and ``recommendation/items.{txt,jsonl}``: the standard library's import graph (or the
  catalogue and histories of ``recommendation_items_file`` and ``recommendation_interactions_file``),
  leave-one-out (``rw_tf.data.interactions``): training rows are prefix -> next item within each
  user's history without its last two items, eval rows the last item after the rest; what was left
  out (unusable rows, merged identical histories, held-out cases seen in training) is counted in
  ``recommendation_rows_rejected``;
- ``multimodal/{train,eval}/pairs.jsonl``: scikit-learn's handwritten digits (or the pairs of
  ``multimodal_pairs_file``) as PNG bytes (``{"b64": ...}``) with a caption, the caption of an
  image of another class and the class, split by image (``rw_tf.data.image_text``); rows that
  cannot be used and images failing the header checks are counted (``multimodal_rows_rejected``);
- ``qa/{train,eval}/examples.jsonl`` (``question``, ``context``, ``answer``, ``answer_start``; kind
  ``qa`` only, ``prepare_qa_data``): the docstring glossary questions split by module (or the rows
  of ``qa_train_file`` and ``qa_eval_file``, bad ones counted by reason), an eval row
  whose context is a training context removed, rows the window geometry cannot hold (with the
  encoder's tokenizer) left out; counts in ``qa/qa_report.json``;
- ``vocab.txt``: a WordPiece vocabulary learned from the training documents; Transform embeds it
  in the transform graph, and fine-tuning uses the same file so ids match the encoder;
- ``data_report.json``: what was read, removed (by reason) and written;
- knowledge mode with the Nations demo: ``aliases.tsv`` and a TransE model in ``transe/``.
Existing outputs are kept (ExampleGen fingerprints its inputs, so rewriting would defeat caching)
unless their corpus source or a setting that shapes them changed (``PRETRAINING_DATA_SETTINGS``,
``TASK_DATA_SETTINGS``, the qa and domain kinds' own, a user's file: ``inputs_state``; ``_up_to_date``).
Corpus ``web`` (the default): the documents of the refined web corpus, i.e. the pipeline's
``RefineWebData`` output (``refined_corpus``) or, without that step, a refinement of
``web_inputs`` run here (``rw_tf.refine``; empty ``web_inputs``: the embedded web sample).
"""
from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from rw_tf.atomic_write import atomic_write
from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_tokenizer
from rw_tf.data.corpus import (
    SplitCounts,
    check_enough_documents,
    documents_from_texts,
    embedded_corpus,
    read_text_files,
)
from rw_tf.data.image_text import load_image_caption_pairs, split_pairs
from rw_tf.data.interactions import load_interactions
from rw_tf.data.jsonl import columns_to_rows, write_jsonl
from rw_tf.data.labelled import docstring_summary_pairs
from rw_tf.data.multilingual import multilingual_documents
from rw_tf.data.qa_windows import WindowSpec
from rw_tf.data.segment_pairs import segment_pair_candidates, yields_pairs
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_by_group, split_documents
from rw_tf.data.transform_fns import QA_FEATURES
from rw_tf.errors import CorruptFileError, UserError
from rw_tf.knowledge.demo import nations_demo, triple_classification_rows
from rw_tf.knowledge.training import TransEConfig, train_transe
from rw_tf.model_files import read_json_object
from rw_tf.refine import RefineConfig, RunnerConfig, read_refined_documents, run_refinement
from rw_tf.refine.web_sample import write_web_sample
from rw_tf.tasks.classification import ClassificationTaskConfig, count_classes, load_rows
from rw_tf.tasks.image_text import other_class_rows
from rw_tf.tasks.question_answering import QATaskConfig, load_qa_rows, windowable_rows
from rw_tf.tasks.retrieval import read_pairs
from rw_tf.tasks.sentence_embedding import with_hard_negatives
from rw_tf.tokenization import learn_vocabulary, write_vocabulary
from rw_tf_pipeline.configs import STAGES, PipelineConfig, is_remote

SPLITS = ("train", "eval")
REFINEMENT_KEY_FILE = "refinement_key.txt"     # in a RefineWebData output: its refinement_key
REFINEMENT_RECORD = "refine_web_step.json"     # under the data root: the step's newest output and key


DATA_KINDS = STAGES + ("embedding", "recommendation", "multimodal")
# The data each pipeline kind's PrepareData writes (fine-tuning reads the pretraining vocabulary).
KIND_DATA = {"pretrain": ("pretrain",), "finetune": STAGES, "recipe": STAGES, "embedding": ("embedding",),
             "recommendation": ("recommendation",), "multimodal": ("multimodal",), "all": DATA_KINDS}
# The settings and user files that shape each kind's data: a change rewrites them (the qa and domain
# kinds keep theirs in prepare_qa_data and prepare_domain_data).
PRETRAINING_DATA_SETTINGS = ("seed", "eval_fraction", "vocab_size", "target_words", "max_documents")
TASK_DATA_SETTINGS = {"finetune": ("seed", "finetune_max_per_class", "finetune_train_file", "finetune_eval_file"),
                      "embedding": ("seed", "embedding_max_pairs", "embedding_pairs_file"),
                      "recommendation": ("seed", "recommendation_items_file", "recommendation_interactions_file"),
                      "multimodal": ("seed", "multimodal_eval_fraction", "multimodal_pairs_file")}
_FILE_NAMES = {"finetune": "labelled.jsonl", "triples": "labelled.jsonl", "recommendation": "examples.jsonl",
               "qa": "examples.jsonl"}


def input_file(config: PipelineConfig, kind: str, split: str) -> str:
    return os.path.join(config.examples_dir(kind), split, _FILE_NAMES.get(kind, "pairs.jsonl"))


def _write_interactions(config: PipelineConfig, paths: Dict[str, str]) -> Dict:
    files = (config.recommendation_items_file, config.recommendation_interactions_file)
    data, rejects = load_interactions(*files)
    loo = data.leave_one_out(config.seed)
    if not loo.examples or not loo.test:
        with _data_of("recommendation", *files):
            raise ValueError(f"no usable users (train rows {len(loo.examples)}, eval rows {len(loo.test)}; "
                             f"{len(data.histories)} users; rejected {rejects})")
    counts = collections.Counter(t for _, t in loo.examples)
    with atomic_write(config.items_file) as f:
        f.write("".join(f"{item}\n" for item in data.items))
    write_jsonl([{"item": i, "text": t, "train_count": counts[n]} for n, (i, t) in
                 enumerate(zip(data.items, data.item_texts))], config.items_file[:-len(".txt")] + ".jsonl")
    rows = lambda cases: [{"user": f"u{n}", "history": " ".join(data.items[i] for i in h), "item": data.items[t]}
                          for n, (h, t) in enumerate(cases)]
    return {"recommendation_train": write_jsonl(rows(loo.examples), paths["recommendation/train"]),
            "recommendation_eval": write_jsonl(rows(loo.test), paths["recommendation/eval"]),
            "recommendation_rows_rejected": {**rejects, **loo.removed}}


def _write_image_text(config: PipelineConfig, paths: Dict[str, str]) -> Dict:
    with _data_of("multimodal", config.multimodal_pairs_file):
        rows, rejected = load_image_caption_pairs(config.multimodal_pairs_file)
        train, evaluation = split_pairs(rows, config.multimodal_eval_fraction, config.seed)
        rng = np.random.default_rng(config.seed)
        splits = {split: (split_rows, other_class_rows(np.array([r["label"] for r in split_rows]), rng))
                  for split, split_rows in (("train", train), ("eval", evaluation))}
    report = {"multimodal_rows_rejected": rejected}
    for split, (split_rows, negatives) in splits.items():
        report[f"multimodal_{split}"] = write_jsonl(
            [{"image": {"b64": base64.b64encode(r["image"]).decode("ascii")}, "caption": r["caption"],
              "negative_caption": split_rows[j]["caption"], "label": r["label"]}
             for r, j in zip(split_rows, negatives)], paths[f"multimodal/{split}"])
    return report


def _nations_knowledge(alias_file: str, knowledge_dir: str, seed: int, owned: bool = True):
    """The Nations domain demo with its alias table and a TransE model (train triples) written: a
    missing model is trained, and one PrepareData trained with another seed (``owned``: not a
    model the user put in ``knowledge_dir``) is trained again."""
    demo = nations_demo(seed=seed)
    if not tf.io.gfile.exists(alias_file):
        with atomic_write(alias_file) as f:
            f.write("".join(f"{alias}\t{alias}\n" for alias in sorted(demo.alias_to_entity)))
    transe = TransEConfig(dataset="nations", embedding_dim=32, epochs=100, seed=seed)
    if tf.io.gfile.exists(os.path.join(knowledge_dir, "transe.keras")):
        trained_with = _read_report(os.path.join(knowledge_dir, "metrics.json")).get("config")
        if not owned or trained_with == json.loads(json.dumps(dataclasses.asdict(transe))):
            return demo
    train_transe(transe, knowledge_dir, verbose=0)
    return demo


def _nations_documents(config: PipelineConfig):
    owned = config.knowledge_dir == os.path.join(config.data_dir, "transe")   # validate()'s default
    return _nations_knowledge(config.alias_file, config.knowledge_dir, config.seed, owned).train_documents


def prepare_domain_data(config: PipelineConfig) -> Dict[str, str]:
    """The domain kind's inputs: ``domain/{train,eval}/pairs.jsonl`` (segment pairs of the Nations
    text; evaluation text states only the held-out test facts), ``triples/{train,eval}/labelled.jsonl``
    (triple classification: facts and filtered corruptions, test facts only in eval) and the alias
    table + TransE model in ``nations_kg/``. No vocabulary: the general model's is used."""
    paths = {f"{kind}/{split}": input_file(config, kind, split) for kind in ("domain", "triples") for split in SPLITS}
    paths["report"] = os.path.join(config.examples_dir("domain"), "domain_report.json")
    knowledge = config.domain_knowledge()
    demo = _nations_knowledge(knowledge["alias_file"], knowledge["knowledge_dir"], config.seed)
    settings = {"seed": config.seed, "domain_target_words": config.domain_target_words}
    if _up_to_date(paths, settings):
        return paths
    report = {"settings": settings}
    for split, docs, seed in (("train", demo.train_documents, config.seed), ("eval", demo.eval_documents,
                                                                              config.seed + 1)):
        pairs = segment_pair_candidates(docs, config.domain_target_words, seed)
        report[f"domain_{split}_pairs"] = write_jsonl(columns_to_rows(pairs), paths[f"domain/{split}"])
    train_rows, eval_rows = triple_classification_rows(demo, seed=config.seed)
    report["triples_train"] = write_jsonl(train_rows, paths["triples/train"])
    report["triples_eval"] = write_jsonl(eval_rows, paths["triples/eval"])
    _write_report(paths["report"], report)
    return paths


def prepare_qa_data(config: PipelineConfig) -> Dict[str, str]:
    """The qa kind's inputs (see the module docstring); rewritten when the encoder, the window
    geometry or the seed changed, since each decides which rows fit."""
    paths = {f"qa/{split}": input_file(config, "qa", split) for split in SPLITS}
    paths["report"] = _qa_report(config)
    settings = {"init_from": config.qa_init_from, "seed": config.seed, **config.qa_windows(),
                "data": inputs_state([path for path in (config.qa_train_file, config.qa_eval_file) if path])}
    if _up_to_date(paths, settings):
        return paths
    source = QATaskConfig(train_file=config.qa_train_file, eval_file=config.qa_eval_file, max_eval_examples=None)
    with _data_of("qa", config.qa_train_file, config.qa_eval_file):
        train, evaluation, rejects = load_qa_rows(source, config.seed)
    report = {"settings": settings}
    tokenizer = pretrained_tokenizer(config.qa_init_from or minilm_checkpoint_dir())
    spec = WindowSpec(**config.qa_windows())
    for split, rows in (("train", train), ("eval", evaluation)):
        rejected = collections.Counter()
        rows = windowable_rows(tokenizer, rows, spec, rejected)
        report[f"qa_{split}"] = write_jsonl([{k: r[k] for k in QA_FEATURES} for r in rows], paths[f"qa/{split}"])
        report[f"qa_{split}_rejected"] = dict(rejected)
        rejects.update(rejected)
    report["qa_rows_rejected"] = dict(rejects)
    _write_report(paths["report"], report)
    return paths


def prepare_kind_data(config: PipelineConfig, kind: str, refined_corpus: Optional[str] = None) -> Dict[str, str]:
    """What the pipeline ``kind`` reads (``all``: the main job's and the other kinds' but the domain's and qa's)."""
    if kind == "domain":
        return prepare_domain_data(config)
    if kind == "qa":
        return prepare_qa_data(config)
    return prepare_data(config, refined_corpus, KIND_DATA[kind])


def _qa_report(config: PipelineConfig) -> str:
    return os.path.join(config.examples_dir("qa"), "qa_report.json")


def rows_rejected(config: PipelineConfig, kind: str) -> Tuple[Dict[str, int], Optional[str]]:
    """What PrepareData left out of kind ``kind``'s examples, by reason (unreadable rows of the
    user's files, eval rows repeating training text, rows the model cannot take), and the report
    that says so; empty for kinds whose data are built from a corpus rather than read as rows."""
    report = _qa_report(config) if kind == "qa" else data_paths(config)["report"]
    counts = _read_report(report).get(f"{kind}_rows_rejected") or {}
    return {reason: n for reason, n in counts.items() if n}, report


def inputs_state(paths: Sequence[str]) -> str:
    """A digest of the files ``paths`` (names or glob patterns, local or gs://...) name: each one's
    path, size and modification time, so that it changes when one is edited, added or removed."""
    digest = hashlib.sha256()
    for pattern in paths:
        is_pattern = any(c in pattern for c in "*?[") and not tf.io.gfile.exists(pattern)   # as text_files reads it
        matches = tf.io.gfile.glob(pattern) if is_pattern else []
        for path in sorted(matches) or [pattern]:
            try:
                stat = tf.io.gfile.stat(path)
                digest.update(f"{path}\t{stat.length}\t{stat.mtime_nsec}\n".encode("utf-8", "surrogateescape"))
            except tf.errors.NotFoundError:   # the step that reads it says so
                digest.update(f"{path}\tmissing\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def corpus_source(config: PipelineConfig, refined_corpus: Optional[str]) -> str:
    """What the pretraining data are made of; a change of it (an edited corpus file too) rewrites
    them and the vocabulary. A RefineWebData output is named by its ``refinement_key``, so an
    output copied from an earlier step's (same inputs, same settings) keeps the data."""
    if config.corpus_uris:
        return f"files:{sorted(config.corpus_uris)}:{inputs_state(config.corpus_uris)}"
    if config.refines_web:
        folder = refined_corpus or config.refined_web_dir
        key = recorded_refinement_key(folder)
        return f"web:refinement {key}" if key else f"web:{folder}"
    return config.corpus if config.corpus != "embedded" else f"embedded:{config.max_documents}"


def refined_web_corpus(config: PipelineConfig, refined_corpus: Optional[str], counts: SplitCounts):
    """Documents of the refined web corpus: the RefineWebData step's output, or (``rw-tf pipeline
    prepare`` without the step) a refinement of ``web_inputs`` run here into ``refined_web_dir``.
    In text order: the refinement shards documents by id, and ids carry input paths (the embedded
    sample's lie under the run folder), so file order would make the seeded split, the vocabulary
    and the model depend on where the run folder is."""
    if refined_corpus is None:
        refined_corpus = config.refined_web_dir
        if not tf.io.gfile.exists(os.path.join(refined_corpus, "report.json")):
            refine_web(config, refined_corpus)
    return documents_from_texts(sorted(d["text"] for d in read_refined_documents(refined_corpus)), counts=counts)


def refine_web(config: PipelineConfig, output_dir: str, pipeline=None) -> Dict:
    """Runs the refinement of ``config.web_inputs`` (empty: the embedded web sample) into ``output_dir``."""
    inputs, refine = list(config.web_inputs), RefineConfig.from_dict(config.refine_config, "refine_config")
    if not inputs:
        sample_dir = os.path.join(output_dir, "web") if not is_remote(output_dir) else tempfile.mkdtemp()
        sample = write_web_sample(sample_dir)
        inputs = sample["inputs"]
        if refine.url_filter.blocklist_file is None:
            refine = dataclasses.replace(refine, url_filter=dataclasses.replace(
                refine.url_filter, blocklist_file=sample["blocklist_file"]))
    return run_refinement(inputs, output_dir, refine, RunnerConfig(workers=config.beam_direct_num_workers),
                          pipeline=pipeline)


def refinement_key(config: PipelineConfig) -> str:
    """What a refinement's documents depend on: the web inputs (their names, sizes and times,
    ``inputs_state``; none: the embedded sample) and ``refine_config``. The refinement is
    deterministic, so equal keys mean equal documents."""
    inputs = sorted(config.web_inputs)
    material = {"web_inputs": inputs, "inputs_state": inputs_state(inputs) if inputs else "embedded web sample",
                "refine_config": config.refine_config}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recorded_refinement_key(folder: str) -> Optional[str]:
    """The ``refinement_key`` a finished RefineWebData output holds (None: none, or unfinished)."""
    key_file = os.path.join(folder, REFINEMENT_KEY_FILE)
    if not (tf.io.gfile.exists(key_file) and tf.io.gfile.exists(os.path.join(folder, "report.json"))):
        return None
    with tf.io.gfile.GFile(key_file, "rb") as f:
        return f.read(64).decode("utf-8", "replace").strip() or None   # garbage matches no key


def refine_web_step(config: PipelineConfig, output_dir: str, pipeline=None) -> Tuple[Dict, bool]:
    """The RefineWebData step: refines ``web_inputs`` into ``output_dir``, or copies the newest
    earlier output of the step under this data root when it has the same ``refinement_key``.
    A compiled Kubeflow spec runs the step uncached (its cache key holds the URIs, not the files
    they name), so a scheduled run refines new web files, and only them changing costs a refinement.
    Returns the report and whether it was copied."""
    key, record = refinement_key(config), os.path.join(config.data_dir, REFINEMENT_RECORD)
    try:
        previous = _read_report(record).get("output")
    except CorruptFileError:   # the step's own bookkeeping: refine, and write it again
        previous = None
    copied = isinstance(previous, str) and recorded_refinement_key(previous) == key
    if copied and previous != output_dir:
        _copy_folder(previous, output_dir)
    elif not copied:
        refine_web(config, output_dir, pipeline)
        with atomic_write(os.path.join(output_dir, REFINEMENT_KEY_FILE)) as f:
            f.write(key + "\n")
    _write_report(record, {"refinement_key": key, "output": output_dir})
    return read_json_object(os.path.join(output_dir, "report.json"), "refinement report"), copied


def _copy_folder(source: str, destination: str) -> None:
    """Copies the files under ``source`` to the same places under ``destination`` (local or URIs)."""
    for folder, _, files in tf.io.gfile.walk(source):
        target = os.path.join(destination, os.path.relpath(folder, source))
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)


def _corpus_documents(config: PipelineConfig, refined_corpus: Optional[str], counts: SplitCounts):
    if config.corpus_uris:
        return read_text_files(config.corpus_uris, counts=counts)
    if config.refines_web:
        return refined_web_corpus(config, refined_corpus, counts)
    if config.corpus == "nations":
        return _nations_documents(config)
    if config.corpus == "multilingual":
        return [sentences for _, sentences in multilingual_documents()]
    return embedded_corpus(max_documents=config.max_documents, counts=counts)


def _write_corpus_data(config: PipelineConfig, paths: Dict[str, str], refined_corpus: Optional[str]) -> Dict:
    """Pretraining pairs and the vocabulary, from the configured corpus (see the module docstring)."""
    split_drops = SplitCounts()
    docs = _corpus_documents(config, refined_corpus, split_drops)
    check_enough_documents(docs, split_drops)
    report = {"corpus_source": corpus_source(config, refined_corpus), "documents_read": len(docs),
              "sentences_read": sum(len(d) for d in docs), "dropped_while_splitting": dict(split_drops)}
    train_docs, eval_docs, removed = split_documents(
        docs, config.eval_fraction, config.seed, usable=lambda doc: yields_pairs(doc, config.target_words))
    report.update(removed=removed, train_documents=len(train_docs), eval_documents=len(eval_docs))
    tf.io.gfile.makedirs(config.data_dir)
    write_vocabulary(learn_vocabulary((s for d in train_docs for s in d), config.vocab_size), paths["vocab"])
    for split, split_docs, seed in (("train", train_docs, config.seed), ("eval", eval_docs, config.seed + 1)):
        pairs = segment_pair_candidates(split_docs, config.target_words, seed)
        report[f"{split}_pairs"] = write_jsonl(columns_to_rows(pairs), paths[f"pretrain/{split}"])
    return report


def _write_finetune(config: PipelineConfig, paths: Dict[str, str]) -> Dict:
    report = {}
    source = ClassificationTaskConfig(train_file=config.finetune_train_file, eval_file=config.finetune_eval_file,
                                      **({} if config.finetune_train_file else
                                         {"max_examples_per_class": config.finetune_max_per_class}))
    with _data_of("finetune", config.finetune_train_file, config.finetune_eval_file):
        train, evaluation, report["finetune_rows_rejected"] = load_rows(source, config.seed)
        count_classes(train + evaluation, multi_label=False, num_classes=2)   # the kind's schema and gates are binary
    for split, rows in (("train", train), ("eval", evaluation)):
        report[f"finetune_{split}"] = write_jsonl([{"text": r["text"], "label": r["label"]} for r in rows],
                                                  paths[f"finetune/{split}"])
    return report


def _write_embedding(config: PipelineConfig, paths: Dict[str, str]) -> Dict:
    report, rejects = {}, collections.Counter()
    if config.embedding_pairs_file:
        pairs, rejects = read_pairs(config.embedding_pairs_file)
    else:
        pairs = docstring_summary_pairs(config.embedding_max_pairs, seed=config.seed)
    train_pairs, eval_pairs = split_by_group(pairs)
    eval_pairs = drop_eval_rows_seen_in_training(train_pairs, eval_pairs, ["query", "item"], rejects)
    if not train_pairs or not eval_pairs:
        with _data_of("embedding", config.embedding_pairs_file):
            raise ValueError(f"no usable rows (train {len(train_pairs)}, eval {len(eval_pairs)}; "
                             f"rejected {dict(rejects)})")
    report["embedding_rows_rejected"] = dict(rejects)
    for split, pairs in (("train", train_pairs), ("eval", eval_pairs)):
        report[f"embedding_{split}"] = write_jsonl(with_hard_negatives(pairs, config.seed), paths[f"embedding/{split}"])
    return report


TASK_DATA_WRITERS = {"finetune": _write_finetune, "embedding": _write_embedding,
                     "recommendation": _write_interactions, "multimodal": _write_image_text}


def data_paths(config: PipelineConfig) -> Dict[str, str]:
    paths = {f"{kind}/{split}": input_file(config, kind, split) for kind in DATA_KINDS for split in SPLITS}
    paths["vocab"] = config.vocab_file
    paths["items"] = config.items_file
    paths["report"] = os.path.join(config.data_dir, "data_report.json")
    return paths


def _up_to_date(paths: Dict[str, str], settings: Dict, key: str = "settings") -> bool:
    """Whether the outputs in ``paths`` exist and the report (``paths["report"]``) says they were
    written with ``settings``: a changed setting (a seed, a size, an edited input file) rewrites them
    rather than being ignored."""
    return (all(tf.io.gfile.exists(p) for p in paths.values())
            and _read_report(paths["report"]).get(key) == json.loads(json.dumps(settings)))


class UnusableDataError(UserError, ValueError):
    """Data a pipeline kind cannot train on (no usable rows, a label its schema does not allow): a
    user error in ``pipeline run`` as in ``pipeline prepare`` (exit 2), not a failed step."""


@contextlib.contextmanager
def _data_of(kind: str, *files: Optional[str]) -> Iterator[None]:
    """Names the data a ``ValueError`` is about (which kind, which of the user's files)."""
    try:
        yield
    except ValueError as err:
        named = " and ".join(f for f in files if f) or "the built-in set"
        raise UnusableDataError(f"the {kind} kind's data ({named}): {err}") from None


def _read_report(path: str) -> Dict:
    return read_json_object(path, "data report") if tf.io.gfile.exists(path) else {}


def _write_report(path: str, report: Dict) -> None:
    with atomic_write(path) as f:
        json.dump(report, f, indent=2)


def prepare_pretraining_data(config: PipelineConfig, refined_corpus: Optional[str] = None) -> bool:
    """Writes the pretraining pairs and the vocabulary if they are missing, or their corpus source
    (a new refinement) or a setting that shapes them changed; a pipeline without a RefineWebData step
    (``refined_corpus`` None) keeps the refined corpus already prepared. Returns whether anything
    was written."""
    paths = data_paths(config)
    report = _read_report(paths["report"])
    source, recorded = corpus_source(config, refined_corpus), report.get("corpus_source")
    if config.refines_web and refined_corpus is None and str(recorded).startswith("web:"):
        source = recorded
    settings = {"corpus_source": source, **{k: getattr(config, k) for k in PRETRAINING_DATA_SETTINGS}}
    if _up_to_date({k: paths[k] for k in ("pretrain/train", "pretrain/eval", "vocab", "report")}, settings,
                   "pretraining_settings"):
        return False
    report.update(_write_corpus_data(config, paths, refined_corpus))
    report["pretraining_settings"] = {**settings, "corpus_source": report["corpus_source"]}
    _write_report(paths["report"], report)
    return True


def prepare_data(config: PipelineConfig, refined_corpus: Optional[str] = None,
                 kinds: Sequence[str] = DATA_KINDS) -> Dict[str, str]:
    """Writes the data of ``kinds`` that are missing or stale (see the module docstring); returns
    their paths and the report's."""
    paths = data_paths(config)
    if "pretrain" in kinds:
        prepare_pretraining_data(config, refined_corpus)
    for kind in kinds:
        if kind == "pretrain":
            continue
        settings = {field: getattr(config, field) for field in TASK_DATA_SETTINGS[kind]}
        settings.update({field: inputs_state([path]) for field, path in settings.items()
                         if field.endswith("_file") and path})   # a file: its state, so an edit counts
        if not _up_to_date(_kind_paths(paths, kind), settings, f"{kind}_settings"):
            written = TASK_DATA_WRITERS[kind](config, paths)
            report = _read_report(paths["report"])
            report.update(written, **{f"{kind}_settings": settings})
            _write_report(paths["report"], report)
    written = {key: path for kind in kinds for key, path in _kind_paths(paths, kind).items() if key != "report"}
    return {**written, "report": paths["report"]}


def _kind_paths(paths: Dict[str, str], kind: str) -> Dict[str, str]:
    """The paths of ``kind``'s data (with the vocabulary for pretraining, the catalogue for
    recommendation) and the report."""
    extra = {"pretrain": ["vocab"], "recommendation": ["items"]}.get(kind, [])
    return {key: paths[key] for key in [f"{kind}/{split}" for split in SPLITS] + extra + ["report"]}
