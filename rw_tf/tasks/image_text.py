"""Image-text task: CLIP alignment (``--objective alignment``) or image-text matching with a fused
head plus alignment (``--objective matching``), on image-caption pairs split by image.

Data: ``--images digits`` (default; scikit-learn's 1,797 handwritten digits with templated
captions) or ``faces`` (scikit-image's lfw_subset), from ``rw_tf.data.image_text``, or your pairs
(``--pairs``: JSON Lines ``image``, ``caption``, optional ``label``; ``read_image_caption_pairs``;
what cannot be used is counted in the result's ``data.rejected_rows``); every image
passes the header checks of ``rw_tf.data.images`` (failures are counted rejects) and is decoded
by the same TF ops as the export. Held-out images (``split_pairs``) are never trained on.

Evaluation on the held-out images, before and after training:
- retrieval both ways over the distinct captions, recall@1/5, where a retrieved item is relevant
  when it shows / names the same class (the captions only carry the class), with the chance
  recall of a random ranking;
- matching: every held-out image with its own caption and with a caption of another class (fixed,
  seeded): ``match_accuracy`` (each candidate classified at probability 0.5) and
  ``match_ranking_accuracy`` (own caption scored above the other one; ties count half), chance 0.5.
``--fusion`` picks the matching head's input (``ImageTextMatcher``): cross_attention, late,
image_only or text_only; ``benchmarks/multimodal_fusion.py`` compares them on one split.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Hashable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import ENCODER_PRESETS, DictConfig, check_choice
from rw_tf.data.image_text import IMAGE_TEXT_DATASETS, load_image_caption_pairs, split_pairs
from rw_tf.data.images import decode_images
from rw_tf.data.text_inputs import single_segment_encoder, with_static_batch
from rw_tf.export.base import save_export
from rw_tf.export.image_text import ImageTextExport
from rw_tf.models.image_text import MATCHING_FUSIONS, ImageTextMatcher, ImageTextModel
from rw_tf.networks.encoder import ENCODER_INPUTS, TransformerEncoder
from rw_tf.networks.image_encoder import VIT_PRESETS, ConvImageEncoder, ViTImageEncoder
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.tokenization.wordpiece import WordPieceTokenizer
from rw_tf.training.runner import TrainerConfig

NEGATIVE_ROUNDS = 8   # distinct (image, other caption) assignments cycled through in training


@dataclasses.dataclass
class ImageTextTaskConfig(DictConfig):
    init_from: Optional[str] = None          # the text encoder and tokenizer (default all-MiniLM-L6-v2)
    text_preset: Optional[str] = None        # a fresh text encoder of this preset instead (init_from's tokenizer)
    images: str = "digits"                   # or "faces"
    pairs_file: Optional[str] = None         # your pairs instead (rw_tf.data.image_text.read_image_caption_pairs)
    objective: str = "alignment"             # or "matching" (ITM head + alignment)
    fusion: str = "cross_attention"          # matching head input: cross_attention|late|image_only|text_only
    image_encoder: str = "vit"               # or "cnn"
    image_preset: str = "tiny"
    image_size: int = 32
    projection_dim: int = 128
    fusion_size: int = 128
    fusion_dropout: float = 0.1
    max_sequence_length: int = 16
    eval_fraction: float = 0.2
    max_pairs: Optional[int] = None          # the first N image-caption pairs only (quick runs)

    def validate(self) -> None:
        choices = {"images": tuple(IMAGE_TEXT_DATASETS), "objective": ("alignment", "matching"),
                   "fusion": MATCHING_FUSIONS, "image_encoder": ("vit", "cnn"), "image_preset": tuple(VIT_PRESETS)}
        if self.text_preset is not None:
            choices["text_preset"] = tuple(ENCODER_PRESETS)
        for key, allowed in choices.items():
            check_choice(key, getattr(self, key), allowed)
        if self.max_pairs is not None and self.max_pairs < 20:
            raise ValueError(f"max_pairs must be at least 20 (or unset), got {self.max_pairs}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if self.objective != "matching":
            self.require_defaults(["fusion", "fusion_size", "fusion_dropout"], "with objective='matching'")
        elif self.fusion != "cross_attention":   # the other heads have no fusion layer to drop out of
            self.require_defaults(["fusion_dropout"], "with fusion='cross_attention'")
        if self.pairs_file:
            self.require_defaults(["images"], "without pairs_file (the built-in pairs)")
        if self.image_encoder != "vit":
            self.require_defaults(["image_preset"], "with image_encoder='vit'")


def _recall_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(relevant, order, 1).any(1)))


def _chance_at(relevant: np.ndarray, k: int) -> float:
    """Expected recall@k of a random ranking: 1 - P(k draws without replacement miss every relevant item)."""
    n = relevant.shape[1]
    misses = [np.prod([(n - r - i) / (n - i) for i in range(min(k, n))]) for r in relevant.sum(1)]
    return float(1.0 - np.mean(misses))


def retrieval_recalls(image_vectors: np.ndarray, text_vectors: np.ndarray, labels: np.ndarray,
                      captions: Sequence[Hashable], ks=(1, 5)) -> Dict[str, float]:
    """Class-level recall@k both ways over the distinct captions, and chance for each.

    Image -> text ranks the distinct captions (identical strings would fill a top-k with one
    caption); text -> image has one query per distinct caption and ranks every image."""
    first = {}
    for i, caption in enumerate(captions):
        first.setdefault(caption, i)
    distinct = np.array(sorted(first.values()))
    scores = image_vectors @ text_vectors[distinct].T
    relevant = labels[:, None] == labels[distinct][None, :]
    out = {}
    for name, s, rel in (("image_to_text", scores, relevant), ("text_to_image", scores.T, relevant.T)):
        for k in ks:
            out[f"{name}_recall@{k}"] = _recall_at(s, rel, k)
            out[f"{name}_chance@{k}"] = _chance_at(rel, k)
    return out


def matching_metrics(positive: np.ndarray, negative: np.ndarray) -> Dict[str, float]:
    """Accuracy of each candidate at logit 0, and of own caption above the other (ties half)."""
    accuracy = (np.sum(positive > 0) + np.sum(negative <= 0)) / (2 * len(positive))
    ranking = np.mean((positive > negative) + 0.5 * (positive == negative))
    return {"match_accuracy": float(accuracy), "match_ranking_accuracy": float(ranking)}


def other_class_rows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, the index of a row of another class: a shuffled assignment, where a row drawn
    of its own class is replaced by one drawn uniformly from the rows of the other classes."""
    classes, label_of = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("matching needs captions of at least two classes")
    choice = rng.permutation(len(labels))
    # (Moving a collision along by 1, 2, 3, ... rows reaches only the offsets that are triangular
    # numbers modulo n: with 99 rows of one class and 1 of another it never ended.)
    same = np.flatnonzero(label_of[choice] == label_of)
    by_class = np.argsort(label_of, kind="stable")          # rows grouped by class
    sizes = np.bincount(label_of)
    starts = np.cumsum(sizes) - sizes
    own = label_of[same]
    # A position among the rows outside the row's class block, then past the block if at or after it.
    position = rng.integers(0, len(labels) - sizes[own])
    position += np.where(position >= starts[own], sizes[own], 0)
    choice[same] = by_class[position]
    return choice


class ImageTextTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer
    (images already decoded by the Transform, captions tokenized with its vocabulary)."""

    name = "image_text"
    config_class = ImageTextTaskConfig
    trainer_defaults = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-4, "decay": "constant",
                        "clipnorm": 1.0, "adam_epsilon": 1e-8}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed, self.validation_steps = trainer.seed, trainer.validation_steps
        self.max_sequence_length, self.image_size = cfg.max_sequence_length, cfg.image_size
        self.init_from = cfg.init_from or minilm_checkpoint_dir()
        if self.examples is not None:
            if cfg.objective != "matching":
                raise ValueError("the image-text pipeline trains objective 'matching' (its examples carry a "
                                 "negative caption each)")
            self.tokenizer = WordPieceTokenizer(self.examples.vocab_file, lower_case=True)
            self.max_sequence_length = self.examples.max_sequence_length
            self.image_size = int(self.examples.tft_output.transformed_feature_spec()["image"].shape[0])
            return {"vocab_size": self.tokenizer.vocab_size, "image_size": self.image_size}
        kept, rejects = load_image_caption_pairs(cfg.pairs_file, cfg.images, cfg.max_pairs)
        self.train_rows, self.eval_rows = split_pairs(kept, cfg.eval_fraction, trainer.seed)
        self.tokenizer = pretrained_tokenizer(self.init_from)
        rng = np.random.default_rng(trainer.seed)
        train_labels = np.array([r["label"] for r in self.train_rows])
        self.train_negatives = np.stack([other_class_rows(train_labels, rng) for _ in range(NEGATIVE_ROUNDS)])
        self.eval_negatives = other_class_rows(np.array([r["label"] for r in self.eval_rows]), rng)
        return {"train_pairs": len(self.train_rows), "eval_pairs": len(self.eval_rows),
                ("rejected_rows" if cfg.pairs_file else "rejected_images"): rejects}

    def build_model(self) -> keras.Model:
        cfg = self.config
        image_encoder = (ViTImageEncoder.from_preset(cfg.image_preset, image_size=self.image_size)
                         if cfg.image_encoder == "vit" else ConvImageEncoder(image_size=self.image_size))
        text_encoder = (TransformerEncoder.from_preset(cfg.text_preset, vocab_size=self.tokenizer.vocab_size)
                        if cfg.text_preset else pretrained_encoder(self.init_from, self.tokenizer))
        check_sequence_length(self.max_sequence_length, text_encoder)
        if text_encoder.config.vocab_size != self.tokenizer.vocab_size:
            raise ValueError(f"the captions are tokenized with {self.tokenizer.vocab_size} word pieces but the text "
                             f"encoder has {text_encoder.config.vocab_size}: use its checkpoint's vocab.txt")
        fused = cfg.objective == "matching" and cfg.fusion == "cross_attention"
        backbone = ImageTextModel(image_encoder, text_encoder, projection_dim=cfg.projection_dim,
                                  fusion_layers=1 if fused else 0, fusion_size=cfg.fusion_size,
                                  fusion_dropout=cfg.fusion_dropout,
                                  name="image_text_model")
        text_shape = {k: (None, self.max_sequence_length) for k in ENCODER_INPUTS}
        image_shape = (None, self.image_size, self.image_size, 3)
        if cfg.objective == "alignment":
            backbone.build({"image": image_shape, "text": text_shape})
            return backbone
        model = ImageTextMatcher(backbone, fusion=cfg.fusion, head_size=cfg.fusion_size, name="image_text_matcher")
        model.build({"image": image_shape, "text": text_shape, "negative_text": text_shape})
        return model

    def _text(self, captions) -> Dict[str, tf.Tensor]:
        return single_segment_encoder(self.tokenizer, self.max_sequence_length)(captions)

    def _transformed(self, split: str, batch_size: int) -> tf.data.Dataset:
        """(inputs, targets, labels) batches of the Transform's output."""
        def views(f):
            x = {"image": f["image"], **{prefix: {k: tf.cast(f[f"{prefix}_{k}"], tf.int32) for k in ENCODER_INPUTS}
                                         for prefix in ("text", "negative_text")}}
            label = tf.cast(tf.reshape(f["label"], [-1]), tf.int32)
            match = tf.tile(tf.constant([[1.0, 0.0]]), [tf.shape(label)[0], 1])
            return x, {"alignment": tf.stack([label, label], axis=1), "match": match}
        return self.examples.dataset(split, batch_size).map(views)

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:
            return with_static_batch(self._transformed("train", batch_size), batch_size)
        rows = self.train_rows
        images = tf.constant([r["image"] for r in rows])
        captions = tf.constant([r["caption"] for r in rows])
        labels = tf.constant([r["label"] for r in rows], tf.int32)
        size = self.image_size
        if self.config.objective == "alignment":
            ds = tf.data.Dataset.range(len(rows)).shuffle(len(rows), seed=self.seed).repeat()
        else:
            pairs = np.stack([np.tile(np.arange(len(rows)), NEGATIVE_ROUNDS), self.train_negatives.reshape(-1)], 1)
            ds = tf.data.Dataset.from_tensor_slices(pairs).shuffle(len(pairs), seed=self.seed).repeat()
        ds = ds.batch(batch_size, drop_remainder=True)

        def encode(index):
            own = index if self.config.objective == "alignment" else index[:, 0]
            x = {"image": decode_images(tf.gather(images, own), size), "text": self._text(tf.gather(captions, own))}
            # Pairs of the same class are not each other's negatives (the captions only name the class).
            ids = tf.stack([tf.gather(labels, own)] * 2, axis=1)
            if self.config.objective == "alignment":
                return x, ids
            x["negative_text"] = self._text(tf.gather(captions, index[:, 1]))
            match = tf.tile(tf.constant([[1.0, 0.0]]), [tf.shape(own)[0], 1])
            return x, {"alignment": ids, "match": match}
        return with_static_batch(ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE), batch_size).prefetch(2)

    def num_train_examples(self) -> int:
        return len(self.train_rows)

    def _evaluate_examples(self, model: keras.Model) -> Dict[str, Any]:
        """The same metrics on ``validation_steps`` batches of the transformed eval split (TFX)."""
        images, texts, labels, keys, positive, negative = [], [], [], [], [], []
        for x, y in self._transformed("eval", 32).take(self.validation_steps or 10):
            images.append(np.asarray(model.embed_image(x["image"], training=False)))
            texts.append(np.asarray(model.embed_text(x["text"], training=False)))
            labels.append(y["alignment"][:, 0].numpy())
            keys += [tuple(row) for row in x["text"]["token_ids"].numpy().tolist()]
            positive.append(np.asarray(model.match(x["image"], x["text"], training=False)))
            negative.append(np.asarray(model.match(x["image"], x["negative_text"], training=False)))
        return {**retrieval_recalls(np.concatenate(images), np.concatenate(texts), np.concatenate(labels), keys),
                **matching_metrics(np.concatenate(positive), np.concatenate(negative))}

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        if self.examples is not None:
            return self._evaluate_examples(model)
        rows, size = self.eval_rows, self.image_size
        images, texts, positive, negative = [], [], [], []
        for start in range(0, len(rows), 64):
            batch = rows[start:start + 64]
            pixels = decode_images(tf.constant([r["image"] for r in batch]), size)
            own = self._text(tf.constant([r["caption"] for r in batch]))
            images.append(np.asarray(model.embed_image(pixels, training=False)))
            texts.append(np.asarray(model.embed_text(own, training=False)))
            if isinstance(model, ImageTextMatcher):
                other = self._text(tf.constant([rows[j]["caption"] for j in self.eval_negatives[start:start + 64]]))
                positive.append(np.asarray(model.match(pixels, own, training=False)))
                negative.append(np.asarray(model.match(pixels, other, training=False)))
        metrics = retrieval_recalls(np.concatenate(images), np.concatenate(texts),
                                    np.array([r["label"] for r in rows]), [r["caption"] for r in rows])
        if positive:
            metrics.update(matching_metrics(np.concatenate(positive), np.concatenate(negative)))
        return metrics

    def export(self, model: keras.Model, export_dir: str) -> str:
        module = ImageTextExport(model, self.tokenizer, self.max_sequence_length, self.image_size,
                                 transform_output=self.transform_output)
        return save_export(module, export_dir)
