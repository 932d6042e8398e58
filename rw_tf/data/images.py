"""Encoded images -> model inputs, as TensorFlow ops that live inside exported models.

``decode_images(images, size)``: UTF-8-free ``tf.string`` bytes [batch] (PNG or JPEG) -> float32
[batch, size, size, 3], RGB, scaled to [0, 1] then normalised with ``mean`` and ``std``.
Every image is checked on its *header* before anything is decoded, so a decompression bomb (a
small file that declares gigantic dimensions) is refused before a pixel buffer is allocated:
- empty bytes, or more than ``max_bytes``: refused;
- the format comes from the magic bytes: PNG or JPEG; anything else (GIF, BMP, WebP, text) is
  "unsupported image format";
- the declared width and height (PNG: the IHDR chunk; JPEG: the SOF marker, read by
  ``tf.image.extract_jpeg_shape``): zero is refused, and so is width x height above ``max_pixels``;
then the image is decoded with 3 channels (grayscale becomes RGB, an alpha channel is dropped),
resized (bilinear, antialiased) and normalised. Bytes that are corrupt after a valid header fail
in the decoder. All failures are ``tf.errors.InvalidArgumentError`` with the reason (a served
model answers INVALID_ARGUMENT); ``check_image`` returns the reason instead of raising, for
readers that count rejects.

Example:
    >>> png = tf.io.encode_png(tf.zeros([4, 6, 1], tf.uint8))
    >>> tuple(decode_images(tf.stack([png]), size=8).shape)
    (1, 8, 8, 3)
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import tensorflow as tf

from rw_tf.config import checks_number_arguments

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DEFAULT_MAX_PIXELS = 40_000_000          # about 6,300 x 6,300
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# CLIP's RGB statistics; any mean/std can be passed.
IMAGENET_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGENET_STD = (0.26862954, 0.26130258, 0.27577711)


def _big_endian_u32(data: tf.Tensor, offset: int) -> tf.Tensor:
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8), tf.int64)
    return raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]


def _declared_size(data: tf.Tensor):
    """(is_png, is_jpeg, height, width) from the header; sizes are 0 when not readable."""
    is_png = tf.logical_and(tf.strings.length(data) >= 24, tf.strings.substr(data, 0, 8) == PNG_MAGIC)
    is_jpeg = tf.logical_and(tf.logical_not(is_png), tf.strings.substr(data, 0, 3) == JPEG_MAGIC)
    zero = tf.constant(0, tf.int64)

    def png_size():
        return _big_endian_u32(data, 20), _big_endian_u32(data, 16)

    def jpeg_size():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    height, width = tf.cond(is_png, png_size, lambda: tf.cond(is_jpeg, jpeg_size, lambda: (zero, zero)))
    return is_png, is_jpeg, height, width


def _checked_decode(data: tf.Tensor, size: int, max_pixels: int, max_bytes: int) -> tf.Tensor:
    length = tf.strings.length(data)
    checks = [tf.debugging.Assert(length > 0, ["empty image"]),
              tf.debugging.Assert(length <= max_bytes, [tf.strings.format(
                  "image of {} bytes, more than max_bytes {}", (length, max_bytes))])]
    with tf.control_dependencies(checks):
        is_png, is_jpeg, height, width = _declared_size(data)
    checks = [tf.debugging.Assert(tf.logical_or(is_png, is_jpeg),
                                  ["unsupported image format: only PNG and JPEG are accepted"]),
              tf.debugging.Assert(tf.logical_and(height > 0, width > 0), [tf.strings.format(
                  "the image declares zero size ({}x{})", (width, height))]),
              tf.debugging.Assert(height * width <= max_pixels, [tf.strings.format(
                  "the image declares {}x{} pixels, more than max_pixels {}", (width, height, max_pixels))])]
    with tf.control_dependencies(checks):
        pixels = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    pixels.set_shape([None, None, 3])
    # Scaled to [0, 1] after resizing (both are linear): a 40-megapixel image holds one float copy, not two.
    resized = tf.image.resize(pixels, [size, size], antialias=True) / 255.0
    return tf.clip_by_value(resized, 0.0, 1.0)


def decode_images(images: tf.Tensor, size: int, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, max_pixels: int = DEFAULT_MAX_PIXELS,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> tf.Tensor:
    """Encoded images [batch] (tf.string) -> normalised float32 [batch, size, size, 3] (see the module docstring)."""
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.string:
        raise TypeError(f"images must be encoded bytes (tf.string), got {images.dtype.name}")
    if images.shape.rank is not None and images.shape.rank != 1:
        raise ValueError(f"images must be a vector [batch] of encoded images, got rank {images.shape.rank}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    decoded = tf.map_fn(lambda data: _checked_decode(data, size, max_pixels, max_bytes), images,
                        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
    return (decoded - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


@checks_number_arguments()
def check_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
                ) -> Optional[str]:
    """None if ``data`` decodes under the checks above, else the reason (for counted rejects)."""
    try:
        _checked_decode(tf.constant(data), 8, max_pixels, max_bytes)
    except tf.errors.InvalidArgumentError as err:
        return error_reason(err.message)
    return None


def error_reason(message: str) -> str:
    """The human part of a check's or a decoder's error message."""
    match = re.search(r"Summarized data: b['\"](.*?)['\"]\s*$", message.strip().splitlines()[0])
    if match:
        return match.group(1)
    match = re.search(r"\}\}\s*(.*?)\s*\[Op:", message)
    return match.group(1) if match else message.strip().splitlines()[0]
