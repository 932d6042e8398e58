"""Cross-modal attention: one modality's tokens attend to the other's.

Example:
    >>> block = CrossAttentionBlock(hidden_size=16, num_heads=2, intermediate_size=32)
    >>> text, image = keras.ops.ones((2, 5, 16)), keras.ops.ones((2, 9, 16))
    >>> tuple(block(text, image, query_mask=keras.ops.ones((2, 5))).shape)
    (2, 5, 16)
"""
from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class CrossAttentionBlock(ConfigFields, keras.layers.Layer):
    """x = LN(x + Dropout(MHA(x, context, context_mask))); x = LN(x + Dropout(W2 GELU(W1 x))).

    Args:
        hidden_size: size of both modalities' tokens (project them to it first).
        num_heads: attention heads (hidden_size must divide by it).
        intermediate_size: inner size of the feed-forward layer.
        dropout: rate after attention and feed-forward.
        layer_norm_epsilon: epsilon of the LayerNorms.
    Shapes:
        ``block(queries [batch, q, hidden], context [batch, c, hidden], context_mask=None
        [batch, c] (1 = attend), query_mask=None [batch, q])`` -> [batch, q, hidden]; padded
        queries come out as zeros.

    Example:
        >>> block = CrossAttentionBlock(hidden_size=16, num_heads=2, intermediate_size=32)
        >>> text, patches = keras.ops.ones((2, 5, 16)), keras.ops.ones((2, 9, 16))
        >>> out = block(text, patches, query_mask=keras.ops.array([[1, 1, 1, 0, 0]] * 2))
        >>> tuple(out.shape), float(keras.ops.max(keras.ops.abs(out[:, 3:])))
        ((2, 5, 16), 0.0)
    """

    config_fields = ("hidden_size", "num_heads", "intermediate_size", "dropout", "layer_norm_epsilon")

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float = 0.1,
                 layer_norm_epsilon: float = 1e-12, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.set_config_fields(locals())
        with sublayer_policy(self):
            self.attention = keras.layers.MultiHeadAttention(num_heads, hidden_size // num_heads, name="attention")
            self.attention_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="attention_norm")
            self.intermediate = keras.layers.Dense(intermediate_size, activation="gelu", name="intermediate")
            self.output_dense = keras.layers.Dense(hidden_size, name="output")
            self.output_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="output_norm")
            self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, queries_shape: Any, context_shape: Any = None) -> None:
        query_shape, context_shape = queries_shape, context_shape or queries_shape
        self.attention.build(query_shape, context_shape)
        self.attention_norm.build(query_shape)
        self.intermediate.build(query_shape)
        self.output_dense.build(tuple(query_shape[:-1]) + (self.intermediate_size,))
        self.output_norm.build(query_shape)
        self.built = True

    def call(self, queries: Any, context: Any, context_mask: Optional[Any] = None,
             query_mask: Optional[Any] = None, training: Optional[bool] = None) -> Any:
        check_shapes(type(self).__name__, queries=(queries, ("batch", "queries", self.hidden_size)),
                     context=(context, ("batch", "context", "context dim")),
                     context_mask=(context_mask, ("batch", "context")), query_mask=(query_mask, ("batch", "queries")))
        mask = None
        if context_mask is not None:   # [batch, q, c]: every query may attend to the valid context tokens
            mask = ops.cast(ops.expand_dims(context_mask, 1), "bool")
            mask = ops.broadcast_to(mask, (ops.shape(queries)[0], ops.shape(queries)[1], ops.shape(context)[1]))
        attended = self.attention(queries, context, attention_mask=mask, training=training)
        x = self.attention_norm(queries + self.dropout_layer(attended, training=training))
        x = self.output_norm(x + self.dropout_layer(self.output_dense(self.intermediate(x)), training=training))
        if query_mask is not None:
            x = x * ops.cast(ops.expand_dims(query_mask, -1), x.dtype)
        return x
