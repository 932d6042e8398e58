"""Dual encoder for retrieval/recommendation: query and item towers, mean-pooled, L2-normalized.

Training uses in-batch negatives (from every replica under ``tf.distribute``): called on a batch of
(query, item) pairs the model outputs their embeddings stacked [batch, 2, dim] and ``compile()``
defaults to ``InfoNCELoss`` (query -> item), whose targets are text ids [batch, 2] that keep
duplicate items out of each other's negatives.

Example:
    >>> enc = TransformerEncoder.from_preset("tiny", vocab_size=100)
    >>> model = DualEncoder(enc)                      # shared towers
    >>> model.compile(optimizer="adam")
    >>> # model.fit(tf.data of ({"query": enc_inputs, "item": enc_inputs}, text_ids [batch, 2]))
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.losses import InfoNCELoss
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.pooling import masked_mean, unit_vectors


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class DualEncoder(TaskModelMixin, keras.Model):
    """A query tower and an item tower (``item_encoder=None``: one encoder for both sides, shared
    weights), each mean-pooled and L2-normalised; ``compile()`` defaults to ``InfoNCELoss`` (query
    -> item) with in-batch negatives from every replica.

    Args:
        query_encoder: the query tower's ``TransformerEncoder``.
        item_encoder: the item tower's encoder, or None to share ``query_encoder``.
        temperature: InfoNCE's tau.
    Shapes:
        ``embed(encoder inputs [batch, seq], tower="query" or "item")`` -> [batch, hidden];
        ``call({"query": encoder inputs, "item": encoder inputs})`` -> [batch, 2, hidden].

    Example:
        >>> model = DualEncoder(TransformerEncoder.from_preset("tiny", vocab_size=100))
        >>> ids = keras.ops.ones((2, 6), dtype="int32")
        >>> x = {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids}
        >>> tuple(model({"query": x, "item": x}).shape)
        (2, 2, 64)
        >>> model.compile(optimizer="adam")      # fit on ({"query", "item"}, text ids [batch, 2])
    """

    nested_layers = ("query_encoder", "item_encoder")
    config_fields = ("temperature",)

    def __init__(self, query_encoder: TransformerEncoder, item_encoder: Optional[TransformerEncoder] = None,
                 temperature: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_encoder = query_encoder
        self.item_encoder = item_encoder
        for encoder in (query_encoder, item_encoder):
            if encoder is not None:
                encoder.pooler.trainable = False  # embeddings are mean-pooled; the [CLS] pooler is unused
        self.set_config_fields(locals())

    def build(self, input_shape: Dict[str, Any]) -> None:
        for encoder, tower in ((self.query_encoder, "query"), (self.item_encoder, "item")):
            if encoder is not None and not encoder.built:   # a pretrained encoder may come built
                encoder.build(input_shape[tower])
        self.built = True

    def embed(self, inputs: Dict[str, Any], tower: str = "query", training: Optional[bool] = None) -> Any:
        encoder = self.item_encoder if tower == "item" and self.item_encoder is not None else self.query_encoder
        pooled = masked_mean(encoder(inputs, training=training)["sequence_output"], inputs["padding_mask"])
        return unit_vectors(pooled)   # embeddings and similarities in float32 under mixed precision

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        return ops.stack([self.embed(inputs["query"], "query", training),
                          self.embed(inputs["item"], "item", training)], axis=1)

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        super().compile(optimizer=optimizer, loss=loss or InfoNCELoss(self.temperature, symmetric=False), **kwargs)
