"""Sentence embeddings trained contrastively (SimCSE, supervised pairs, hard negatives).

Example:
    >>> enc = TransformerEncoder.from_preset("tiny", vocab_size=100)
    >>> model = SentenceEncoder(enc, temperature=0.05)
    >>> model.compile(optimizer="adam")          # InfoNCELoss by default
    >>> # model.fit(tf.data of ({"anchor": enc_inputs, "positive": enc_inputs}, text_ids [batch, 2]))
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.losses import InfoNCELoss
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.pooling import masked_mean, unit_vectors

POOLINGS = ("mean", "cls")
VIEWS = ("anchor", "positive", "negative")
# CLIP clips its learned logit scale at 100 (temperature 0.01) to keep training stable.
MAX_INVERSE_TEMPERATURE = 100.0


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("projection_dim",))
class SentenceEncoder(TaskModelMixin, keras.Model):
    """An encoder, a pooling, an optional linear projection and L2 normalisation.

    ``embed(inputs)`` maps encoder inputs (``token_ids``, ``segment_ids``, ``padding_mask``
    [batch, seq]) to unit vectors [batch, dim] (float32), and so does calling the model on
    them. For training, ``call`` takes a dict of
    views, ``anchor`` and ``positive`` (and optionally ``negative``, a hard negative per anchor),
    each a dict of encoder inputs [batch, seq], runs them through the encoder in one pass (so
    SimCSE's two views of the same text get independent dropout masks) and returns the
    embeddings stacked [batch, views, dim], the layout ``InfoNCELoss`` scores; ``compile()``
    defaults to that loss. Targets are integer text ids [batch, views] (-1: unknown) used to mask
    duplicates out of the negatives.

    Args:
        encoder: a ``TransformerEncoder`` (for example a pretrained one).
        pooling: ``"mean"`` over non-padding tokens (sentence-transformers) or ``"cls"`` (the
            [CLS] token's final state).
        projection_dim: 0 for none, else a linear projection to this size before normalising.
        temperature: InfoNCE's tau; with ``learn_temperature`` its starting value.
        learn_temperature: learns log(1 / tau) (CLIP's logit scale, capped at 100); the anchors
            of ``call`` are then multiplied by 1 / tau and the loss uses temperature 1.
        symmetric: also score positive -> anchor.
    Shapes:
        ``embed(encoder inputs [batch, seq])`` -> [batch, dim]; ``call({"anchor": ..., "positive": ...,
        "negative": ...})`` (each encoder inputs [batch, seq]) -> [batch, views, dim].

    Example:
        >>> model = SentenceEncoder(TransformerEncoder.from_preset("tiny", vocab_size=100), projection_dim=16)
        >>> ids = keras.ops.ones((2, 6), dtype="int32")
        >>> x = {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids}
        >>> vectors = model.embed(x)
        >>> tuple(vectors.shape), [round(float(n), 4) for n in keras.ops.norm(vectors, axis=-1)]
        ((2, 16), [1.0, 1.0])
        >>> tuple(model({"anchor": x, "positive": x}).shape)
        (2, 2, 16)
        >>> model.compile(optimizer="adam")      # InfoNCELoss; targets: text ids [batch, views]
    """

    nested_layers = ("encoder",)
    config_fields = ("pooling", "projection_dim", "temperature", "learn_temperature", "symmetric")

    def __init__(self, encoder: TransformerEncoder, pooling: str = "mean", projection_dim: int = 0,
                 temperature: float = 0.05, learn_temperature: bool = False, symmetric: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choice("pooling", pooling, POOLINGS)
        with sublayer_policy(self):
            self.encoder = encoder
            encoder.pooler.trainable = False  # mean or [CLS] state pooling; the tanh pooler is unused
            self.set_config_fields(locals())
            self.projection_dim = int(projection_dim)
            self.temperature = float(temperature)
            self.learn_temperature = bool(learn_temperature)
            self.symmetric = bool(symmetric)
            self.projection = (keras.layers.Dense(self.projection_dim, name="projection")
                               if self.projection_dim else None)

    def build(self, input_shape: Dict[str, Any]) -> None:
        shape = input_shape["anchor"] if "anchor" in input_shape else input_shape
        if not self.encoder.built:
            self.encoder.build(shape)
        if self.projection is not None and not self.projection.built:   # embed() may have built it
            self.projection.build((None, self.encoder.config.hidden_size))
        if self.learn_temperature:
            self.log_inverse_temperature = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
                name="log_inverse_temperature", dtype="float32")
        self.built = True

    def embed(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        """Unit-length sentence embeddings [batch, dim] (float32) of encoder inputs."""
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        pooled = masked_mean(sequence, inputs["padding_mask"]) if self.pooling == "mean" else sequence[:, 0]
        if self.projection is not None:
            pooled = self.projection(pooled)
        return unit_vectors(pooled)

    def inverse_temperature(self) -> Any:
        return ops.exp(ops.minimum(self.log_inverse_temperature, math.log(MAX_INVERSE_TEMPERATURE)))

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        if "token_ids" in inputs:  # plain encoder inputs: their embeddings
            return self.embed(inputs, training)
        views = [v for v in VIEWS if v in inputs]
        if views[:2] != ["anchor", "positive"]:
            raise KeyError(f"training inputs need 'anchor' and 'positive' views (and optionally 'negative'), "
                           f"got {sorted(inputs)}")
        joined = {k: ops.concatenate([inputs[v][k] for v in views], axis=0) for k in inputs["anchor"]}
        embeddings = ops.stack(ops.split(self.embed(joined, training), len(views), axis=0), axis=1)
        if self.learn_temperature:  # scales a . k by 1 / tau in both directions of the loss
            scale = ops.concatenate([ops.reshape(self.inverse_temperature(), (1, 1, 1)),
                                     ops.ones((1, len(views) - 1, 1))], axis=1)
            embeddings = embeddings * scale
        return embeddings

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        loss = loss or InfoNCELoss(1.0 if self.learn_temperature else self.temperature, symmetric=self.symmetric)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
