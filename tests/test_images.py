"""Image bytes -> model inputs: decoding against a numpy reference, and every bad input refused
with its reason (before decoding, for headers that declare gigantic or zero sizes)."""
import resource
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from rw_tf.data.images import IMAGENET_MEAN, IMAGENET_STD, check_image, decode_images


def png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(pixels).numpy()


def png_declaring(width: int, height: int) -> bytes:
    """A 67-byte PNG whose IHDR declares width x height (valid CRCs, one tiny IDAT)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
            + chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose SOF marker is rewritten to declare width x height."""
    data = bytearray(tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def normalised(pixels_rgb_uint8: np.ndarray) -> np.ndarray:
    return (pixels_rgb_uint8.astype(np.float32) / 255.0 - np.array(IMAGENET_MEAN, np.float32)) / np.array(
        IMAGENET_STD, np.float32)


def test_png_and_gray_decode_to_the_reference_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], -1)
    out = decode_images(tf.constant([png(rgb), png(gray), png(rgba)]), size=8).numpy()
    np.testing.assert_allclose(out[0], normalised(rgb), atol=1e-5)            # lossless, same size: exact
    np.testing.assert_allclose(out[1], normalised(np.repeat(gray, 3, -1)), atol=1e-5)  # gray -> RGB
    np.testing.assert_allclose(out[2], normalised(rgb), atol=1e-5)            # alpha dropped
    # Resizing a constant image keeps its value; a JPEG of a flat colour decodes near it.
    flat = np.full((20, 12, 3), 200, np.uint8)
    resized = decode_images(tf.constant([png(flat), tf.io.encode_jpeg(flat).numpy()]), size=8).numpy()
    np.testing.assert_allclose(resized[0], normalised(np.full((8, 8, 3), 200, np.uint8)), atol=1e-5)
    np.testing.assert_allclose(resized[1], resized[0], atol=0.05)


BAD_IMAGES = {
    "empty": (b"", "empty image"),
    "text": (b"hello, not an image", "unsupported image format"),
    "gif": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "unsupported image format"),
    "bmp": (b"BM" + b"\x00" * 60, "unsupported image format"),
    "png zero width": (png_declaring(0, 10), "declares zero size"),
    "png bomb": (png_declaring(100_000, 100_000), "declares 100000x100000 pixels, more than max_pixels"),
    "jpeg bomb": (jpeg_declaring(65_000, 65_000), "declares 65000x65000 pixels, more than max_pixels"),
    "jpeg zero height": (jpeg_declaring(8, 0), "Invalid JPEG data"),   # libjpeg refuses the header itself
    "png truncated": (png(np.zeros((8, 8, 3), np.uint8))[:40], "Invalid PNG"),          # the decoder's error
    "jpeg truncated header": (b"\xff\xd8\xff\xe0\x00\x10JFIF", "Invalid JPEG data"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_each_bad_image_gets_its_error_and_a_counted_reason(name):
    data, reason = BAD_IMAGES[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=reason):
        decode_images(tf.constant([png(np.zeros((4, 4, 3), np.uint8)), data]), size=8)
    found = check_image(data)
    assert found is not None and reason in found and "Traceback" not in found


def test_a_bomb_is_refused_before_any_pixel_buffer_is_allocated():
    bomb = png_declaring(30_000, 30_000)      # 2.7 GB of RGB pixels if decoded
    assert len(bomb) < 100
    check_image(png(np.zeros((4, 4, 3), np.uint8)))   # graph functions and kernels loaded first
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # KiB on Linux
    for _ in range(3):
        assert "more than max_pixels" in check_image(bomb)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than max_pixels"):
        decode_images(tf.constant([bomb]), size=8)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200 * 1024
    # Limits are arguments: a 10 x 10 image passes the default and fails max_pixels=50.
    small = png(np.zeros((10, 10, 3), np.uint8))
    assert check_image(small) is None
    assert "more than max_pixels 50" in check_image(small, max_pixels=50)
    assert "more than max_bytes 10" in check_image(small, max_bytes=10)


def test_wrong_dtype_rank_and_size_are_clear_errors():
    with pytest.raises(TypeError, match="encoded bytes"):
        decode_images(tf.zeros([2, 8, 8, 3], tf.uint8), size=8)
    with pytest.raises(ValueError, match="rank 2"):
        decode_images(tf.constant([[png(np.zeros((4, 4, 3), np.uint8))]]), size=8)
    with pytest.raises(ValueError, match="size must be positive"):
        decode_images(tf.constant([png(np.zeros((4, 4, 3), np.uint8))]), size=0)
