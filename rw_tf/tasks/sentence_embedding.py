"""Sentence-embedding task: contrastive training (SimCSE or supervised pairs) of a ``SentenceEncoder``.

Modes:
- ``unsupervised`` (SimCSE, Gao et al. 2021): every training text is its own positive, seen twice
  through dropout; the other texts of the global batch are the negatives. Texts: the sentences of
  ``corpus_files`` or of the embedded corpus (the language reference in ``pydoc_data.topics``).
- ``supervised``: (query, item) pairs from ``pairs_file`` (JSON Lines ``query``, ``item``,
  optional ``group``) or the standard library's docstring summary -> body pairs; with
  ``hard_negatives`` each pair also carries the item of another pair from the same group.
Duplicate texts in a batch are masked out of each other's negatives (text ids = string hashes).

Evaluation (before and after training): Spearman against human similarity ratings on the Lee
corpus (``lee_spearman``), and on held-out docstring pairs (modules never used in training; in
unsupervised mode training texts equal to a held-out text are dropped) recall@1/10, NDCG@10, MRR
of each query's item among all held-out items, alignment and uniformity. Export: ``embed_text``.
Inside a TFX Trainer the data are the pipeline's transformed (query, item, negative) examples
(``examples``); evaluation is then the Lee Spearman plus, on the eval split, the share of
queries closer to their item than to the negative (``pair_accuracy``) and the InfoNCE loss.

Example:
    >>> task = SentenceEmbeddingTask(SentenceEmbeddingTaskConfig(mode="unsupervised"))   # doctest: +SKIP
    >>> run_task(task, task.trainer_config(steps_per_epoch=100), "/tmp/simcse")          # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import random
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import DictConfig, check_choice, checks_number_arguments
from rw_tf.data.corpus import SplitCounts, describe_drops, embedded_corpus, read_text_files
from rw_tf.data.labelled import docstring_summary_pairs
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_by_group, text_key
from rw_tf.data.text_inputs import single_segment_encoder, single_segment_inputs, text_ids, with_static_batch
from rw_tf.data.transform_fns import EMBEDDING_VIEWS
from rw_tf.export.base import save_export
from rw_tf.export.sentence_embedding import SentenceEmbeddingExport
from rw_tf.models.sentence_encoder import POOLINGS, SentenceEncoder
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.tasks.embedding_metrics import lee_spearman, pair_metrics
from rw_tf.tasks.retrieval import ranking_metrics, read_pairs
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training.runner import TrainerConfig

MODES = ("unsupervised", "supervised")


@dataclasses.dataclass
class SentenceEmbeddingTaskConfig(DictConfig):
    mode: str = "unsupervised"
    init_from: Optional[str] = None          # default: all-MiniLM-L6-v2
    corpus_files: Sequence[str] = ()         # unsupervised texts (default: the embedded corpus)
    pairs_file: Optional[str] = None         # supervised pairs (default: docstring summary pairs)
    hard_negatives: bool = False
    max_texts: int = 4000
    max_sequence_length: int = 64
    eval_sequence_length: int = 256          # for the Lee documents (news articles of ~100-300 words) only
    max_eval_pairs: int = 600
    dropout: Optional[float] = None          # replaces the checkpoint's (SimCSE's positives need dropout)
    pooling: str = "mean"
    projection_dim: int = 0
    temperature: float = 0.05
    learn_temperature: bool = False
    symmetric: bool = True

    may_be_zero = ("projection_dim",)   # 0: no projection

    def validate(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_choice("pooling", self.pooling, POOLINGS)
        if self.hard_negatives and self.mode != "supervised":
            raise ValueError("hard_negatives needs mode='supervised' (SimCSE's negatives are the other texts)")
        self.require_defaults(["pairs_file"] if self.mode == "unsupervised" else ["corpus_files"],
                              "with mode='supervised'" if self.mode == "unsupervised" else "with mode='unsupervised'")


def with_hard_negatives(pairs: List[Dict], seed: int) -> List[Dict]:
    """Adds ``negative``: the item of another pair of the same group (a random item if the group
    has no other pair); never the pair's own item text."""
    rng = random.Random(seed)
    by_group = collections.defaultdict(list)
    for pair in pairs:
        by_group[pair.get("group", "")].append(pair["item"])
    all_items = [p["item"] for p in pairs]
    out = []
    for pair in pairs:
        candidates = [t for t in by_group[pair.get("group", "")] if t != pair["item"]] or \
                     [t for t in all_items if t != pair["item"]]
        if candidates:
            out.append({**pair, "negative": rng.choice(candidates)})
    return out


