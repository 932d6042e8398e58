"""Export of image-text models (``ImageTextModel``, ``ImageTextMatcher``).

Images arrive as encoded bytes (PNG or JPEG; base64 in TF Serving's REST API, raw bytes over
gRPC) and are checked and decoded inside the graph by ``rw_tf.data.images.decode_images``: a bad
image (empty, unsupported format, zero or gigantic declared size, corrupt) fails the request with
INVALID_ARGUMENT and its reason, before any pixel buffer is allocated.
- ``embed_image``: image [batch] -> ``embedding`` [batch, dim] (unit length, float32);
- ``embed_text``: text [batch] -> ``embedding`` [batch, dim] (same space);
- ``match_image_text`` (serving_default): image [batch], text [batch] -> ``similarity`` (cosine
  of the aligned embeddings) and, for a matcher, ``match_probability`` (the ITM head).
Pipeline-trained models (a Transform output) also get ``transform_features`` and, as
``serving_default``, ``score_examples`` on serialized raw (image, caption, negative caption)
examples -> ``match_probability``, ``negative_match_probability`` and ``match_accuracy`` (what
the pipeline's TFMA gate scores).

Example:
    >>> save_export(ImageTextExport(model, tokenizer, 16, image_size=32), "/tmp/export/1")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Dict

import keras
import tensorflow as tf

from rw_tf.config import checks_number_arguments
from rw_tf.data.images import decode_images
from rw_tf.export.base import TEXT_SPEC, ExportModule, Signature
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

IMAGE_SPEC = tf.TensorSpec([None], tf.string, name="image")


@checks_number_arguments()
class ImageTextExport(ExportModule):
    """Serving module of an image-text model (see the module docstring).

    Args:
        model: an ``ImageTextModel`` or ``ImageTextMatcher``.
        tokenizer, max_sequence_length, transform_output: as ``ExportModule``.
        image_size: the side images are resized to (the training size).
    """

    raw_signature = "match_image_text"
    examples_signature = "score_examples"

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, max_sequence_length: int,
                 image_size: int, transform_output=None) -> None:
        super().__init__(model, tokenizer, max_sequence_length, transform_output=transform_output)
        self.image_size = int(image_size)
        self.has_matcher = hasattr(model, "match")

    def signature_fns(self) -> Dict[str, Signature]:
        return {"embed_image": (self.embed_image, [IMAGE_SPEC]), "embed_text": (self.embed_text, [TEXT_SPEC]),
                "match_image_text": (self.match_image_text, [IMAGE_SPEC, TEXT_SPEC])}

    def keras_models(self) -> Dict[str, keras.Model]:
        return {"model.keras": self.model}

    def _pixels(self, image: tf.Tensor) -> tf.Tensor:
        return decode_images(image, self.image_size)

    def embed_image(self, image: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"embedding": tf.cast(self.model.embed_image(self._pixels(image), training=False), tf.float32)}

    def embed_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"embedding": tf.cast(self.model.embed_text(self.text_inputs(text), training=False), tf.float32)}

    def match_image_text(self, image: tf.Tensor, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        tf.debugging.assert_equal(tf.shape(image)[0], tf.shape(text)[0],
                                  message="image and text must have the same batch size")
        pixels, tokens = self._pixels(image), self.text_inputs(text)
        image_vectors = self.model.embed_image(pixels, training=False)
        text_vectors = self.model.embed_text(tokens, training=False)
        out = {"similarity": tf.cast(tf.reduce_sum(image_vectors * text_vectors, axis=-1), tf.float32)}
        if self.has_matcher:
            out["match_probability"] = tf.sigmoid(tf.cast(self.model.match(pixels, tokens, training=False), tf.float32))
        return out

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        features = self.transform(examples)
        pixels = features["image"]
        own = {k: tf.cast(features[f"text_{k}"], tf.int32) for k in ENCODER_INPUTS}
        other = {k: tf.cast(features[f"negative_text_{k}"], tf.int32) for k in ENCODER_INPUTS}
        positive = tf.sigmoid(tf.cast(self.model.match(pixels, own, training=False), tf.float32))
        negative = tf.sigmoid(tf.cast(self.model.match(pixels, other, training=False), tf.float32))
        accuracy = 0.5 * (tf.cast(positive > 0.5, tf.float32) + tf.cast(negative <= 0.5, tf.float32))
        return {"match_probability": positive, "negative_match_probability": negative, "match_accuracy": accuracy}
