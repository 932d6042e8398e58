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

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.layers.cross_attention import CrossAttentionBlock
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.losses import BinaryLogitLoss, InfoNCELoss
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.pooling import masked_mean, unit_vectors

MAX_LOGIT_SCALE = 100.0   # CLIP's cap on the learned inverse temperature


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("fusion_layers",))
class ImageTextModel(TaskModelMixin, keras.Model):
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
        fusion_dropout: dropout rate inside the cross-attention blocks.
    Shapes:
        ``embed_image(images [batch, size, size, 3])`` and ``embed_text(encoder inputs [batch, seq])``
        -> [batch, projection_dim]; ``call({"image", "text"})`` -> [batch, 2, projection_dim];
        ``fuse(images, text)`` -> [batch, fusion_size] ([batch, 2 * fusion_size] for "both").

    Example:
        >>> model = ImageTextModel(ViTImageEncoder.from_preset("tiny", image_size=16),
        ...                        TransformerEncoder.from_preset("tiny", vocab_size=50), projection_dim=8,
        ...                        fusion_layers=1, fusion_size=16, fusion_heads=2)
        >>> images, ids = keras.ops.zeros((2, 16, 16, 3)), keras.ops.ones((2, 6), dtype="int32")
        >>> text = {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids}
        >>> tuple(model({"image": images, "text": text}).shape), tuple(model.fuse(images, text).shape)
        ((2, 2, 8), (2, 16))
        >>> model.compile(optimizer="adam")   # symmetric InfoNCELoss; targets: image ids [batch, 2]
    """

    nested_layers = ("image_encoder", "text_encoder")
    config_fields = (
        "projection_dim", "fusion_layers", "fusion_size", "fusion_heads", "fusion_direction", "initial_temperature",
        "fusion_dropout",
    )

    def __init__(self, image_encoder: keras.layers.Layer, text_encoder: keras.layers.Layer, projection_dim: int = 128,
                 fusion_layers: int = 1, fusion_size: int = 128, fusion_heads: int = 4,
                 fusion_direction: str = "text_to_image", initial_temperature: float = 0.07,
                 fusion_dropout: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fusion_direction not in ("text_to_image", "both"):
            raise ValueError(f"fusion_direction must be 'text_to_image' or 'both', got {fusion_direction!r}")
        self.set_config_fields(locals())
        with sublayer_policy(self):
            self.image_encoder, self.text_encoder = image_encoder, text_encoder
            text_encoder.pooler.trainable = False
            self.image_projection = keras.layers.Dense(projection_dim, name="image_projection")
            self.text_projection = keras.layers.Dense(projection_dim, name="text_projection")
            # Fusion layers exist only when used: unused weights would get no gradients in fit.
            self.image_tokens = keras.layers.Dense(fusion_size, name="image_tokens") if fusion_layers else None
            self.text_tokens = keras.layers.Dense(fusion_size, name="text_tokens") if fusion_layers else None
            self.text_to_image = [CrossAttentionBlock(fusion_size, fusion_heads, 2 * fusion_size, fusion_dropout,
                                                      name=f"text_to_image_{i}") for i in range(fusion_layers)]
            self.image_to_text = ([CrossAttentionBlock(fusion_size, fusion_heads, 2 * fusion_size, fusion_dropout,
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
        if self.text_to_image:
            self.image_tokens.build((None, None, self.image_encoder.hidden_size))
            self.text_tokens.build((None, None, self.text_encoder.config.hidden_size))
        for block in self.text_to_image + self.image_to_text:
            block.build((None, None, self.fusion_size), (None, None, self.fusion_size))
        self.log_logit_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(1.0 / self.initial_temperature)),
            dtype="float32", name="log_logit_scale")
        self.built = True

    def logit_scale(self) -> Any:
        # float32 even under a mixed policy (Keras autocasts variables read inside call).
        return ops.exp(ops.minimum(ops.cast(self.log_logit_scale, "float32"), math.log(MAX_LOGIT_SCALE)))

    def embed_image(self, images: Any, training: Optional[bool] = None) -> Any:
        return self.project_image(self.image_encoder(images, training=training)["pooled_output"])

    def embed_text(self, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        return self.project_text(self.text_encoder(text, training=training)["sequence_output"], text["padding_mask"])

    def project_image(self, pooled: Any) -> Any:
        """Pooled image state [batch, hidden] -> aligned unit vector [batch, projection_dim]."""
        return unit_vectors(self.image_projection(pooled))

    def project_text(self, states: Any, padding_mask: Any) -> Any:
        """Text token states [batch, seq, hidden] -> aligned unit vector (mean over real tokens)."""
        return unit_vectors(self.text_projection(masked_mean(states, padding_mask)))

    def aligned_pair(self, image_embedding: Any, text_embedding: Any) -> Any:
        """[batch, 2, dim]: the image side scaled by the learned logit scale, for ``InfoNCELoss(1.0)``."""
        return ops.stack([image_embedding * self.logit_scale(), text_embedding], axis=1)

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        return self.aligned_pair(self.embed_image(inputs["image"], training), self.embed_text(inputs["text"], training))

    def fuse(self, images: Any, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        """The fused representation of image-text pairs (see the class docstring)."""
        return self.fuse_states(self.image_encoder(images, training=training)["sequence_output"],
                                self.text_encoder(text, training=training)["sequence_output"],
                                text["padding_mask"], training)

    def fuse_states(self, image_states: Any, text_states: Any, text_mask: Any, training: Optional[bool] = None) -> Any:
        """``fuse`` on encoder outputs: image [batch, patches, hidden], text [batch, tokens, hidden]."""
        if not self.text_to_image:
            raise ValueError("this ImageTextModel has fusion_layers=0: build it with fusion_layers >= 1 to fuse")
        fused_image = self.image_tokens(image_states)
        fused_text = self.text_tokens(text_states)
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

    @property
    def fused_size(self) -> int:
        return self.fusion_size * (2 if self.image_to_text else 1)

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        super().compile(optimizer=optimizer, loss=loss or InfoNCELoss(1.0, symmetric=True), **kwargs)


MATCHING_FUSIONS = ("cross_attention", "late", "image_only", "text_only")


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("alignment_weight",))
class ImageTextMatcher(TaskModelMixin, keras.Model):
    """Image-text matching (ITM, as in ALBEF): does a caption describe an image? Trained together
    with the backbone's CLIP alignment (ITC), as ALBEF and BLIP do.

    Each example is an image with two captions, its own (``text``) and another image's
    (``negative_text``); ``call`` returns ``{"alignment": [batch, 2, dim]`` (as
    ``ImageTextModel.call``, on the true captions), ``"match": [batch, 2]}``: one logit per
    (image, caption) candidate, targets ``[1, 0]``. ``fusion`` picks what the matching head sees:
    - ``"cross_attention"``: ``backbone.fuse`` (text tokens attend to image patches);
    - ``"late"``: the concatenated pooled image and text states (no interaction before the head);
    - ``"image_only"`` / ``"text_only"``: one modality (baselines; on balanced pairs they are at
      chance by construction).
    The head is Dense(``head_size``, gelu) -> Dense(1) in every case, so only the fusion differs.

    Args:
        backbone: an ``ImageTextModel`` (with ``fusion_layers >= 1`` for ``"cross_attention"``).
        fusion: one of ``MATCHING_FUSIONS``.
        head_size: width of the head's hidden layer.
        alignment_weight: weight of the ITC loss next to the ITM loss.
    Shapes:
        Inputs ``{"image": [batch, size, size, 3], "text": encoder inputs [batch, seq],
        "negative_text": encoder inputs [batch, seq]}``; ``match(images, text)`` -> logits [batch].

    Example:
        >>> backbone = ImageTextModel(ViTImageEncoder.from_preset("tiny", image_size=16),
        ...                           TransformerEncoder.from_preset("tiny", vocab_size=50), projection_dim=8,
        ...                           fusion_layers=1, fusion_size=16, fusion_heads=2)
        >>> matcher = ImageTextMatcher(backbone, fusion="cross_attention", head_size=8)
        >>> images, ids = keras.ops.zeros((2, 16, 16, 3)), keras.ops.ones((2, 6), dtype="int32")
        >>> text = {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids}
        >>> out = matcher({"image": images, "text": text, "negative_text": text})
        >>> tuple(out["alignment"].shape), tuple(out["match"].shape), tuple(matcher.match(images, text).shape)
        ((2, 2, 8), (2, 2), (2,))
        >>> matcher.compile(optimizer="adam")   # ITM binary cross-entropy + alignment_weight * ITC
    """

    nested_layers = ("backbone",)
    config_fields = ("fusion", "head_size", "alignment_weight")

    def __init__(self, backbone: ImageTextModel, fusion: str = "cross_attention", head_size: int = 128,
                 alignment_weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choice("fusion", fusion, MATCHING_FUSIONS)
        if fusion == "cross_attention" and not backbone.fusion_layers:
            raise ValueError("fusion='cross_attention' needs a backbone with fusion_layers >= 1")
        self.backbone, self.fusion, self.head_size = backbone, fusion, head_size
        self.alignment_weight = float(alignment_weight)
        with sublayer_policy(self):
            self.head_hidden = keras.layers.Dense(head_size, activation="gelu", name="match_hidden")
            self.head_logit = keras.layers.Dense(1, name="match_logit")

    def _feature_size(self) -> int:
        image, text = self.backbone.image_encoder.hidden_size, self.backbone.text_encoder.config.hidden_size
        return {"cross_attention": self.backbone.fused_size, "late": image + text,
                "image_only": image, "text_only": text}[self.fusion]

    def build(self, input_shape: Dict[str, Any]) -> None:
        if not self.backbone.built:
            self.backbone.build({"image": input_shape["image"], "text": input_shape["text"]})
        self.head_hidden.build((None, self._feature_size()))
        self.head_logit.build((None, self.head_size))
        self.built = True

    def embed_image(self, images: Any, training: Optional[bool] = None) -> Any:
        return self.backbone.embed_image(images, training)

    def embed_text(self, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        return self.backbone.embed_text(text, training)

    def match_logits(self, image_output: Dict[str, Any], text_states: Any, text_mask: Any,
                     training: Optional[bool] = None) -> Any:
        """One logit per (image, caption) row from encoder outputs; [batch]."""
        if self.fusion == "cross_attention":
            features = self.backbone.fuse_states(image_output["sequence_output"], text_states, text_mask, training)
        else:
            image = ops.cast(image_output["pooled_output"], "float32")
            text = ops.cast(masked_mean(text_states, text_mask), "float32")
            features = {"late": lambda: ops.concatenate([image, text], axis=-1),
                        "image_only": lambda: image, "text_only": lambda: text}[self.fusion]()
        return ops.cast(self.head_logit(self.head_hidden(features, training=training))[:, 0], "float32")

    def match(self, images: Any, text: Dict[str, Any], training: Optional[bool] = None) -> Any:
        """Match logits [batch] of aligned (image, caption) rows."""
        image_output = self.backbone.image_encoder(images, training=training)
        states = self.backbone.text_encoder(text, training=training)["sequence_output"]
        return self.match_logits(image_output, states, text["padding_mask"], training)

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Dict[str, Any]:
        backbone = self.backbone
        image_output = backbone.image_encoder(inputs["image"], training=training)
        # One text-encoder pass over the true and the negative captions.
        both = {k: ops.concatenate([inputs["text"][k], inputs["negative_text"][k]], axis=0)
                for k in inputs["text"]}
        states = backbone.text_encoder(both, training=training)["sequence_output"]
        batch = ops.shape(inputs["image"])[0]
        true_states, true_mask = states[:batch], both["padding_mask"][:batch]
        alignment = backbone.aligned_pair(backbone.project_image(image_output["pooled_output"]),
                                          backbone.project_text(true_states, true_mask))
        positive = self.match_logits(image_output, true_states, true_mask, training)
        negative = self.match_logits(image_output, states[batch:], both["padding_mask"][batch:], training)
        return {"alignment": alignment, "match": ops.stack([positive, negative], axis=1)}

    def compile(self, optimizer: Any = "adam", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None, **kwargs: Any) -> None:
        """ITM sigmoid cross-entropy plus ``alignment_weight`` x symmetric InfoNCE, ITM accuracy."""
        super().compile(
            optimizer=optimizer,
            loss=loss or {"alignment": InfoNCELoss(1.0, symmetric=True), "match": BinaryLogitLoss(name="match_loss")},
            loss_weights=loss_weights or {"alignment": self.alignment_weight, "match": 1.0},
            metrics=metrics or {"match": [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]},
            **kwargs)
