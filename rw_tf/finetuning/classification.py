"""Text classification fine-tuning from a pretrained encoder, with calibrated probabilities.

Data: JSON Lines with ``text`` and ``label`` (int class) or, with ``multi_label``, ``labels``
(list of ints). Rows with a missing/non-string/empty text or an invalid label are rejected and
counted. Default data: the documentation-source set (``rw_tf.data.labelled``), split 80/20; with
``multi_label`` the Unicode character name -> properties set, split 80/20.
Encoder: a Hugging Face BERT checkpoint folder (default: all-MiniLM-L6-v2 from its package).
Output: ``export/1`` (SavedModel with the raw-text ``classify_text`` signature, TF Serving
layout) and ``metrics.json`` (baseline, before/after accuracy, temperature, ECE; multi-label adds
micro/macro F1 and subset accuracy before and after, against a per-label majority baseline).

Example:
    >>> result = finetune_classifier(ClassificationConfig(output_dir="/tmp/clf", epochs=1))  # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import load_hf_bert, minilm_checkpoint_dir
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.labelled import documentation_source_examples, unicode_property_examples
from rw_tf.data.splits import split_by_group
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.finetuning.calibration import expected_calibration_error, fit_temperature
from rw_tf.finetuning.multi_label_metrics import majority_label_sets, multi_label_scores
from rw_tf.models.classifier import TextClassifier, add_task_distillation_targets, task_logits


@dataclasses.dataclass
class ClassificationConfig:
    output_dir: str
    checkpoint: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    multi_label: bool = False
    num_classes: Optional[int] = None
    max_sequence_length: int = 128
    batch_size: int = 32
    epochs: int = 2
    max_steps_per_epoch: Optional[int] = None
    learning_rate: float = 5e-5
    max_examples_per_class: int = 1000
    max_examples: int = 3000  # multi-label default set (sampled Unicode character names)
    # Refined fine-tuning: a knowledge model (a saved TextClassifier, e.g. knowledge-enhanced) as
    # f_K; the loss becomes L_task + kd_weight * KL(f_K || f) at kd_temperature.
    kd_teacher: Optional[str] = None
    kd_weight: float = 0.5
    kd_temperature: float = 2.0
    seed: int = 12345


def read_labelled_jsonl(path: str, multi_label: bool) -> Tuple[List[Dict], collections.Counter]:
    rows, rejects = [], collections.Counter()
    for row in read_jsonl_objects(path, rejects):
        text, label = row.get("text"), row.get("labels" if multi_label else "label")
        if not isinstance(text, str) or not text.strip():
            rejects["missing_text"] += 1
        elif multi_label and not (isinstance(label, list) and all(isinstance(x, int) and x >= 0 for x in label)):
            rejects["invalid_labels"] += 1
        elif not multi_label and not (isinstance(label, int) and not isinstance(label, bool) and label >= 0):
            rejects["invalid_label"] += 1
        else:
            rows.append({"text": text, "label": label})
    return rows, rejects


def load_data(config: ClassificationConfig) -> Tuple[List[Dict], List[Dict], Dict[str, int]]:
    if config.train_file:
        train, rejects = read_labelled_jsonl(config.train_file, config.multi_label)
        if not config.eval_file:
            raise ValueError("--train needs --eval too")
        evaluation, eval_rejects = read_labelled_jsonl(config.eval_file, config.multi_label)
        rejects.update(eval_rejects)
    else:
        if config.multi_label:
            train, evaluation = split_by_group(unicode_property_examples(config.max_examples, seed=config.seed))
        else:
            rows = documentation_source_examples(config.max_examples_per_class, seed=config.seed)
            cut = int(0.8 * len(rows))
            train, evaluation = rows[:cut], rows[cut:]
        rejects = collections.Counter()
    if not train or not evaluation:
        raise ValueError(f"no usable rows (train {len(train)}, eval {len(evaluation)}; rejected {dict(rejects)})")
    return train, evaluation, dict(rejects)


def _label_of(row: Dict, multi_label: bool):
    return row["labels"] if multi_label and "labels" in row else row["label"]


def _num_classes(config: ClassificationConfig, rows: List[Dict]) -> int:
    if config.num_classes:
        return config.num_classes
    labels = [x for r in rows for x in (_label_of(r, True) if config.multi_label else [r["label"]])]
    return max(2, max(labels) + 1) if not config.multi_label else max(labels) + 1


def _targets(rows: List[Dict], multi_label: bool, num_classes: int) -> np.ndarray:
    if not multi_label:
        labels = np.array([r["label"] for r in rows], np.int64)
        if labels.max() >= num_classes:
            raise ValueError(f"label {labels.max()} is out of range for {num_classes} classes")
        return labels
    target = np.zeros((len(rows), num_classes), np.float32)
    for i, r in enumerate(rows):
        labels = _label_of(r, True)
        if labels and max(labels) >= num_classes:
            raise ValueError(f"label {max(labels)} is out of range for {num_classes} classes")
        target[i, labels] = 1.0
    return target


def _dataset(tokenizer, rows, targets, config: ClassificationConfig, shuffle: bool) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(([r["text"] for r in rows], targets))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=config.seed)
    ds = ds.batch(config.batch_size)
    return ds.map(lambda t, y: (single_segment_inputs(tokenizer, t, config.max_sequence_length), y)).prefetch(2)


def finetune_classifier(config: ClassificationConfig, verbose: Any = "auto") -> Dict[str, Any]:
    keras.utils.set_random_seed(config.seed)
    train, evaluation, rejects = load_data(config)
    encoder, tokenizer = load_hf_bert(config.checkpoint or minilm_checkpoint_dir())
    if config.max_sequence_length > encoder.config.max_sequence_length:
        raise ValueError(f"max_sequence_length {config.max_sequence_length} exceeds the encoder's "
                         f"{encoder.config.max_sequence_length}")
    num_classes = _num_classes(config, train + evaluation)
    y_train = _targets(train, config.multi_label, num_classes)
    y_eval = _targets(evaluation, config.multi_label, num_classes)
    train_ds = _dataset(tokenizer, train, y_train, config, shuffle=True)
    eval_ds = _dataset(tokenizer, evaluation, y_eval, config, shuffle=False)
    teacher = None
    if config.kd_teacher:
        teacher = keras.saving.load_model(config.kd_teacher, compile=False)
        train_ds = add_task_distillation_targets(train_ds, teacher)
        eval_ds = add_task_distillation_targets(eval_ds, teacher)
    model = TextClassifier(encoder, num_classes=num_classes, multi_label=config.multi_label,
                           kd_weight=config.kd_weight if teacher is not None else 0.0,
                           kd_temperature=config.kd_temperature, name="text_classifier")
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=0.01))
    accuracy_key = "task_accuracy" if teacher is not None else "accuracy"
    eval_inputs = eval_ds.map(lambda x, y: x)
    before = model.evaluate(eval_ds, verbose=0, return_dict=True)
    # Single-label "before" is the accuracy above; multi-label also scores F1 from these logits.
    logits_before = task_logits(model.predict(eval_inputs, verbose=0)) if config.multi_label else None
    steps = config.max_steps_per_epoch
    history = model.fit(train_ds.repeat() if steps else train_ds, epochs=config.epochs, steps_per_epoch=steps,
                        validation_data=eval_ds, verbose=verbose)
    after = model.evaluate(eval_ds, verbose=0, return_dict=True)
    logits = task_logits(model.predict(eval_inputs, verbose=0))
    result: Dict[str, Any] = {"train_examples": len(train), "eval_examples": len(evaluation), "rejected_rows": rejects,
                              "num_classes": num_classes, "accuracy_before": before[accuracy_key],
                              "accuracy_after": after[accuracy_key],
                              "history": {k: [float(v) for v in vals] for k, vals in history.history.items()}}
    if config.multi_label:
        result.update(majority_baseline=multi_label_scores(majority_label_sets(y_train, len(y_eval)), y_eval),
                      scores_before=multi_label_scores(logits_before > 0, y_eval),
                      scores_after=multi_label_scores(logits > 0, y_eval))
    else:
        counts = np.bincount(y_eval, minlength=num_classes)
        result["majority_baseline_accuracy"] = float(counts.max() / counts.sum())
    temperature = fit_temperature(logits, y_eval, config.multi_label)
    result.update(temperature=temperature,
                  ece_before_calibration=expected_calibration_error(logits, y_eval, multi_label=config.multi_label),
                  ece_after_calibration=expected_calibration_error(logits, y_eval, temperature,
                                                                   multi_label=config.multi_label))
    export_dir = os.path.join(config.output_dir, "export", "1")
    from serving.export import export_text_classifier  # serving owns the SavedModel layout

    export_text_classifier(model, tokenizer, export_dir, config.max_sequence_length, temperature)
    model.save(os.path.join(config.output_dir, "classifier.keras"))  # usable as a --kd-teacher
    result["export_dir"] = export_dir
    os.makedirs(config.output_dir, exist_ok=True)
    with open(os.path.join(config.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"config": dataclasses.asdict(config), **result}, f, indent=2)
    return result
