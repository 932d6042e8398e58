"""Export of a contrastively trained ``SentenceEncoder``.

``embed_text``: UTF-8 texts [batch] -> ``embedding`` [batch, dim], unit length, float32; cosine
similarity is then a dot product. Texts longer than the exported ``max_sequence_length`` are
truncated, as in training. Pipeline-trained models (a Transform output) also get
``transform_features`` and ``serving_default`` on serialized raw (query, item, negative)
examples -> ``pair_similarity``, ``negative_similarity`` and ``pair_accuracy`` (1 when the query
is closer to its item than to the negative), what the pipeline's TFMA gate scores.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from rw_tf.export.base import TEXT_SPEC, ExportModule, Signature
from rw_tf.networks.encoder import ENCODER_INPUTS


class SentenceEmbeddingExport(ExportModule):
    """Serving module of a ``SentenceEncoder`` (see the module docstring)."""

    raw_signature = "embed_text"

    def signature_fns(self) -> Dict[str, Signature]:
        return {"embed_text": (self.embed_text, [TEXT_SPEC])}

    def embed_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"embedding": tf.cast(self.model.embed(self.text_inputs(text), training=False), tf.float32)}

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        features = self.transform(examples)
        views = {view: self.model.embed({k: tf.cast(features[f"{view}_{k}"], tf.int32) for k in ENCODER_INPUTS},
                                        training=False)
                 for view in ("anchor", "positive", "negative")}
        positive = tf.reduce_sum(views["anchor"] * views["positive"], axis=-1)
        negative = tf.reduce_sum(views["anchor"] * views["negative"], axis=-1)
        return {"pair_similarity": positive, "negative_similarity": negative,
                "pair_accuracy": tf.cast(positive > negative, tf.float32)}
