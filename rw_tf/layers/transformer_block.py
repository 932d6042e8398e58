"""One post-LayerNorm Transformer encoder block (BERT): self-attention and a GELU feed-forward."""
from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes


def attention_mask_from_padding(padding_mask: Any, query_length: Any) -> Any:
    """[batch, key_len] 0/1 padding mask -> [batch, query_len, key_len] boolean attention mask."""
    mask = ops.cast(ops.expand_dims(padding_mask, 1), "bool")
    return ops.logical_and(mask, ops.ones((1, query_length, 1), dtype="bool"))


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class TransformerEncoderBlock(ConfigFields, keras.layers.Layer):
    """x = LN(x + Dropout(MHA(x, x, mask))); x = LN(x + Dropout(W2 GELU(W1 x))).

    Padding positions (``padding_mask == 0``) are never attended to.

    Args:
        hidden_size: size of the token states.
        num_heads: attention heads (``hidden_size`` must divide by it).
        intermediate_size: inner size of the feed-forward layer.
        dropout: rate after attention and after the feed-forward layer.
        attention_dropout: rate on the attention probabilities.
        layer_norm_epsilon: epsilon of the LayerNorms.
        initializer_range: standard deviation of the truncated-normal initializers.
    Shapes:
        ``block(x [batch, seq, hidden_size], padding_mask=None [batch, seq])`` -> [batch, seq, hidden_size].

    Example:
        >>> block = TransformerEncoderBlock(hidden_size=16, num_heads=2, intermediate_size=32)
        >>> x = keras.ops.ones((2, 5, 16))
        >>> tuple(block(x, padding_mask=keras.ops.ones((2, 5))).shape)
        (2, 5, 16)
    """

    config_fields = ("hidden_size", "num_heads", "intermediate_size", "dropout", "attention_dropout",
                     "layer_norm_epsilon", "initializer_range")

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, layer_norm_epsilon: float = 1e-12,
                 initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            if hidden_size % num_heads:
                raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
            self.set_config_fields(locals())
            init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)
            self.attention = keras.layers.MultiHeadAttention(
                num_heads=num_heads, key_dim=hidden_size // num_heads, dropout=attention_dropout,
                kernel_initializer=init(), name="self_attention")
            self.attention_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                                  name="attention_layer_norm")
            self.intermediate_dense = keras.layers.Dense(intermediate_size, activation="gelu",
                                                         kernel_initializer=init(), name="intermediate")
            self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=init(), name="output")
            self.output_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                               name="output_layer_norm")
            self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, x_shape: Any, padding_mask_shape: Any = None) -> None:
        self.attention.build(x_shape, x_shape)
        self.attention_norm.build(x_shape)
        self.intermediate_dense.build(x_shape)
        self.output_dense.build(tuple(x_shape[:-1]) + (self.intermediate_size,))
        self.output_norm.build(x_shape)
        self.built = True

    def call(self, x: Any, padding_mask: Optional[Any] = None, training: Optional[bool] = None) -> Any:
        check_shapes(type(self).__name__, x=(x, ("batch", "sequence", self.hidden_size)),
                     padding_mask=(padding_mask, ("batch", "sequence")))
        mask = None
        if padding_mask is not None:
            mask = attention_mask_from_padding(padding_mask, ops.shape(x)[1])
        attended = self.attention(x, x, attention_mask=mask, training=training)
        x = self.attention_norm(x + self.dropout_layer(attended, training=training))
        ffn = self.output_dense(self.intermediate_dense(x))
        return self.output_norm(x + self.dropout_layer(ffn, training=training))

    def compute_output_shape(self, x_shape: Any, padding_mask_shape: Any = None) -> Any:
        return x_shape
