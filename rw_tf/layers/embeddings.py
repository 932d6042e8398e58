"""Token + position + segment embeddings, summed, layer-normalized and dropped out (BERT)."""
from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.id_checks import checked_ids


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class TransformerEmbeddings(ConfigFields, keras.layers.Layer):
    """Sums learned token, absolute-position and segment embeddings, then LayerNorm and dropout.

    ``token_embedding`` is exposed so an MLM head can tie its output weights to it.

    Args:
        vocab_size: number of token ids.
        hidden_size: size of the embeddings.
        max_sequence_length: number of learned positions (longest input).
        type_vocab_size: number of segment ids.
        dropout: dropout rate after the LayerNorm.
        layer_norm_epsilon: epsilon of the LayerNorm.
        initializer_range: standard deviation of the truncated-normal initializers.
    Shapes:
        ``layer(token_ids [batch, seq], segment_ids=None [batch, seq])`` -> [batch, seq, hidden_size].

    Example:
        >>> layer = TransformerEmbeddings(vocab_size=100, hidden_size=16, max_sequence_length=32)
        >>> ids = keras.ops.ones((2, 8), dtype="int32")
        >>> tuple(layer(ids, keras.ops.zeros((2, 8), dtype="int32")).shape)
        (2, 8, 16)
    """

    config_fields = ("vocab_size", "hidden_size", "max_sequence_length", "type_vocab_size", "dropout",
                     "layer_norm_epsilon", "initializer_range")

    def __init__(self, vocab_size: int, hidden_size: int, max_sequence_length: int,
                 type_vocab_size: int = 2, dropout: float = 0.1, layer_norm_epsilon: float = 1e-12,
                 initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.set_config_fields(locals())
            init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)
            self.token_embedding = keras.layers.Embedding(vocab_size, hidden_size, embeddings_initializer=init(),
                                                          name="token_embedding")
            self.position_embedding = keras.layers.Embedding(max_sequence_length, hidden_size,
                                                             embeddings_initializer=init(),
                                                             name="position_embedding")
            self.segment_embedding = keras.layers.Embedding(type_vocab_size, hidden_size,
                                                            embeddings_initializer=init(),
                                                            name="segment_embedding")
            self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm")
            self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, token_ids_shape: Any, segment_ids_shape: Any = None) -> None:
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build((None,))
        self.segment_embedding.build(token_ids_shape)
        self.layer_norm.build(tuple(token_ids_shape) + (self.hidden_size,))
        self.built = True

    def call(self, token_ids: Any, segment_ids: Optional[Any] = None, training: Optional[bool] = None) -> Any:
        token_ids = checked_ids(token_ids, self.vocab_size, "token_ids", limit="the vocabulary size")
        seq_len = ops.shape(token_ids)[1]
        if segment_ids is None:
            segment_ids = ops.zeros_like(token_ids)
        segment_ids = checked_ids(segment_ids, self.type_vocab_size, "segment_ids", limit="type_vocab_size")
        positions = ops.arange(seq_len, dtype="int32")
        x = (self.token_embedding(token_ids)
             + ops.expand_dims(self.position_embedding(positions), 0)
             + self.segment_embedding(segment_ids))
        return self.dropout_layer(self.layer_norm(x), training=training)

    def compute_output_shape(self, token_ids_shape: Any, segment_ids_shape: Any = None) -> tuple:
        return tuple(token_ids_shape) + (self.hidden_size,)
