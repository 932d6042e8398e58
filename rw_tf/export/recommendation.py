"""Export of a ``TwoTowerRecommender`` with its item index.

``recommend``: ``history`` [batch] strings, each a user's item ids separated by spaces (oldest
first) -> ``item_ids`` [batch, k] (the best items the user does not have yet), ``scores`` (cosine)
and ``item_indices``, scored against every item vector inside the SavedModel. ``item_embeddings``:
``item_ids`` [n] -> ``embedding`` [n, dim] (unit vectors, for an external index). An empty
history, an unknown item id and a history longer than the model's ``max_history`` fail the
request with the reason (INVALID_ARGUMENT from a server). Pipeline-trained models also get
``transform_features`` and ``serving_default`` on serialized raw (history, item) examples ->
``hit_at_k`` (1 if the item is among the top k unseen items) and ``reciprocal_rank``. A model
that reads profile texts exports ``recommend(history, profile)`` (profile: the user's text, ""
for none) and keeps the sentence encoder that embeds it.
"""
from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf

from rw_tf.config import checks_number_arguments
from rw_tf.export.base import ExportModule, Signature


@checks_number_arguments()
class RecommenderExport(ExportModule):
    """Serving module of a ``TwoTowerRecommender``; ``items`` are the item ids in index order."""

    raw_signature = "recommend"

    def __init__(self, model, tokenizer, items: Sequence[str], top_k: int, transform_output=None,
                 profile_encoder=None, profile_length: int = 64) -> None:
        super().__init__(model, tokenizer, max_sequence_length=profile_length, transform_output=transform_output)
        if bool(model.profile_dim) != (profile_encoder is not None):
            raise ValueError("a recommender that reads profiles needs its profile_encoder (and only then)")
        self.profile_encoder = profile_encoder
        if len(items) != model.num_items or any(not i or " " in i for i in items):
            raise ValueError("items must be the model's num_items non-empty ids without spaces")
        self.item_names = tf.constant(list(items))
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.item_names, tf.range(len(items), dtype=tf.int64)), -1)
        self.top_k = min(int(top_k), len(items))

    def signature_fns(self) -> Dict[str, Signature]:
        history = tf.TensorSpec([None], tf.string, name="history")
        recommend = ((self.recommend_with_profile, [history, tf.TensorSpec([None], tf.string, name="profile")])
                     if self.profile_encoder is not None else (self.recommend, [history]))
        return {"recommend": recommend,
                "item_embeddings": (self.item_embeddings, [tf.TensorSpec([None], tf.string, name="item_ids")])}

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        features = self.transform(examples)
        scores = self.model.scores(tf.cast(features["history_ids"], tf.int32))
        item = tf.maximum(features["item_id"], 0)
        target = tf.gather(scores, item, batch_dims=1)
        rank = 1.0 + tf.reduce_sum(tf.cast(scores > target[:, None], tf.float32), axis=1)
        known = tf.cast(features["item_id"] >= 0, tf.float32)   # an unknown item is never a hit
        return {"hit_at_k": known * tf.cast(rank <= self.top_k, tf.float32), "reciprocal_rank": known / rank}

    def _lookup(self, names: tf.Tensor) -> tf.Tensor:
        ids = self.item_table.lookup(names)
        unknown = tf.boolean_mask(names, ids < 0)
        message = tf.strings.join(["unknown item ids: ", tf.strings.reduce_join(unknown[:10], separator=", ")])
        with tf.control_dependencies([tf.debugging.Assert(tf.size(unknown) == 0, [message])]):
            return tf.identity(ids)

    def recommend_with_profile(self, history: tf.Tensor, profile: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``recommend`` with each user's profile text ("" for none: a zero vector)."""
        vectors = self.profile_encoder.embed(self.text_inputs(profile), training=False)
        vectors = tf.where(tf.strings.length(profile)[:, None] > 0, vectors, tf.zeros_like(vectors))
        return self._recommend(history, vectors)

    def recommend(self, history: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._recommend(history, None)

    # save_export replaces the signature methods by their tf.functions; the shared body has its own name.
    def _recommend(self, history: tf.Tensor, profile_vectors) -> Dict[str, tf.Tensor]:
        tokens = tf.strings.split(history)
        lengths = tokens.row_lengths()
        checks = [tf.debugging.Assert(tf.reduce_all(lengths > 0), ["empty history: a user needs at least one item"]),
                  tf.debugging.Assert(tf.reduce_all(lengths <= self.model.max_history), [tf.strings.format(
                      "history longer than the model accepts: {} items, max_history {}",
                      (tf.reduce_max(lengths), self.model.max_history))])]
        with tf.control_dependencies(checks):
            ids = tokens.with_flat_values(self._lookup(tokens.flat_values))
        padded = ids.to_tensor(default_value=-1, shape=[None, self.model.max_history])
        indices, scores = self.model.recommend(padded, self.top_k, profile_vectors)
        return {"item_ids": tf.gather(self.item_names, indices), "item_indices": tf.cast(indices, tf.int64),
                "scores": tf.cast(scores, tf.float32)}

    def item_embeddings(self, item_ids: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"embedding": tf.cast(self.model.item_vectors(self._lookup(item_ids)), tf.float32)}

    def keras_models(self):
        models = {"model.keras": self.model}
        if self.profile_encoder is not None:
            models["profile_encoder.keras"] = self.profile_encoder
        return models
