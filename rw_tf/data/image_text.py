"""Image-text pairs that install offline, as encoded PNG bytes plus a caption and a label.

- ``digit_pairs``: scikit-learn's ``load_digits`` (1,797 8x8 grayscale handwritten digits from
  43 writers; pixel values 0-16 scaled to 0-255). Caption rule: one of ``CAPTION_TEMPLATES``
  filled with the digit's English name, the template chosen by the image index (so captions vary
  in wording but only the digit carries information); label = the digit.
- ``photo_pairs``: scikit-image's bundled photographs with the one-line description of each in
  its loader's docstring (``PHOTO_CAPTIONS``, copied from ``skimage/data/_fetchers.py``).
- ``face_pairs``: scikit-image's ``lfw_subset.npy``: 100 faces and 100 non-faces (25x25
  grayscale); caption "a photo of a face" / "a photo of something that is not a face".
- ``read_image_caption_pairs``: yours, JSON Lines ``{"image": ..., "caption": text, "label": class}``
  where ``image`` is a PNG or JPEG file (a path relative to the JSON Lines file's folder, an
  absolute path or a URI such as gs://...) or ``{"b64": base64 bytes}``, and ``label`` (a string or
  an integer, optional) names the class the caption describes: pairs of one class are relevant to
  each other in retrieval and never each other's negatives. Without a label, pairs with the same
  caption (as the uncased tokenizer reads it) are one class. Rows that cannot be used are counted
  by reason (unreadable lines, no caption, a bad label, a missing file, bad base64, an image that
  fails ``check_image``); a storage that cannot be reached is an error, not a count per row. The
  images are held in memory, at most ``MAX_IMAGE_BYTES`` together.
Splits are by image: ``split_pairs`` holds out a fraction of the images (seeded), so no held-out
image or its caption instance is trained on.

Example:
    >>> rows = digit_pairs()                     # doctest: +SKIP
    >>> rows[0]["caption"], rows[0]["label"]     # doctest: +SKIP
    ('a handwritten digit zero', 0)
"""
from __future__ import annotations

import base64
import binascii
import collections
import importlib.util
import os
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from rw_tf.data.images import DEFAULT_MAX_BYTES, check_image
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.lines import open_input
from rw_tf.data.splits import text_key

MAX_IMAGE_BYTES = 1 << 30   # the images of read_image_caption_pairs, together (they are held in memory)

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_TEMPLATES = ("a handwritten digit {}", "the number {} written by hand", "a scanned {}",
                     "a small image of the digit {}")
# skimage/data/_fetchers.py: the first docstring line of each loader.
PHOTO_CAPTIONS = {
    "astronaut.png": "Color image of the astronaut Eileen Collins.",
    "camera.png": "Gray-level cameraman image.",
    "coffee.png": "Coffee cup.",
    "chelsea.png": "Chelsea the cat.",
    "rocket.jpg": "Launch photo of DSCOVR on Falcon 9 by SpaceX.",
    "horse.png": "Black and white silhouette of a horse.",
    "coins.png": "Greek coins from Pompeii.",
    "moon.png": "Surface of the moon.",
    "page.png": "Scanned page.",
    "text.png": "Gray-level text image.",
    "brick.png": "Brick wall.",
    "grass.png": "Grass.",
    "gravel.png": "Gravel.",
    "hubble_deep_field.jpg": "Hubble eXtreme Deep Field.",
    "retina.jpg": "Human retina.",
    "cell.png": "Cell floating in saline.",
    "clock_motion.png": "Motion blurred clock.",
    "ihc.png": "Immunohistochemical (IHC) staining with hematoxylin counterstaining.",
    "logo.png": "Scikit-image logo, a RGBA image.",
    "microaneurysms.png": "Gray-level retinal image with microaneurysms.",
    "motorcycle_left.png": "Stereo image pair of a motorcycle (left image).",
    "phantom.png": "Image of a phantom used in medical imaging.",
    "chessboard_GRAY.png": "Checkerboard image (grayscale).",
    "color.png": "Chart of colours.",
}


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 [h, w] or [h, w, c] -> PNG bytes."""
    pixels = np.asarray(pixels, np.uint8)
    return tf.io.encode_png(pixels[..., None] if pixels.ndim == 2 else pixels).numpy()


def digit_pairs() -> List[Dict]:
    """``[{"image": PNG bytes, "caption": str, "label": digit}, ...]`` for the 1,797 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        pixels = np.round(image * (255.0 / 16.0)).astype(np.uint8)
        caption = CAPTION_TEMPLATES[i % len(CAPTION_TEMPLATES)].format(DIGIT_NAMES[int(label)])
        rows.append({"image": encode_png(pixels), "caption": caption, "label": int(label)})
    return rows


def skimage_data_dir() -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image's bundled images are needed: install scikit-image==0.25.2 with "
                                "--no-deps (requirements/data-packages.txt; make env does it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def photo_pairs() -> List[Dict]:
    """The bundled photographs that exist, as ``{"image": bytes, "caption", "label": index}``."""
    folder = skimage_data_dir()
    rows = []
    for i, (name, caption) in enumerate(sorted(PHOTO_CAPTIONS.items())):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                rows.append({"image": f.read(), "caption": caption, "label": i})
    return rows


