"""Text classification fine-tuning from a pretrained encoder, with calibrated probabilities.

Data: JSON Lines with ``text`` and ``label`` (int class) or, with ``multi_label``, ``labels``
(list of ints). Rows with a missing/non-string/empty text or an invalid label are rejected and
counted. Default data: the documentation-source set (``rw_tf.data.labelled``), split 80/20.
Encoder: a Hugging Face BERT checkpoint folder (default: all-MiniLM-L6-v2 from its package).
Output: ``export/1`` (SavedModel with the raw-text ``classify_text`` signature, TF Serving
layout) and ``metrics.json`` (baseline, before/after accuracy, temperature, ECE).

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
from rw_tf.data.labelled import documentation_source_examples
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.finetuning.calibration import expected_calibration_error, fit_temperature
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
    # Refined fine-tuning: a knowledge model (a saved TextClassifier, e.g. knowledge-enhanced) as
    # f_K; the loss becomes L_task + kd_weight * KL(f_K || f) at kd_temperature.
    kd_teacher: Optional[str] = None
    kd_weight: float = 0.5
    kd_temperature: float = 2.0
    seed: int = 12345


def read_labelled_jsonl(path: str, multi_label: bool) -> Tuple[List[Dict], collections.Counter]:
    rows, rejects = [], collections.Counter()
    with open(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                rejects["invalid_json"] += 1
                continue
            text = row.get("text") if isinstance(row, dict) else None
            label = row.get("labels" if multi_label else "label") if isinstance(row, dict) else None
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
            raise ValueError("the default data set is single-label; give --train/--eval for multi-label")
        rows = documentation_source_examples(config.max_examples_per_class, seed=config.seed)
        cut = int(0.8 * len(rows))
        train, evaluation, rejects = rows[:cut], rows[cut:], collections.Counter()
    if not train or not evaluation:
        raise ValueError(f"no usable rows (train {len(train)}, eval {len(evaluation)}; rejected {dict(rejects)})")
    return train, evaluation, dict(rejects)


def _num_classes(config: ClassificationConfig, rows: List[Dict]) -> int:
    if config.num_classes:
        return config.num_classes
    labels = [x for r in rows for x in (r["label"] if config.multi_label else [r["label"]])]
    return max(2, max(labels) + 1) if not config.multi_label else max(labels) + 1


def _targets(rows: List[Dict], multi_label: bool, num_classes: int) -> np.ndarray:
    if not multi_label:
        labels = np.array([r["label"] for r in rows], np.int64)
        if labels.max() >= num_classes:
            raise ValueError(f"label {labels.max()} is out of range for {num_classes} classes")
        return labels
    target = np.zeros((len(rows), num_classes), np.float32)
    for i, r in enumerate(rows):
        if r["label"] and max(r["label"]) >= num_classes:
            raise ValueError(f"label {max(r['label'])} is out of range for {num_classes} classes")
        target[i, r["label"]] = 1.0
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
    before = model.evaluate(eval_ds, verbose=0, return_dict=True)
    steps = config.max_steps_per_epoch
    history = model.fit(train_ds.repeat() if steps else train_ds, epochs=config.epochs, steps_per_epoch=steps,
                        validation_data=eval_ds, verbose=verbose)
    after = model.evaluate(eval_ds, verbose=0, return_dict=True)
    result: Dict[str, Any] = {"train_examples": len(train), "eval_examples": len(evaluation), "rejected_rows": rejects,
                              "num_classes": num_classes, "accuracy_before": before[accuracy_key],
                              "accuracy_after": after[accuracy_key],
                              "history": {k: [float(v) for v in vals] for k, vals in history.history.items()}}
    temperature = 1.0
    if not config.multi_label:
        logits = task_logits(model.predict(eval_ds.map(lambda x, y: x), verbose=0))
        counts = np.bincount(y_eval, minlength=num_classes)
        temperature = fit_temperature(logits, y_eval)
        result.update(majority_baseline_accuracy=float(counts.max() / counts.sum()), temperature=temperature,
                      ece_before_calibration=expected_calibration_error(logits, y_eval),
                      ece_after_calibration=expected_calibration_error(logits, y_eval, temperature))
    export_dir = os.path.join(config.output_dir, "export", "1")
    from serving.export import export_text_classifier  # serving owns the SavedModel layout

    export_text_classifier(model, tokenizer, export_dir, config.max_sequence_length, temperature)
    model.save(os.path.join(config.output_dir, "classifier.keras"))  # usable as a --kd-teacher
    result["export_dir"] = export_dir
    os.makedirs(config.output_dir, exist_ok=True)
    with open(os.path.join(config.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"config": dataclasses.asdict(config), **result}, f, indent=2)
    return result
