"""Retrieval task: a dual encoder trained with in-batch negatives; recall@k, NDCG@10 and MRR.

Data: JSON Lines with ``query`` and ``item`` (and optionally ``group``), or by default the
docstring summary -> body pairs of the standard library (``docstring_summary_pairs``), split
80/20 by group (module); evaluation pairs that repeat a training text are removed and counted.
Evaluation ranks every eval item for every eval query. Encoder:
``init_from`` (default: all-MiniLM-L6-v2), shared by both towers unless ``shared_towers`` is off.
Export: ``retrieve`` (top-k over the eval items, the index stored in the SavedModel) and
``encode_text``.

Example:
    >>> task = RetrievalTask(RetrievalTaskConfig())                                   # doctest: +SKIP
    >>> run_task(task, task.trainer_config(steps_per_epoch=50), "/tmp/retrieval")     # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import DictConfig, checks_number_arguments
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.labelled import docstring_summary_pairs
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_by_group, text_key
from rw_tf.data.text_inputs import single_segment_encoder, single_segment_inputs, text_ids, with_static_batch
from rw_tf.export.base import save_export
from rw_tf.export.retrieval import RetrievalExport
from rw_tf.models.dual_encoder import DualEncoder
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.training.runner import TrainerConfig


@dataclasses.dataclass
class RetrievalTaskConfig(DictConfig):
    init_from: Optional[str] = None
    pairs_file: Optional[str] = None
    shared_towers: bool = True
    max_pairs: int = 3000
    max_sequence_length: int = 64
    temperature: float = 0.05
    top_k: int = 10

    def validate(self) -> None:
        if self.pairs_file:   # max_pairs samples the built-in pairs
            self.require_defaults(["max_pairs"], "with the built-in pairs (no pairs_file)")


def read_pairs(path: str) -> Tuple[List[Dict], collections.Counter]:
    """Rows whose ``query`` and ``item`` are strings the tokenizer reads something of (not empty,
    not only spaces or NULs, which would all embed as the same empty text); the others are counted
    by reason."""
    pairs, rejects = [], collections.Counter()
    for row in read_jsonl_objects(path, rejects):
        if all(isinstance(row.get(k), str) and text_key(row[k]) for k in ("query", "item")):
            pairs.append({"query": row["query"], "item": row["item"], "group": str(row.get("group", ""))})
        else:
            rejects["missing_query_or_item"] += 1
    return pairs, rejects


def ranking_metrics(query_vectors: np.ndarray, item_vectors: np.ndarray,
                    ks: Sequence[int] = (1, 10)) -> Dict[str, float]:
    """The relevant item of query i is item i; ranks among all items by cosine similarity."""
    scores = query_vectors @ item_vectors.T
    ranks = 1 + (scores > np.diag(scores)[:, None]).sum(axis=1)
    metrics = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    metrics["ndcg@10"] = float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0)))
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    return metrics


@checks_number_arguments()
def embed_texts(model: DualEncoder, tokenizer, texts: Sequence[str], tower: str, max_len: int,
                batch_size: int = 64) -> np.ndarray:
    if not texts:
        raise ValueError("nothing to embed: the item index is empty")
    out = []
    for start in range(0, len(texts), batch_size):
        inputs = single_segment_inputs(tokenizer, tf.constant(list(texts[start:start + batch_size])), max_len)
        out.append(np.asarray(model.embed(inputs, tower, training=False)))
    return np.concatenate(out)


class RetrievalTask(Task):
    """See the module docstring."""

    name = "retrieval"
    config_class = RetrievalTaskConfig
    trainer_defaults = {"epochs": 1, "steps_per_epoch": 100, "batch_size": 32, "learning_rate": 3e-5,
                        "decay": "constant", "clipnorm": 0.0}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed = trainer.seed
        if cfg.pairs_file:
            pairs, rejects = read_pairs(cfg.pairs_file)
        else:
            pairs, rejects = docstring_summary_pairs(cfg.max_pairs, seed=trainer.seed), collections.Counter()
        self.train_pairs, eval_pairs = split_by_group(pairs)
        self.eval_pairs = drop_eval_rows_seen_in_training(self.train_pairs, eval_pairs, ["query", "item"], rejects)
        if len(self.train_pairs) < trainer.batch_size or not self.eval_pairs:
            raise ValueError(f"need at least {trainer.batch_size} training pairs and some eval pairs "
                             f"(got {len(self.train_pairs)} / {len(self.eval_pairs)}; "
                             f"rejected rows: {dict(rejects) or 'none'})")
        self.init_from = cfg.init_from or minilm_checkpoint_dir()
        self.tokenizer = pretrained_tokenizer(self.init_from)
        return {"train_pairs": len(self.train_pairs), "eval_pairs": len(self.eval_pairs),
                "rejected_rows": dict(rejects)}

    def build_model(self) -> keras.Model:
        towers = [pretrained_encoder(self.init_from, self.tokenizer)
                  for _ in range(1 if self.config.shared_towers else 2)]
        for encoder in towers:
            check_sequence_length(self.config.max_sequence_length, encoder)
        model = DualEncoder(towers[0], towers[1] if len(towers) > 1 else None, temperature=self.config.temperature,
                            name="dual_encoder")
        shape = {k: (None, self.config.max_sequence_length) for k in ENCODER_INPUTS}
        model.build({"query": shape, "item": shape})
        return model

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        length = self.config.max_sequence_length
        ds = tf.data.Dataset.from_tensor_slices(([p["query"] for p in self.train_pairs],
                                                 [p["item"] for p in self.train_pairs]))
        ds = ds.shuffle(len(self.train_pairs), seed=self.seed).repeat().batch(batch_size, drop_remainder=True)

        encode_texts = single_segment_encoder(self.tokenizer, length)

        def encode(queries, items):
            return {"query": encode_texts(queries), "item": encode_texts(items)}, text_ids(queries, items)

        return with_static_batch(ds.map(encode), batch_size).prefetch(2)

    def num_train_examples(self) -> int:
        return len(self.train_pairs)

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        length = self.config.max_sequence_length
        self.item_vectors = embed_texts(model, self.tokenizer, [p["item"] for p in self.eval_pairs], "item", length)
        queries = embed_texts(model, self.tokenizer, [p["query"] for p in self.eval_pairs], "query", length)
        return ranking_metrics(queries, self.item_vectors)

    def export(self, model: keras.Model, export_dir: str) -> str:
        # The item vectors of the last evaluation (after training) are the exported index.
        module = RetrievalExport(model, self.tokenizer, [p["item"] for p in self.eval_pairs], self.item_vectors,
                                 self.config.max_sequence_length, self.config.top_k)
        return save_export(module, export_dir)
