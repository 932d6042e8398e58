"""Masked-LM head with output weights tied to the token embedding: softmax(t(h) E^T + b)."""
from __future__ import annotations

from typing import Any

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.id_checks import checked_ids
from rw_tf.layers.shape_checks import check_shapes


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class MaskedLMHead(ConfigFields, keras.layers.Layer):
    """Gathers the hidden states at ``masked_positions``, transforms them (dense, GELU, LayerNorm)
    and scores every vocabulary entry against the tied token-embedding matrix.

    ``token_embedding`` is shared, not owned, so it is not part of ``get_config``: a model that
    uses this head passes its encoder's embedding layer when (re)building it.

    Args:
        token_embedding: the encoder's token ``keras.layers.Embedding`` [vocab, hidden] (tied weights).
        activation: the transform's activation.
        layer_norm_epsilon: epsilon of the transform's LayerNorm.
        initializer_range: standard deviation of the truncated-normal kernel initializer.
    Shapes:
        ``head(sequence_output [batch, seq, hidden], masked_positions [batch, predictions] int)``
        -> logits [batch, predictions, vocab].

    Example:
        >>> emb = keras.layers.Embedding(100, 16); emb.build((None,))
        >>> head = MaskedLMHead(token_embedding=emb)
        >>> h = keras.ops.ones((2, 8, 16)); pos = keras.ops.zeros((2, 3), dtype="int32")
        >>> tuple(head(h, pos).shape)
        (2, 3, 100)
    """

    config_fields = ("activation", "layer_norm_epsilon", "initializer_range")

    def __init__(self, token_embedding: keras.layers.Embedding, activation: str = "gelu",
                 layer_norm_epsilon: float = 1e-12, initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.token_embedding = token_embedding
            self.set_config_fields(locals())
            self.hidden_size = token_embedding.output_dim
            self.vocab_size = token_embedding.input_dim
            self.transform = keras.layers.Dense(
                self.hidden_size, activation=activation, name="transform",
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))
            self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm")

    def build(self, sequence_output_shape: Any, masked_positions_shape: Any = None) -> None:
        if not self.token_embedding.built:   # a head used on its own: the table it scores against
            self.token_embedding.build((None,))
        self.transform.build((None, self.hidden_size))
        self.layer_norm.build((None, self.hidden_size))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.vocab_size,),
                                           initializer="zeros")
        self.built = True

    def call(self, sequence_output: Any, masked_positions: Any) -> Any:
        check_shapes(type(self).__name__, sequence_output=(sequence_output, ("batch", "sequence", self.hidden_size)),
                     masked_positions=(masked_positions, ("batch", "predictions")))
        length = sequence_output.shape[1]   # static in every input pipeline of this library
        positions = ops.cast(checked_ids(masked_positions, 2**31 - 1 if length is None else length,
                                         "masked_positions", limit="the sequence length"), "int32")
        gathered = ops.take_along_axis(sequence_output, ops.expand_dims(positions, -1), axis=1)
        h = self.layer_norm(self.transform(gathered))
        logits = ops.matmul(h, ops.transpose(ops.convert_to_tensor(self.token_embedding.embeddings)))
        return logits + self.output_bias

    def compute_output_shape(self, sequence_output_shape: Any, masked_positions_shape: Any) -> tuple:
        return tuple(masked_positions_shape) + (self.vocab_size,)
