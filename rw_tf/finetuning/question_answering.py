"""Extractive QA fine-tuning from a pretrained encoder; exact match and F1 before and after.

Data: JSON Lines rows ``question, context, answer[, answer_start]`` (``read_qa_jsonl``; bad rows
are counted by reason), or by default the docstring-glossary set (``docstring_qa_examples``),
split 80/20 by module. Training windows that do not contain the whole answer point at [CLS]
(BERT's SQuAD recipe); evaluation decodes the best span over all windows of each context.
Output: ``export/1`` (SavedModel with the raw-text ``answer_question`` signature, TF Serving
layout), ``qa_model.keras`` and ``metrics.json``.

Example:
    >>> finetune_question_answering(QAConfig(output_dir="/tmp/qa", steps=200))   # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.applications.question_answering import QuestionAnswerer
from rw_tf.checkpoints import load_hf_bert, minilm_checkpoint_dir
from rw_tf.data.qa_examples import docstring_qa_examples, read_qa_jsonl
from rw_tf.data.qa_windows import WindowSpec, question_context_windows, span_labels
from rw_tf.data.splits import split_by_group
from rw_tf.finetuning.span_metrics import exact_match, token_f1
from rw_tf.models.question_answering import SpanQuestionAnswerer


@dataclasses.dataclass
class QAConfig:
    output_dir: str
    checkpoint: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    # CPU-sized defaults (SQuAD recipes use 384 / 128 / 64 on accelerators).
    max_sequence_length: int = 128
    doc_stride: int = 48
    max_question_length: int = 24
    max_windows: int = 32
    max_answer_length: int = 64
    batch_size: int = 16
    steps: int = 300
    learning_rate: float = 5e-5
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = 300
    seed: int = 12345

    def window_spec(self) -> WindowSpec:
        return WindowSpec(self.max_sequence_length, self.doc_stride, self.max_question_length, self.max_windows)


def load_qa_data(config: QAConfig) -> Tuple[List[Dict], List[Dict], Dict[str, int]]:
    if config.train_file:
        if not config.eval_file:
            raise ValueError("--train needs --eval too")
        train, rejects = read_qa_jsonl(config.train_file)
        evaluation, eval_rejects = read_qa_jsonl(config.eval_file)
        rejects.update(eval_rejects)
    else:
        train, evaluation = split_by_group(docstring_qa_examples(seed=config.seed))
        rejects = collections.Counter()
    train, evaluation = train[:config.max_train_examples], evaluation[:config.max_eval_examples]
    if not train or not evaluation:
        raise ValueError(f"no usable rows (train {len(train)}, eval {len(evaluation)}; rejected {dict(rejects)})")
    return train, evaluation, dict(rejects)


def _byte_span(row: Dict) -> Tuple[int, int]:
    start = len(row["context"][:row["answer_start"]].encode("utf-8"))
    return start, start + len(row["answer"].encode("utf-8"))


def training_windows(tokenizer, rows: List[Dict], spec: WindowSpec, chunk: int = 64
                     ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], Dict[str, int]]:
    """All windows of ``rows`` with their (start, end) targets, as arrays; also counts of windows
    holding the answer and of examples whose context needs several windows."""
    features: Dict[str, List[np.ndarray]] = collections.defaultdict(list)
    labels, several = [], 0
    for lo in range(0, len(rows), chunk):
        part = rows[lo:lo + chunk]
        windows = question_context_windows(tokenizer, [r["question"] for r in part], [r["context"] for r in part], spec)
        spans = np.array([_byte_span(r) for r in part], np.int64)
        labels.append(span_labels(windows, spans[:, 0], spans[:, 1]).numpy())
        several += int((np.bincount(windows.example_index.numpy()) > 1).sum())
        for key, value in windows.features.items():
            features[key].append(value.numpy())
    targets = np.concatenate(labels)
    stats = {"windows": int(len(targets)), "windows_with_answer": int((targets[:, 0] > 0).sum()),
             "examples_over_one_window": several}
    return {k: np.concatenate(v) for k, v in features.items()}, {"start": targets[:, 0], "end": targets[:, 1]}, stats


def evaluate_answers(answerer: QuestionAnswerer, rows: List[Dict]) -> Dict[str, float]:
    """SQuAD exact match and token F1 (x100), plus the share of exact character offsets."""
    predictions = answerer.answer([r["question"] for r in rows], [r["context"] for r in rows])
    em = [exact_match(p["answer"], r["answer"]) for p, r in zip(predictions, rows)]
    f1 = [token_f1(p["answer"], r["answer"]) for p, r in zip(predictions, rows)]
    offsets = [p["start"] == r["answer_start"] and p["end"] == r["answer_start"] + len(r["answer"])
               for p, r in zip(predictions, rows)]
    return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f1)),
            "exact_offsets": 100.0 * float(np.mean(offsets))}


def finetune_question_answering(config: QAConfig, verbose: Any = "auto") -> Dict[str, Any]:
    keras.utils.set_random_seed(config.seed)
    spec = config.window_spec()
    train, evaluation, rejects = load_qa_data(config)
    encoder, tokenizer = load_hf_bert(config.checkpoint or minilm_checkpoint_dir())
    if config.max_sequence_length > encoder.config.max_sequence_length:
        raise ValueError(f"max_sequence_length {config.max_sequence_length} exceeds the encoder's "
                         f"{encoder.config.max_sequence_length}")
    model = SpanQuestionAnswerer(encoder, name="span_question_answerer")
    answerer = QuestionAnswerer(model, tokenizer, spec, config.max_answer_length)
    x, y, window_stats = training_windows(tokenizer, train, spec)
    eval_windows = training_windows(tokenizer, evaluation, spec)[2]
    before = evaluate_answers(answerer, evaluation)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y["start"]), seed=config.seed).repeat()
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=0.01))
    with warnings.catch_warnings():
        # Span heads do not read the [CLS] pooler, so it gets no gradient.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables.*pooler")
        history = model.fit(ds.batch(config.batch_size, drop_remainder=True).prefetch(2), steps_per_epoch=config.steps,
                            epochs=1, verbose=verbose)
    after = evaluate_answers(answerer, evaluation)

    export_dir = os.path.join(config.output_dir, "export", "1")
    from serving.export import export_question_answerer  # serving owns the SavedModel layout

    export_question_answerer(model, tokenizer, export_dir, spec, config.max_answer_length)
    model.save(os.path.join(config.output_dir, "qa_model.keras"))
    result = {"train_examples": len(train), "eval_examples": len(evaluation), "rejected_rows": rejects,
              "train_windows": window_stats, "eval_windows": eval_windows,
              "before": before, "after": after,
              "loss": [float(v) for v in history.history["loss"]], "export_dir": export_dir}
    with open(os.path.join(config.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"config": dataclasses.asdict(config), **result}, f, indent=2)
    return result