def face_pairs() -> List[Dict]:
    """lfw_subset: 100 faces (label 1) then 100 non-faces (label 0)."""
    images = np.load(os.path.join(skimage_data_dir(), "lfw_subset.npy"))
    rows = []
    for i, image in enumerate(images):
        face = i < 100
        rows.append({"image": encode_png(np.clip(image * 255.0, 0, 255)),
                     "caption": "a photo of a face" if face else "a photo of something that is not a face",
                     "label": int(face)})
    return rows


def _image_bytes(image: Any, folder: str, rejects: collections.Counter) -> Optional[bytes]:
    """The bytes ``image`` (a path or ``{"b64": ...}``) names, at most one more than
    ``check_image`` accepts (so that it counts the rest as too large), or None (counted)."""
    if isinstance(image, dict) and isinstance(image.get("b64"), str):
        try:
            return base64.b64decode(image["b64"], validate=True)
        except (binascii.Error, ValueError):
            rejects["invalid_base64"] += 1
            return None
    if not isinstance(image, str) or not image.strip():
        rejects["missing_image"] += 1
        return None
    path = image if "://" in image or os.path.isabs(image) else os.path.join(folder, image)
    try:
        with open_input(path) as stream:
            return stream.read(DEFAULT_MAX_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, tf.errors.NotFoundError):
        rejects["image_file_not_found"] += 1
    except PermissionError:
        rejects["image_file_unreadable"] += 1
    # Other failures (a storage that cannot be reached, credentials) are the run's, not the row's: raised.
    return None


def read_image_caption_pairs(path: str, max_image_bytes: int = MAX_IMAGE_BYTES) -> Tuple[List[Dict], Dict[str, int]]:
    """Your pairs (see the module docstring) as ``{"image": bytes, "caption", "label": class id}``
    rows (class ids number the classes in sorted order), and what was left out, by reason."""
    rejects: collections.Counter = collections.Counter()
    folder = os.path.dirname(path)
    rows, total = [], 0
    for row in read_jsonl_objects(path, rejects):
        caption, label = row.get("caption"), row.get("label")
        if not isinstance(caption, str) or not text_key(caption):   # nothing the tokenizer reads
            rejects["missing_caption"] += 1
            continue
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
            rejects["invalid_label"] += 1
            continue
        data = _image_bytes(row.get("image"), folder, rejects)
        if data is None:
            continue
        total += len(data)
        if total > max_image_bytes:
            raise ValueError(f"the images of {path} take more than {max_image_bytes:,} bytes, which rw-tf holds in "
                             "memory: give fewer pairs")
        rows.append({"image": data, "caption": caption, "label": text_key(caption) if label is None else str(label)})
    class_ids = {name: i for i, name in enumerate(sorted({r["label"] for r in rows}))}
    for row in rows:
        row["label"] = class_ids[row["label"]]
    kept, image_rejects = checked_pairs(rows)
    rejects.update(image_rejects)
    return kept, dict(rejects)


def checked_pairs(rows: Sequence[Dict]) -> Tuple[List[Dict], Dict[str, int]]:
    """The rows whose image passes ``rw_tf.data.images.check_image``, and the others counted by reason."""
    kept, rejected = [], collections.Counter()
    for row in rows:
        reason = check_image(row["image"])
        if reason is None:
            kept.append(row)
        else:
            rejected[reason] += 1
    return kept, dict(rejected)


def load_image_caption_pairs(pairs_file: Optional[str] = None, images: str = "digits",
                             max_pairs: Optional[int] = None) -> Tuple[List[Dict], Dict[str, int]]:
    """The pairs a run trains and evaluates on: ``pairs_file``'s (``read_image_caption_pairs``) or
    the built-in set ``images``, the first ``max_pairs`` of them, and what was left out, by reason;
    a ``ValueError`` when they hold fewer than two images (one to train on, one to hold out)."""
    if pairs_file:
        rows, rejects = read_image_caption_pairs(pairs_file)
        rows = rows[:max_pairs]
    else:
        rows, rejects = checked_pairs(IMAGE_TEXT_DATASETS[images]()[:max_pairs])
    if len({r["image"] for r in rows}) < 2:
        raise ValueError(f"{len(rows)} usable image-caption pairs: training and evaluation need two images at "
                         f"least (rejected {rejects})")
    return rows, rejects


def split_pairs(rows: Sequence[Dict], eval_fraction: float, seed: int) -> Tuple[List[Dict], List[Dict]]:
    """(train, eval) by image, seeded; identical image bytes never end up on both sides."""
    by_image: Dict[bytes, List[Dict]] = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    keys = sorted(by_image)
    random.Random(seed).shuffle(keys)
    cut = max(1, int(round(len(keys) * eval_fraction)))
    held_out = set(keys[:cut])
    train = [r for k in keys if k not in held_out for r in by_image[k]]
    evaluation = [r for k in keys if k in held_out for r in by_image[k]]
    return train, evaluation


# Datasets of labelled image-caption pairs the image-text task trains on (photo_pairs has one
# image per caption: too few to train, used to show retrieval on real photographs).
IMAGE_TEXT_DATASETS = {"digits": digit_pairs, "faces": face_pairs}
