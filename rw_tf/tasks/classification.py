"""Text classification task (single- or multi-label) with calibrated probabilities.

Data: JSON Lines with ``text`` and ``label`` (int class) or, with ``multi_label``, ``labels``
(list of ints). Rows with a missing/non-string text, or one the tokenizer reads nothing of, or an
invalid label are rejected and counted; classes are 0..largest label (``count_classes``) unless
``num_classes`` is given. Default data: the documentation-source set (``rw_tf.data.labelled``),
split 80/20; with ``multi_label`` the Unicode character name -> properties set. Inside a TFX
Trainer the data are the pipeline's transformed examples (``examples``).
Encoder: ``init_from`` (a Hugging Face BERT folder or an rw-tf export/training folder; default:
all-MiniLM-L6-v2 from its package; in TFX, a fresh ``preset`` encoder if no base model is given).
Refined fine-tuning: ``kd_teacher`` (a saved ``TextClassifier``, e.g. knowledge-enhanced) as f_K,
L = L_task + kd_weight * L_KD at ``kd_temperature``.
Evaluation: accuracy (multi-label: micro/macro F1, subset accuracy) against the majority baseline.
Calibration: ``calibration_fraction`` of the training rows are held out (never trained on); the
temperature that ``finish`` fits on them scales the exported probabilities, and ECE before/after
is reported on the evaluation split, which played no part in choosing it. Calibration and evaluation
rows whose text is also a training text are removed and counted (``rw_tf.data.splits``).
Export: ``classify_text`` (``rw_tf.export.classification``).

Example:
    >>> task = ClassificationTask(ClassificationTaskConfig(max_examples_per_class=200))   # doctest: +SKIP
    >>> run_task(task, task.trainer_config(epochs=1), "/tmp/clf")                         # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_task_model, pretrained_tokenizer
from rw_tf.config import DictConfig, EncoderConfig
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.labelled import documentation_source_examples, unicode_property_examples
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_by_group, text_key
from rw_tf.data.text_inputs import (
    bucketed_text_batches,
    rebucket_padded_batches,
    single_segment_encoder,
    with_static_batch,
)
from rw_tf.export.base import save_export
from rw_tf.export.classification import ClassifierExport
from rw_tf.knowledge.entity_linking import alias_report, linker_for_knowledge_dir
from rw_tf.model_files import load_keras_file
from rw_tf.models.classifier import TextClassifier, add_task_distillation_targets, task_logits
from rw_tf.networks.encoder import ENCODER_INPUTS, TransformerEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.tasks.calibration import expected_calibration_error, fit_temperature, nll
from rw_tf.tasks.multi_label_metrics import majority_label_sets, multi_label_scores
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training.runner import TrainerConfig

# Without --num-classes the classes are 0..largest label; a label that is really an id (10**9)
# would ask for a head of that many rows (4 GB per million classes at base size, more for Adam),
# so labels stop here and bigger label spaces must be declared with --num-classes.
MAX_INFERRED_CLASSES = 65_536


@dataclasses.dataclass
class ClassificationTaskConfig(DictConfig):
    init_from: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    multi_label: bool = False
    num_classes: Optional[int] = None
    max_sequence_length: int = 128
    # Training batches of similar-length texts, each padded to its bucket (rw_tf.data.text_inputs).
    length_bucketing: bool = False
    max_examples_per_class: int = 1000
    max_examples: int = 3000  # multi-label default set (sampled Unicode character names)
    dropout: float = 0.1
    calibration_fraction: float = 0.1
    preset: str = "tiny"      # TFX without a base model: the size of a fresh encoder
    label_key: str = "label"  # TFX: the transformed label feature
    # Knowledge mode (a knowledge-enhanced init_from): the linker that gives raw texts entity ids.
    knowledge_dir: Optional[str] = None
    alias_file: Optional[str] = None
    # Refined fine-tuning: a knowledge model (a saved TextClassifier) as f_K.
    kd_teacher: Optional[str] = None
    kd_weight: float = 0.5
    kd_temperature: float = 2.0

    may_be_zero = ("calibration_fraction",)   # 0: no temperature scaling

    def validate(self) -> None:
        if self.eval_file and not self.train_file:   # the built-in data has its own held-out split
            raise ValueError("eval_file (--eval) is read with train_file (--train) only")
        if self.train_file:
            self.require_defaults(["max_examples", "max_examples_per_class"], "with the built-in data (no train_file)")
        else:
            self.require_defaults(["max_examples_per_class"] if self.multi_label else ["max_examples"],
                                  f"with the built-in {'single' if self.multi_label else 'multi'}-label data")


def read_labelled_jsonl(path: str, multi_label: bool) -> Tuple[List[Dict], collections.Counter]:
    rows, rejects = [], collections.Counter()
    for row in read_jsonl_objects(path, rejects):
        text, label = row.get("text"), row.get("labels" if multi_label else "label")
        if not isinstance(text, str) or not text_key(text):   # nothing the tokenizer reads (NULs, spaces)
            rejects["missing_text"] += 1
        elif multi_label and not (isinstance(label, list)
                                  and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in label)):
            rejects["invalid_labels"] += 1
        elif not multi_label and not (isinstance(label, int) and not isinstance(label, bool) and label >= 0):
            rejects["invalid_label"] += 1
        else:
            rows.append({"text": text, "label": label})
    return rows, rejects


def load_rows(config: ClassificationTaskConfig, seed: int) -> Tuple[List[Dict], List[Dict], Dict[str, int]]:
    rejects: collections.Counter = collections.Counter()
    if config.train_file:
        if not config.eval_file:
            raise ValueError("--train needs --eval too")
        train, rejects = read_labelled_jsonl(config.train_file, config.multi_label)
        evaluation, eval_rejects = read_labelled_jsonl(config.eval_file, config.multi_label)
        rejects.update(eval_rejects)
    elif config.multi_label:
        rows = [{"text": r["text"], "label": r["labels"]} for r in unicode_property_examples(config.max_examples, seed)]
        train, evaluation = split_by_group(rows)
    else:
        rows = documentation_source_examples(config.max_examples_per_class, seed=seed)
        cut = int(0.8 * len(rows))
        train, evaluation = rows[:cut], rows[cut:]
    evaluation = drop_eval_rows_seen_in_training(train, evaluation, ["text"], rejects)
    if not train or not evaluation:
        raise ValueError(f"no usable rows (train {len(train)}, eval {len(evaluation)}; rejected {dict(rejects)})")
    if not config.multi_label and len({r["label"] for r in train}) == 1:
        # It would learn to answer that class whatever the text, and report success.
        raise ValueError(f"every usable training row has label {train[0]['label']}: a classifier needs rows of "
                         f"at least two classes (rejected {dict(rejects)})")
    return train, evaluation, dict(rejects)


def count_classes(rows: List[Dict], multi_label: bool, num_classes: Optional[int]) -> int:
    """``num_classes`` if given, else the largest label + 1 (at least 2 for single-label); a label
    out of that range is an error naming it (checked on Python ints, before NumPy could overflow)."""
    top = max((x for r in rows for x in (r["label"] if multi_label else [r["label"]])), default=0)
    if num_classes is None and top >= MAX_INFERRED_CLASSES:
        raise ValueError(f"label {top:,} would make {top + 1:,} classes: classes are numbered from 0 and "
                         f"rw-tf infers at most {MAX_INFERRED_CLASSES:,} of them; number the labels 0..K-1 "
                         "or give --num-classes")
    if num_classes is not None and top >= num_classes:
        raise ValueError(f"label {top:,} is out of range for {num_classes} classes (0..{num_classes - 1})")
    return num_classes or (top + 1 if multi_label else max(2, top + 1))


def label_targets(rows: List[Dict], multi_label: bool, num_classes: int) -> np.ndarray:
    """Class ids (single-label) or a 0/1 matrix (multi-label) of labels in 0..num_classes-1."""
    if not multi_label:
        return np.array([r["label"] for r in rows], np.int64)
    target = np.zeros((len(rows), num_classes), np.float32)
    for i, r in enumerate(rows):
        target[i, r["label"]] = 1.0
    return target


class ClassificationTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer."""

    name = "classification"
    config_class = ClassificationTaskConfig
    trainer_defaults = {"epochs": 2, "learning_rate": 5e-5, "decay": "constant", "clipnorm": 0.0}

    temperature = 1.0   # the exported probabilities' until ``finish`` fits one

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        if self.examples is None:   # the encoder is init_from's (or all-MiniLM-L6-v2), the label raw rows'
            cfg.require_defaults(["preset", "label_key"], "by a pipeline's Trainer")
            if not cfg.kd_teacher:   # (a pipeline's Trainer gets kd_teacher from its teacher input)
                cfg.require_defaults(["kd_weight", "kd_temperature"], "with kd_teacher")
        self.seed, self.batch_size, self.validation_steps = trainer.seed, trainer.batch_size, trainer.validation_steps
        self.tokenizer = (WordPieceTokenizer(self.examples.vocab_file) if self.examples is not None
                          else pretrained_tokenizer(cfg.init_from or minilm_checkpoint_dir()))
        self.linker = linker_for_knowledge_dir(self.tokenizer, cfg.alias_file, cfg.knowledge_dir)
        if self.examples is not None:
            self.max_sequence_length = self.examples.max_sequence_length
            self.num_classes = cfg.num_classes or 2
            return {"num_classes": self.num_classes}
        self.max_sequence_length = cfg.max_sequence_length
        train, evaluation, rejects = load_rows(cfg, trainer.seed)
        cut = len(train) - int(round(cfg.calibration_fraction * len(train)))
        train, calibration = train[:cut], train[cut:]
        calibration = drop_eval_rows_seen_in_training(train, calibration, ["text"], rejects,
                                                      "calibration_text_in_train")
        self.num_classes = count_classes(train + calibration + evaluation, cfg.multi_label, cfg.num_classes)
        self.texts = {"train": [r["text"] for r in train], "calibration": [r["text"] for r in calibration],
                      "eval": [r["text"] for r in evaluation]}
        self.targets = {split: label_targets(rows, cfg.multi_label, self.num_classes)
                        for split, rows in (("train", train), ("calibration", calibration), ("eval", evaluation))}
        self.y_train, self.y_eval = self.targets["train"], self.targets["eval"]
        stats: Dict[str, Any] = {"train_examples": len(train), "calibration_examples": len(calibration),
                                 "eval_examples": len(evaluation), "rejected_rows": rejects,
                                 "num_classes": self.num_classes, **alias_report(self.linker)}
        if cfg.multi_label:
            stats["majority_baseline"] = multi_label_scores(majority_label_sets(self.y_train, len(self.y_eval)),
                                                            self.y_eval)
        else:
            counts = np.bincount(self.y_eval, minlength=self.num_classes)
            stats["majority_baseline_accuracy"] = float(counts.max() / counts.sum())
        return stats

    def build_model(self) -> keras.Model:
        cfg = self.config
        if cfg.init_from or self.examples is None:
            encoder = pretrained_encoder(cfg.init_from or minilm_checkpoint_dir(), self.tokenizer)
            check_sequence_length(self.max_sequence_length, encoder)
        else:
            encoder = TransformerEncoder.from_encoder_config(
                EncoderConfig.preset_for_length(cfg.preset, self.tokenizer.vocab_size, self.max_sequence_length))
        self.teacher = self._load_teacher() if cfg.kd_teacher else None
        model = TextClassifier(encoder, num_classes=self.num_classes, multi_label=cfg.multi_label, dropout=cfg.dropout,
                               kd_weight=cfg.kd_weight if self.teacher is not None else 0.0,
                               kd_temperature=cfg.kd_temperature, name="text_classifier")
        model.build({k: (None, self.max_sequence_length) for k in self.input_names()})
        return model

    def _load_teacher(self) -> TextClassifier:
        """f_K for refined fine-tuning (a saved ``.keras`` file or an rw-tf export/training folder),
        checked against the student: same label set, same kind of labels, same vocabulary size."""
        cfg = self.config
        teacher = (load_keras_file(cfg.kd_teacher) if cfg.kd_teacher.endswith(".keras")
                   else pretrained_task_model(cfg.kd_teacher))
        if not isinstance(teacher, TextClassifier):
            raise ValueError(f"kd_teacher {cfg.kd_teacher} holds a {type(teacher).__name__}, not a TextClassifier")
        if (teacher.num_classes, teacher.multi_label) != (self.num_classes, cfg.multi_label):
            raise ValueError(f"kd_teacher {cfg.kd_teacher} predicts {teacher.num_classes} "
                             f"{'multi' if teacher.multi_label else 'single'}-label classes; the task has "
                             f"{self.num_classes} {'multi' if cfg.multi_label else 'single'}-label classes")
        if teacher.encoder.config.vocab_size != self.tokenizer.vocab_size:
            raise ValueError(f"kd_teacher {cfg.kd_teacher} has vocab_size {teacher.encoder.config.vocab_size}, "
                             f"the student's tokenizer {self.tokenizer.vocab_size}")
        if isinstance(teacher.encoder, KnowledgeEnhancedEncoder) and self.linker is None:
            raise ValueError("the teacher is knowledge-enhanced: give knowledge_dir and alias_file so its inputs "
                             "carry entity ids")
        return teacher

    def input_names(self) -> tuple:
        return ENCODER_INPUTS + (("entity_ids",) if self.linker is not None else ())

    def dataset(self, split: str, batch_size: int) -> tf.data.Dataset:
        """(inputs, label) batches of ``split`` ("train" repeats, shuffled; "calibration"; "eval")."""
        def features_and_label(features):
            return {k: features[k] for k in self.input_names()}, features[self.config.label_key]

        encode_texts = single_segment_encoder(self.tokenizer, self.max_sequence_length, self.linker)

        def encode(texts, targets):
            return encode_texts(texts), targets

        bucketed = split == "train" and self.config.length_bucketing
        if self.examples is not None:
            ds = self.examples.dataset(split, batch_size).map(features_and_label)
            if bucketed:
                ds = rebucket_padded_batches(ds, self.max_sequence_length, batch_size, self.input_names())
        elif bucketed:
            ds = bucketed_text_batches(self.texts[split], [self.targets[split]], self.tokenizer,
                                       self.max_sequence_length, batch_size, self.seed, self.linker)
        elif split == "train":  # static batch shape in the train step (XLA, TPU)
            ds = tf.data.Dataset.from_tensor_slices((self.texts[split], self.targets[split]))
            ds = ds.shuffle(len(self.texts[split]), seed=self.seed).repeat().batch(batch_size, drop_remainder=True)
            ds = with_static_batch(ds.map(encode), batch_size)
        else:
            ds = tf.data.Dataset.from_tensor_slices((self.texts[split], self.targets[split])).batch(batch_size)
            ds = ds.map(encode)
        return (add_task_distillation_targets(ds, self.teacher) if self.teacher is not None else ds).prefetch(2)

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        return self.dataset("train", batch_size)

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        return self.dataset("eval", batch_size)

    def num_train_examples(self) -> int:
        return len(self.texts["train"])

    def logits(self, model: keras.Model, split: str) -> np.ndarray:
        def inputs_only(x, y):
            return x

        return np.asarray(task_logits(model.predict(self.dataset(split, self.batch_size).map(inputs_only), verbose=0)))

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        if self.examples is not None:
            return model.evaluate(self.validation_dataset(self.batch_size), steps=self.validation_steps,
                                  verbose=0, return_dict=True)
        logits = self.logits(model, "eval")
        if self.config.multi_label:
            return {"accuracy": float(np.mean((logits > 0) == (self.y_eval > 0.5))),
                    **multi_label_scores(logits > 0, self.y_eval)}
        return {"accuracy": float(np.mean(logits.argmax(-1) == self.y_eval))}

    def finish(self, model: keras.Model) -> Dict[str, Any]:
        """Fits the exported temperature (Guo et al. 2017) on the calibration split; reports NLL there
        and ECE on the evaluation split."""
        if self.examples is not None or not self.texts["calibration"]:
            return {}
        multi, y_cal = self.config.multi_label, self.targets["calibration"]
        calibration, evaluation = self.logits(model, "calibration"), self.logits(model, "eval")
        self.temperature = fit_temperature(calibration, y_cal, multi)
        return {"temperature": self.temperature,
                "calibration_nll_before": nll(calibration, y_cal, 1.0, multi),
                "calibration_nll_after": nll(calibration, y_cal, self.temperature, multi),
                "ece_before_calibration": expected_calibration_error(evaluation, self.y_eval, multi_label=multi),
                "ece_after_calibration": expected_calibration_error(evaluation, self.y_eval, self.temperature,
                                                                   multi_label=multi)}

    def export(self, model: keras.Model, export_dir: str) -> str:
        module = ClassifierExport(model, self.tokenizer, self.max_sequence_length, linker=self.linker,
                                  transform_output=self.transform_output,
                                  label_keys=(self.config.label_key,), temperature=self.temperature)
        return save_export(module, export_dir)
