"""Image-text alignment task (WIP): an ``ImageTextModel`` trained with symmetric InfoNCE on image-caption pairs.

Data: ``digit_pairs`` (default) split by image (``split_pairs``). Images are decoded by the same
TF ops as the export (``decode_images``). Evaluation on the held-out images: image -> text and
text -> image recall@1/5, where a retrieved item is relevant when it shows / names the same class
(the captions carry only the digit), against chance (the share of relevant items).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import DictConfig
from rw_tf.data.image_text import digit_pairs, split_pairs
from rw_tf.data.images import check_image, decode_images
from rw_tf.data.text_inputs import single_segment_inputs, with_static_batch
from rw_tf.models.image_text import ImageTextModel
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.networks.image_encoder import ConvImageEncoder, ViTImageEncoder
from rw_tf.tasks.base import Task
from rw_tf.training.runner import TrainerConfig


@dataclasses.dataclass
class ImageTextTaskConfig(DictConfig):
    init_from: Optional[str] = None          # the text encoder (default all-MiniLM-L6-v2)
    image_encoder: str = "vit"               # or "cnn"
    image_preset: str = "tiny"
    image_size: int = 32
    projection_dim: int = 128
    max_sequence_length: int = 16
    eval_fraction: float = 0.2


def retrieval_recalls(image_vectors: np.ndarray, text_vectors: np.ndarray, labels: np.ndarray,
                      ks=(1, 5)) -> Dict[str, float]:
    """Class-level recall@k both ways, and chance (the mean share of relevant items)."""
    scores = image_vectors @ text_vectors.T
    relevant = labels[:, None] == labels[None, :]
    out = {}
    for name, s, rel in (("image_to_text", scores, relevant), ("text_to_image", scores.T, relevant.T)):
        order = np.argsort(-s, axis=1)
        for k in ks:
            out[f"{name}_recall@{k}"] = float(np.mean(np.take_along_axis(rel, order[:, :k], 1).any(1)))
    out["chance_recall@1"] = float(relevant.mean())
    return out


class ImageTextTask(Task):
    """See the module docstring."""

    name = "image_text"
    config_class = ImageTextTaskConfig
    trainer_defaults = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-4, "decay": "constant",
                        "clipnorm": 1.0, "adam_epsilon": 1e-8}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed = trainer.seed
        rows = digit_pairs()
        rejects = {}
        kept: List[Dict] = []
        for row in rows:
            reason = check_image(row["image"])
            if reason is None:
                kept.append(row)
            else:
                rejects[reason] = rejects.get(reason, 0) + 1
        self.train_rows, self.eval_rows = split_pairs(kept, cfg.eval_fraction, trainer.seed)
        self.init_from = cfg.init_from or minilm_checkpoint_dir()
        self.tokenizer = pretrained_tokenizer(self.init_from)
        return {"train_pairs": len(self.train_rows), "eval_pairs": len(self.eval_rows), "rejected_images": rejects}

    def build_model(self) -> keras.Model:
        cfg = self.config
        image_encoder = (ViTImageEncoder.from_preset(cfg.image_preset, image_size=cfg.image_size)
                         if cfg.image_encoder == "vit" else ConvImageEncoder(image_size=cfg.image_size))
        model = ImageTextModel(image_encoder, pretrained_encoder(self.init_from, self.tokenizer),
                               projection_dim=cfg.projection_dim, name="image_text_model")
        model.build({"image": (None, cfg.image_size, cfg.image_size, 3),
                     "text": {k: (None, cfg.max_sequence_length) for k in ENCODER_INPUTS}})
        return model

    def _encode(self, images, captions):
        return {"image": decode_images(images, self.config.image_size),
                "text": single_segment_inputs(self.tokenizer, captions, self.config.max_sequence_length)}

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(([r["image"] for r in self.train_rows],
                                                 [r["caption"] for r in self.train_rows],
                                                 [r["label"] for r in self.train_rows]))
        ds = ds.shuffle(len(self.train_rows), seed=self.seed).repeat().batch(batch_size, drop_remainder=True)

        def encode(images, captions, labels):
            # Pairs of the same class are not each other's negatives (the captions only name the class).
            ids = tf.stack([labels, labels], axis=1)
            return self._encode(images, captions), tf.cast(ids, tf.int32)
        return with_static_batch(ds.map(encode), batch_size).prefetch(2)

    def num_train_examples(self) -> int:
        return len(self.train_rows)

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        images, texts = [], []
        for start in range(0, len(self.eval_rows), 64):
            batch = self.eval_rows[start:start + 64]
            x = self._encode(tf.constant([r["image"] for r in batch]), tf.constant([r["caption"] for r in batch]))
            images.append(np.asarray(model.embed_image(x["image"], training=False)))
            texts.append(np.asarray(model.embed_text(x["text"], training=False)))
        return retrieval_recalls(np.concatenate(images), np.concatenate(texts),
                                 np.array([r["label"] for r in self.eval_rows]))

    def export(self, model: keras.Model, export_dir: str) -> str:
        raise NotImplementedError("WIP: the image-text export (image bytes + text signatures) is not written yet")
