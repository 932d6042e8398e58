"""Image encoders (backbones): a ViT patch encoder and a small CNN, Keras 3 with ``keras.ops`` only.

Both map normalised images [batch, size, size, 3] to ``{"sequence_output": [batch, tokens, hidden],
"pooled_output": [batch, hidden]}``, the same contract as the text ``TransformerEncoder``, so
fusion layers treat patches like tokens. Each class's docstring has its arguments and an example.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes
from rw_tf.layers.transformer_block import TransformerEncoderBlock

VIT_PRESETS: Dict[str, Dict[str, int]] = {
    "tiny": dict(patch_size=8, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    "small": dict(patch_size=16, hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1536),
    "base": dict(patch_size=16, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class ViTImageEncoder(ConfigFields, keras.layers.Layer):
    """Vision Transformer: non-overlapping patches -> linear embedding, a [CLS] token, learned
    position embeddings, then the text encoder's ``TransformerEncoderBlock``s.

    Args:
        image_size: side of the square input images (a multiple of ``patch_size``).
        patch_size: side of a patch; tokens = (image_size / patch_size)^2 + 1.
        hidden_size, num_layers, num_heads, intermediate_size: Transformer sizes.
        dropout, attention_dropout: rates inside the blocks.
        layer_norm_epsilon: epsilon of the LayerNorms.
    Shapes:
        images [batch, image_size, image_size, 3] -> ``sequence_output`` [batch, tokens, hidden]
        ([CLS] first) and ``pooled_output`` [batch, hidden] (the [CLS] state).

    Example:
        >>> enc = ViTImageEncoder.from_preset("tiny", image_size=32)       # patches of 8: 16 + [CLS]
        >>> out = enc(keras.ops.zeros((2, 32, 32, 3)))
        >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
        ((2, 17, 64), (2, 64))
    """

    config_fields = ("image_size", "patch_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "dropout", "attention_dropout", "layer_norm_epsilon")

    def __init__(self, image_size: int = 224, patch_size: int = 16, hidden_size: int = 768, num_layers: int = 12,
                 num_heads: int = 12, intermediate_size: int = 3072, dropout: float = 0.0,
                 attention_dropout: float = 0.0, layer_norm_epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.set_config_fields(locals())
        self.num_patches = (image_size // patch_size) ** 2
        with sublayer_policy(self):
            self.patch_embedding = keras.layers.Dense(hidden_size, name="patch_embedding")
            self.blocks = [TransformerEncoderBlock(hidden_size, num_heads, intermediate_size, dropout,
                                                   attention_dropout, layer_norm_epsilon, name=f"block_{i}")
                           for i in range(num_layers)]

    @classmethod
    def from_preset(cls, name: str, image_size: int = 224, **overrides: Any) -> "ViTImageEncoder":
        check_choice("ViT preset", name, VIT_PRESETS)
        return cls(image_size=image_size, **{**VIT_PRESETS[name], **overrides})

    def build(self, input_shape: Any) -> None:
        self.patch_embedding.build((None, None, self.patch_size * self.patch_size * 3))
        self.cls_token = self.add_weight(shape=(1, 1, self.hidden_size), initializer="zeros", name="cls_token")
        self.position_embedding = self.add_weight(
            shape=(1, self.num_patches + 1, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="position_embedding")
        for block in self.blocks:
            block.build((None, self.num_patches + 1, self.hidden_size))
        self.built = True

    def patches(self, images: Any) -> Any:
        """[batch, size, size, 3] -> [batch, patches, patch_size^2 * 3], row-major patch order."""
        p, n = self.patch_size, self.image_size // self.patch_size
        x = ops.reshape(images, (-1, n, p, n, p, 3))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, n * n, p * p * 3))

    def call(self, images: Any, training: Optional[bool] = None) -> Dict[str, Any]:
        check_shapes(type(self).__name__, images=(images, ("batch", self.image_size, self.image_size, 3)))
        x = self.patch_embedding(ops.cast(self.patches(images), self.compute_dtype))
        cls = ops.broadcast_to(ops.cast(self.cls_token, x.dtype), (ops.shape(x)[0], 1, self.hidden_size))
        x = ops.concatenate([cls, x], axis=1) + ops.cast(self.position_embedding, x.dtype)
        for block in self.blocks:
            x = block(x, training=training)
        return {"sequence_output": x, "pooled_output": x[:, 0]}


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class ConvImageEncoder(ConfigFields, keras.layers.Layer):
    """A small CNN: ``num_stages`` of (3x3 conv, GELU, 2x2 max-pool), doubling the filters, then a
    projection to ``hidden_size``; the final feature map's cells are the tokens.

    Args:
        image_size: side of the square input images (divisible by 2^num_stages).
        filters: filters of the first stage.
        num_stages: conv + pool stages.
        hidden_size: size of the tokens and of the pooled output (their mean).
    Shapes:
        images [batch, size, size, 3] -> ``sequence_output`` [batch, (size / 2^stages)^2, hidden],
        ``pooled_output`` [batch, hidden].

    Example:
        >>> enc = ConvImageEncoder(image_size=32, filters=8, num_stages=2, hidden_size=16)
        >>> out = enc(keras.ops.zeros((2, 32, 32, 3)))                     # an 8 x 8 feature map
        >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
        ((2, 64, 16), (2, 16))
    """

    config_fields = ("image_size", "filters", "num_stages", "hidden_size")

    def __init__(self, image_size: int = 32, filters: int = 32, num_stages: int = 2, hidden_size: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if image_size % (2 ** num_stages):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{num_stages}")
        self.set_config_fields(locals())
        with sublayer_policy(self):
            self.convs = [keras.layers.Conv2D(filters * 2 ** i, 3, padding="same", activation="gelu",
                                              name=f"conv_{i}") for i in range(num_stages)]
            self.pool = keras.layers.MaxPooling2D(2)
            self.projection = keras.layers.Dense(hidden_size, name="projection")

    def build(self, input_shape: Any) -> None:
        size, channels = self.image_size, 3
        for i, conv in enumerate(self.convs):
            conv.build((None, size, size, channels))
            size, channels = size // 2, self.filters * 2 ** i
        self.projection.build((None, None, channels))
        self.built = True

    def call(self, images: Any, training: Optional[bool] = None) -> Dict[str, Any]:
        check_shapes(type(self).__name__, images=(images, ("batch", self.image_size, self.image_size, 3)))
        x = ops.cast(images, self.compute_dtype)
        for conv in self.convs:
            x = self.pool(conv(x))
        tokens = self.projection(ops.reshape(x, (ops.shape(x)[0], -1, ops.shape(x)[-1])))
        return {"sequence_output": tokens, "pooled_output": ops.mean(tokens, axis=1)}
