"""Image-text models: CLIP-style alignment, and cross-attention fusion for task heads.

Example:
    >>> model = ImageTextModel(ViTImageEncoder.from_preset("tiny", image_size=32),
    ...                        TransformerEncoder.from_preset("tiny", vocab_size=100), projection_dim=32)
    >>> model.compile(optimizer="adam")      # symmetric InfoNCE, learned logit scale
    >>> # model.fit(tf.data of ({"image": [b, 32, 32, 3], "text": encoder inputs}, ids [b, 2]))
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.layers.cross_attention import CrossAttentionBlock
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.losses import InfoNCELoss
from rw_tf.models.compile_config import OptimizerOnlyCompileConfig
from rw_tf.networks.pooling import masked_mean

MAX_LOGIT_SCALE = 100.0   # CLIP's cap on the learned inverse temperature


def _unit(x: Any) -> Any:
    x = ops.cast(x, "float32")
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="rw_tf")
class ImageTextModel(OptimizerOnlyCompileConfig, keras.Model):
    """An image encoder and a text encoder aligned in one space, with optional cross-modal fusion.

    Alignment (CLIP): ``embed_image`` (pooled image state -> linear projection -> unit vector) and
    ``embed_text`` (mean of the text tokens -> projection -> unit vector); ``call`` on
    ``{"image", "text"}`` returns [batch, 2, dim] (image scaled by the learned logit scale, text),
    scored by ``InfoNCELoss`` with temperature 1, symmetric, negatives from every replica.
    Fusion: ``fuse(image, text)`` projects both token sequences to ``fusion_size``, lets the text
    tokens attend to the image patches through ``fusion_layers`` ``CrossAttentionBlock``s (and the
    image patches to the text tokens when ``fusion_direction == "both"``) and returns the fused
    representation [batch, fusion_size] (or [batch, 2 * fusion_size] for "both") for task heads.

    Args:
        image_encoder: a ``ViTImageEncoder`` or ``ConvImageEncoder``.
        text_encoder: a ``TransformerEncoder``.
        projection_dim: size of the aligned embeddings.
        fusion_layers: cross-attention blocks (0: no fusion).
        fusion_size, fusion_heads: sizes of the fusion blocks.
        fusion_direction: ``"text_to_image"`` or ``"both"``.
        initial_temperature: the alignment temperature at the start (CLIP: 0.07).
    """

    def __init__(self, image_encoder: keras.layers.Layer, text_encoder: keras.layers.Layer, projection_dim: int = 128,
                 fusion_layers: int = 1, fusion_size: int = 128, fusion_heads: int = 4,
                 fusion_direction: str = "text_to_image", initial_temperature: float = 0.07, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fusion_direction not in ("text_to_image", "both"):
            raise ValueError(f"fusion_direction must be 'text_to_image' or 'both', got {fusion_direction!r}")
        self.projection_dim, self.fusion_layers, self.fusion_size = projection_dim, fusion_layers, fusion_size
        self.fusion_heads, self.fusion_direction = fusion_heads, fusion_direction
        self.initial_temperature = initial_temperature
        with sublayer_policy(self):
            self.image_encoder, self.text_encoder = image_encoder, text_encoder
            text_encoder.pooler.trainable = False
            self.image_projection = keras.layers.Dense(projection_dim, name="image_projection")
            self.text_projection = keras.layers.Dense(projection_dim, name="text_projection")
            self.image_tokens = keras.layers.Dense(fusion_size, name="image_tokens")
            self.text_tokens = keras.layers.Dense(fusion_size, name="text_tokens")
            self.text_to_image = [CrossAttentionBlock(fusion_size, fusion_heads, 2 * fusion_size,
                                                      name=f"text_to_image_{i}") for i in range(fusion_layers)]
            self.image_to_text = ([CrossAttentionBlock(fusion_size, fusion_heads, 2 * fusion_size,
                                                       name=f"image_to_text_{i}") for i in range(fusion_layers)]
                                  if fusion_direction == "both" else [])

    def build(self, input_shape: Dict[str, Any]) -> None:
        image_shape, text_shape = input_shape["image"], input_shape["text"]
        if not self.image_encoder.built:
            self.image_encoder.build(image_shape)
        if not self.text_encoder.built:
            self.text_encoder.build(text_shape)
        self.image_projection.build((None, self.image_encoder.hidden_size))
        self.text_projection.build((None, self.text_encoder.config.hidden_size))
        self.image_tokens.build((None, None, self.image_encoder.hidden_size))
        self.text_tokens.build((None, None, self.text_encoder.config.hidden_size))
        for block in self.text_to_image + self.image_to_text:
            block.build((None, None, self.fusion_size), (None, None, self.fusion_size))
        self.log_logit_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(1.0 / self.initial_temperature)),
            dtype="float32", name="log_logit_scale")
        self.built = True

    def logit_scale(self) -> Any:
        return ops.exp(ops.minimum(self.log_logit_scale, math.log(MAX_LOGIT_SCALE)))

    def embed_image(self, images: Any, training: Optional[bool] = None) -> Any:
        return _unit(self.image_projection(self.image_encoder(images, training=training)["pooled_output"]))

    def embed_text(self, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        states = self.text_encoder(text, training=training)["sequence_output"]
        return _unit(self.text_projection(masked_mean(states, text["padding_mask"])))

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        images = self.embed_image(inputs["image"], training) * self.logit_scale()
        return ops.stack([images, self.embed_text(inputs["text"], training)], axis=1)

    def fuse(self, images: Any, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        """The fused representation of image-text pairs (see the class docstring)."""
        patches = self.image_tokens(self.image_encoder(images, training=training)["sequence_output"])
        tokens = self.text_tokens(self.text_encoder(text, training=training)["sequence_output"])
        text_mask = text["padding_mask"]
        fused_text, fused_image = tokens, patches
        for i, block in enumerate(self.text_to_image):
            fused_text_next = block(fused_text, fused_image, query_mask=text_mask, training=training)
            if self.image_to_text:
                fused_image = self.image_to_text[i](fused_image, fused_text, context_mask=text_mask,
                                                    training=training)
            fused_text = fused_text_next
        pooled = [masked_mean(fused_text, text_mask)]
        if self.image_to_text:
            pooled.append(ops.mean(fused_image, axis=1))
        return ops.cast(ops.concatenate(pooled, axis=-1), "float32")

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        super().compile(optimizer=optimizer, loss=loss or InfoNCELoss(1.0, symmetric=True), **kwargs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(image_encoder=keras.saving.serialize_keras_object(self.image_encoder),
                      text_encoder=keras.saving.serialize_keras_object(self.text_encoder),
                      projection_dim=self.projection_dim, fusion_layers=self.fusion_layers,
                      fusion_size=self.fusion_size, fusion_heads=self.fusion_heads,
                      fusion_direction=self.fusion_direction, initial_temperature=self.initial_temperature)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "ImageTextModel":
        config = dict(config)
        for key in ("image_encoder", "text_encoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
