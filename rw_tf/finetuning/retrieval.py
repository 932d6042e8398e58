"""Retrieval fine-tuning: a dual encoder trained with in-batch negatives; recall@k and NDCG@10.

Data: JSON Lines with ``query`` and ``item`` (and optionally ``group``), or by default the
docstring summary -> body pairs of the standard library (``docstring_summary_pairs``), split
80/20 by module. Evaluation ranks every eval item for every eval query (the item index is built
from the eval items' texts). Output: ``export/1`` with ``retrieve`` (text -> top-k item ids, texts,
scores, the index inside the SavedModel) and ``encode_text`` signatures, and ``metrics.json``
with recall@1/10 and NDCG@10 before and after training.

Example:
    >>> finetune_retrieval(RetrievalConfig(output_dir="/tmp/ret", steps=50))   # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import load_hf_bert, minilm_checkpoint_dir
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.labelled import docstring_summary_pairs
from rw_tf.data.splits import split_by_group
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.models.dual_encoder import DualEncoder


@dataclasses.dataclass
class RetrievalConfig:
    output_dir: str
    checkpoint: Optional[str] = None
    pairs_file: Optional[str] = None
    shared_towers: bool = True
    max_pairs: int = 3000
    max_sequence_length: int = 64
    batch_size: int = 32
    steps: int = 100
    learning_rate: float = 3e-5
    temperature: float = 0.05
    top_k: int = 10
    seed: int = 12345


def read_pairs(path: str) -> Tuple[List[Dict], collections.Counter]:
    """Rows with a non-empty ``query`` and ``item``; the others are counted by reason."""
    pairs, rejects = [], collections.Counter()
    for row in read_jsonl_objects(path, rejects):
        if isinstance(row.get("query"), str) and isinstance(row.get("item"), str) and row["query"] and row["item"]:
            pairs.append({"query": row["query"], "item": row["item"], "group": str(row.get("group", ""))})
        else:
            rejects["missing_query_or_item"] += 1
    return pairs, rejects


def embed_texts(model: DualEncoder, tokenizer, texts: Sequence[str], tower: str, max_len: int,
                batch_size: int = 64) -> np.ndarray:
    if not texts:
        raise ValueError("nothing to embed: the item index is empty")
    out = []
    for start in range(0, len(texts), batch_size):
        inputs = single_segment_inputs(tokenizer, tf.constant(list(texts[start:start + batch_size])), max_len)
        out.append(np.asarray(model.embed(inputs, tower, training=False)))
    return np.concatenate(out)


def ranking_metrics(query_vectors: np.ndarray, item_vectors: np.ndarray, ks: Sequence[int] = (1, 10)) -> Dict[str, float]:
    """The relevant item of query i is item i; ranks among all items by cosine similarity."""
    scores = query_vectors @ item_vectors.T
    ranks = 1 + (scores > np.diag(scores)[:, None]).sum(axis=1)
    metrics = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    metrics["ndcg@10"] = float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0)))
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    return metrics


class RetrievalExport(tf.Module):
    """Raw-text retrieval over a fixed item index stored in the SavedModel."""

    def __init__(self, model: DualEncoder, tokenizer, item_texts: Sequence[str], item_vectors: np.ndarray,
                 max_sequence_length: int, top_k: int) -> None:
        super().__init__()
        if len(item_texts) == 0:
            raise ValueError("cannot export retrieval with an empty item index")
        self.model, self.tokenizer = model, tokenizer
        self.item_texts = tf.constant(list(item_texts))
        self.item_vectors = tf.constant(item_vectors.astype(np.float32))
        self.max_sequence_length, self.top_k = max_sequence_length, min(top_k, len(item_texts))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode_text(self, text):
        inputs = single_segment_inputs(self.tokenizer, text, self.max_sequence_length)
        return {"embedding": self.model.embed(inputs, "query", training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def retrieve(self, text):
        query = self.encode_text(text)["embedding"]
        scores, ids = tf.math.top_k(tf.matmul(query, self.item_vectors, transpose_b=True), k=self.top_k)
        return {"item_ids": ids, "items": tf.gather(self.item_texts, ids), "scores": scores}


def finetune_retrieval(config: RetrievalConfig, verbose: Any = "auto") -> Dict[str, Any]:
    keras.utils.set_random_seed(config.seed)
    if config.pairs_file:
        pairs, rejects = read_pairs(config.pairs_file)
    else:
        pairs, rejects = docstring_summary_pairs(config.max_pairs, seed=config.seed), collections.Counter()
    train, evaluation = split_by_group(pairs)
    if len(train) < config.batch_size or not evaluation:
        raise ValueError(f"need at least {config.batch_size} training pairs and some eval pairs "
                         f"(got {len(train)} / {len(evaluation)})")
    query_encoder, tokenizer = load_hf_bert(config.checkpoint or minilm_checkpoint_dir())
    item_encoder = None if config.shared_towers else load_hf_bert(config.checkpoint or minilm_checkpoint_dir())[0]
    model = DualEncoder(query_encoder, item_encoder, temperature=config.temperature, name="dual_encoder")
    L = config.max_sequence_length

    items = [p["item"] for p in evaluation]

    def evaluate():
        item_vectors = embed_texts(model, tokenizer, items, "item", L)
        queries = embed_texts(model, tokenizer, [p["query"] for p in evaluation], "query", L)
        return ranking_metrics(queries, item_vectors), item_vectors

    before, _ = evaluate()
    ds = tf.data.Dataset.from_tensor_slices(([p["query"] for p in train], [p["item"] for p in train]))
    ds = ds.shuffle(len(train), seed=config.seed).repeat().batch(config.batch_size, drop_remainder=True)
    ds = ds.map(lambda q, i: ({"query": single_segment_inputs(tokenizer, q, L),
                               "item": single_segment_inputs(tokenizer, i, L)}, tf.zeros([config.batch_size])))
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=0.01))
    with warnings.catch_warnings():
        # Mean-pooled embeddings do not read the [CLS] pooler, so it gets no gradient.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables.*pooler")
        history = model.fit(ds.prefetch(2), steps_per_epoch=config.steps, epochs=1, verbose=verbose)
    after, item_vectors = evaluate()   # the trained item vectors are also the exported index
    export_dir = os.path.join(config.output_dir, "export", "1")
    module = RetrievalExport(model, tokenizer, items, item_vectors, L, config.top_k)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.retrieve,
                                                        "retrieve": module.retrieve, "encode_text": module.encode_text})
    result = {"train_pairs": len(train), "eval_pairs": len(evaluation), "rejected_rows": dict(rejects),
              "before": before, "after": after,
              "loss": [float(x) for x in history.history["loss"]], "export_dir": export_dir}
    with open(os.path.join(config.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"config": dataclasses.asdict(config), **result}, f, indent=2)
    return result
