"""Knowledge injection: fuse token states h_t with projected entity embeddings k_t.

``GatedKnowledgeFusion`` (this project's design): g = sigmoid(W_g [h_t; k_t] + b_g),
h'_t = g * h_t + (1 - g) * k_t, element-wise. ``AdditiveKnowledgeFusion`` is ERNIE's
alternative, h'_t = act(W_h h_t + W_k k_t + b), for ablations. Both leave tokens without an entity
(``entity_mask == 0``) unchanged. Entity embeddings (e.g. TransE's, optionally frozen) are projected
to the hidden size by the layer, so k_t = W_p e_t.

Example:
    >>> fusion = GatedKnowledgeFusion(hidden_size=8)
    >>> h = keras.ops.ones((2, 5, 8)); e = keras.ops.zeros((2, 5, 4)); m = keras.ops.ones((2, 5))
    >>> tuple(fusion(h, e, m).shape)
    (2, 5, 8)
"""
from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes


@checks_number_arguments()
class _KnowledgeFusion(ConfigFields, keras.layers.Layer):
    config_fields = ("hidden_size", "initializer_range")

    def __init__(self, hidden_size: int, initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.set_config_fields(locals())
            self.projection = keras.layers.Dense(
                hidden_size, use_bias=False, name="entity_projection",
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))

    def build(self, hidden_states_shape: Any, entity_embeddings_shape: Any = None,
              entity_mask_shape: Any = None) -> None:
        self.projection.build(tuple(entity_embeddings_shape))
        with sublayer_policy(self):
            self._build_fusion(tuple(hidden_states_shape))
        self.built = True

    def _build_fusion(self, hidden_shape: tuple) -> None:
        raise TypeError("use GatedKnowledgeFusion or AdditiveKnowledgeFusion")

    def call(self, hidden_states: Any, entity_embeddings: Any, entity_mask: Optional[Any] = None) -> Any:
        check_shapes(type(self).__name__, hidden_states=(hidden_states, ("batch", "sequence", self.hidden_size)),
                     entity_embeddings=(entity_embeddings, ("batch", "sequence", "entity dim")),
                     entity_mask=(entity_mask, ("batch", "sequence")))
        knowledge = self.projection(entity_embeddings)
        fused = self.fuse(hidden_states, knowledge)
        if entity_mask is None:
            return fused
        mask = ops.cast(ops.expand_dims(entity_mask, -1), fused.dtype)
        return mask * fused + (1.0 - mask) * hidden_states

    def compute_output_shape(self, hidden_states_shape: Any, *args: Any) -> Any:
        return hidden_states_shape


@keras.saving.register_keras_serializable(package="rw_tf")
class GatedKnowledgeFusion(_KnowledgeFusion):
    """h' = g * h + (1 - g) * k with g = sigmoid(W_g [h; k] + b_g), k = W_p e (element-wise gate);
    tokens whose ``entity_mask`` is 0 keep h.

    Args:
        hidden_size: size of the token states h (the entity embeddings are projected to it).
        initializer_range: standard deviation of the truncated-normal kernel initializers.
    Shapes:
        ``fusion(hidden_states [batch, seq, hidden_size], entity_embeddings [batch, seq, entity_dim],
        entity_mask=None [batch, seq])`` -> [batch, seq, hidden_size].

    Example:
        >>> fusion = GatedKnowledgeFusion(hidden_size=8)
        >>> h = keras.ops.ones((2, 5, 8)); e = keras.ops.ones((2, 5, 4))
        >>> tuple(fusion(h, e, keras.ops.ones((2, 5))).shape)
        (2, 5, 8)
        >>> np.array_equal(np.asarray(fusion(h, e, keras.ops.zeros((2, 5))), "float32"), h)   # no entity: h
        True
    """

    def _build_fusion(self, hidden_shape: tuple) -> None:
        self.gate = keras.layers.Dense(
            self.hidden_size, activation="sigmoid", name="gate",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range))
        self.gate.build(hidden_shape[:-1] + (2 * self.hidden_size,))

    def gate_values(self, hidden_states: Any, knowledge: Any) -> Any:
        return self.gate(ops.concatenate([hidden_states, knowledge], axis=-1))

    def fuse(self, hidden_states: Any, knowledge: Any) -> Any:
        g = self.gate_values(hidden_states, knowledge)
        return g * hidden_states + (1.0 - g) * knowledge


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class AdditiveKnowledgeFusion(_KnowledgeFusion):
    """ERNIE-style h' = act(W_h h + W_k k + b) with k = W_p e; tokens whose ``entity_mask`` is 0 keep h.

    Args:
        hidden_size: size of the token states h (the entity embeddings are projected to it).
        activation: the activation act (a Keras activation name).
        initializer_range: standard deviation of the truncated-normal kernel initializers.
    Shapes:
        ``fusion(hidden_states [batch, seq, hidden_size], entity_embeddings [batch, seq, entity_dim],
        entity_mask=None [batch, seq])`` -> [batch, seq, hidden_size].

    Example:
        >>> fusion = AdditiveKnowledgeFusion(hidden_size=8, activation="relu")
        >>> h = keras.ops.ones((2, 5, 8)); e = keras.ops.ones((2, 5, 4))
        >>> tuple(fusion(h, e).shape), bool(keras.ops.all(fusion(h, e) >= 0))
        ((2, 5, 8), True)
    """

    config_fields = _KnowledgeFusion.config_fields + ("activation",)

    def __init__(self, hidden_size: int, activation: str = "gelu", **kwargs: Any) -> None:
        super().__init__(hidden_size, **kwargs)
        self.activation = activation

    def _build_fusion(self, hidden_shape: tuple) -> None:
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.hidden_dense = keras.layers.Dense(self.hidden_size, kernel_initializer=init, name="hidden_dense")
        self.knowledge_dense = keras.layers.Dense(self.hidden_size, use_bias=False, kernel_initializer=init,
                                                  name="knowledge_dense")
        self.hidden_dense.build(hidden_shape)
        self.knowledge_dense.build(hidden_shape)

    def fuse(self, hidden_states: Any, knowledge: Any) -> Any:
        combined = self.hidden_dense(hidden_states) + self.knowledge_dense(knowledge)
        return keras.activations.get(self.activation)(combined)