@checks_number_arguments()
def embed_texts(model: SentenceEncoder, tokenizer, texts: Sequence[str], max_sequence_length: int,
                batch_size: int = 32, linker=None) -> np.ndarray:
    """Unit vectors [len(texts), dim] of ``texts`` (no dropout); ``linker`` adds entity ids for a
    knowledge-enhanced encoder."""
    if not texts:
        raise ValueError("no texts to embed")
    out = []
    for start in range(0, len(texts), batch_size):
        inputs = single_segment_inputs(tokenizer, tf.constant(list(texts[start:start + batch_size])),
                                       max_sequence_length, linker)
        out.append(np.asarray(model.embed(inputs, training=False)))
    return np.concatenate(out)


def transformed_views(features: Dict[str, tf.Tensor], views: Sequence[str]):
    """Transformed example features -> (``{view: encoder inputs}``, text ids [batch, views])."""
    x = {view: {k: tf.cast(features[f"{view}_{k}"], tf.int32) for k in ENCODER_INPUTS} for view in views}
    ids = tf.stack([tf.cast(features[f"{view}_text_id"], tf.int32) for view in views], axis=1)
    return x, ids


class SentenceEmbeddingTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer."""

    name = "sentence_embedding"
    config_class = SentenceEmbeddingTaskConfig
    trainer_defaults = {"epochs": 1, "steps_per_epoch": 100, "batch_size": 32, "learning_rate": 3e-5,
                        "decay": "constant", "clipnorm": 0.0, "adam_epsilon": 1e-8}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed, self.validation_steps = trainer.seed, trainer.validation_steps
        self.init_from = cfg.init_from or minilm_checkpoint_dir()
        self.max_sequence_length = cfg.max_sequence_length
        if self.examples is not None:
            self.tokenizer = WordPieceTokenizer(self.examples.vocab_file, lower_case=True)
            self.max_sequence_length = self.examples.max_sequence_length
            return {"vocab_size": self.tokenizer.vocab_size}
        rejects: collections.Counter = collections.Counter()
        corpus_drops = SplitCounts()    # unsupervised mode: what the sentence splitter dropped
        if cfg.mode == "supervised" and cfg.pairs_file:
            pairs, rejects = read_pairs(cfg.pairs_file)
        else:
            pairs = docstring_summary_pairs(seed=trainer.seed)
        train_pairs, eval_pairs = split_by_group(pairs)
        if cfg.mode == "supervised":
            train = train_pairs[:cfg.max_texts]
            self.train_rows = with_hard_negatives(train, trainer.seed) if cfg.hard_negatives else train
        else:   # corpus sentences that are held-out texts stay out of training
            held_out = {text_key(t) for p in eval_pairs for t in (p["query"], p["item"])}
            docs = read_text_files(cfg.corpus_files, counts=corpus_drops) if cfg.corpus_files else \
                embedded_corpus(include_stdlib_docstrings=False, counts=corpus_drops)
            sentences = list(dict.fromkeys(s for d in docs for s in d))
            texts = [s for s in sentences if text_key(s) not in held_out]
            random.Random(trainer.seed).shuffle(texts)
            rejects["held_out_text"] = len(sentences) - len(texts)
            self.train_rows = [{"query": t, "item": t} for t in texts[:cfg.max_texts]]
        self.eval_pairs = drop_eval_rows_seen_in_training(self.train_rows, eval_pairs, ["query", "item"],
                                                          rejects)[:cfg.max_eval_pairs]
        if len(self.train_rows) < trainer.batch_size or len(self.eval_pairs) < 10:
            raise ValueError(f"need at least {trainer.batch_size} training rows and 10 held-out pairs "
                             f"(got {len(self.train_rows)} / {len(self.eval_pairs)}; rejected rows: "
                             f"{dict(rejects) or 'none'}; corpus: {describe_drops(corpus_drops)})")
        self.tokenizer = pretrained_tokenizer(self.init_from)
        return {"train_rows": len(self.train_rows), "eval_pairs": len(self.eval_pairs),
                "rejected_rows": {k: v for k, v in rejects.items() if v}, "corpus_drops": dict(corpus_drops)}

    def build_model(self) -> keras.Model:
        cfg = self.config
        encoder = pretrained_encoder(self.init_from, self.tokenizer, dropout=cfg.dropout)
        if cfg.mode == "unsupervised" and encoder.config.dropout == 0:
            raise ValueError(f"the encoder of {self.init_from} has no dropout, so SimCSE's two views of a text "
                             f"would be identical: set dropout (SimCSE uses 0.1)")
        if encoder.config.vocab_size != self.tokenizer.vocab_size:
            raise ValueError(f"the examples were tokenized with {self.tokenizer.vocab_size} word pieces but the "
                             f"encoder of {self.init_from} has {encoder.config.vocab_size}: use its vocab.txt")
        check_sequence_length(self.max_sequence_length, encoder)
        self.eval_length = min(cfg.eval_sequence_length, encoder.config.max_sequence_length)
        model = SentenceEncoder(encoder, pooling=cfg.pooling, projection_dim=cfg.projection_dim,
                                temperature=cfg.temperature, learn_temperature=cfg.learn_temperature,
                                symmetric=cfg.symmetric, name="sentence_encoder")
        view = {k: (None, self.max_sequence_length) for k in ENCODER_INPUTS}
        model.build({"anchor": view, "positive": view})
        return model

    def views(self) -> List[str]:
        return ["anchor", "positive"] + (["negative"] if self.config.hard_negatives else [])

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:
            ds = self.examples.dataset("train", batch_size).map(lambda f: transformed_views(f, self.views()))
            return with_static_batch(ds, batch_size)
        length = self.config.max_sequence_length
        views = [{v: k for k, v in EMBEDDING_VIEWS.items()}[view] for view in self.views()]
        rows = tf.data.Dataset.from_tensor_slices(tuple([r[v] for r in self.train_rows] for v in views))
        rows = rows.shuffle(len(self.train_rows), seed=self.seed).repeat().batch(batch_size, drop_remainder=True)

        encode_texts = single_segment_encoder(self.tokenizer, length)

        def encode(*texts):
            x = {name: encode_texts(t) for name, t in zip(self.views(), texts)}
            return x, text_ids(*texts)

        return with_static_batch(rows.map(encode), batch_size).prefetch(2)

    def num_train_examples(self) -> int:
        return len(self.train_rows)

    def _evaluate_examples(self, model: SentenceEncoder) -> Dict[str, float]:
        """Pair accuracy and InfoNCE loss on the transformed eval split (TFX)."""
        correct = total = 0
        ds = self.examples.dataset("eval", 32).map(lambda f: transformed_views(f, ["anchor", "positive", "negative"]))
        for x, _ in ds.take(self.validation_steps or 10):
            anchor, positive, negative = (np.asarray(model.embed(x[v], training=False)) for v in x)
            correct += int(np.sum(np.sum(anchor * positive, 1) > np.sum(anchor * negative, 1)))
            total += len(anchor)
        two_views = self.examples.dataset("eval", 32).map(lambda f: transformed_views(f, self.views()))
        loss = model.evaluate(two_views, steps=self.validation_steps or 10, verbose=0, return_dict=True)["loss"]
        return {"pair_accuracy": correct / max(total, 1), "nce_loss": loss}

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        def embed(texts, length=self.max_sequence_length):
            return embed_texts(model, self.tokenizer, texts, length)

        if self.examples is not None:
            return {"lee_spearman": lee_spearman(lambda texts: embed(texts, self.eval_length)),
                    **self._evaluate_examples(model)}
        queries, items = embed([p["query"] for p in self.eval_pairs]), embed([p["item"] for p in self.eval_pairs])
        return {"lee_spearman": lee_spearman(lambda texts: embed(texts, self.eval_length)),
                **ranking_metrics(queries, items), **pair_metrics(queries, items)}

    def export(self, model: keras.Model, export_dir: str) -> str:
        # Served texts are truncated where training truncated them (what the pipeline's gate scores).
        module = SentenceEmbeddingExport(model, self.tokenizer, self.max_sequence_length,
                                         transform_output=self.transform_output)
        return save_export(module, export_dir)
