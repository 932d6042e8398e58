"""Extractive QA task: span start/end over question + context windows; exact match and F1.

Data: JSON Lines rows ``question, context, answer[, answer_start]`` (``read_qa_jsonl``; bad rows
are counted by reason), or by default the docstring-glossary set (``docstring_qa_examples``),
split 80/20 by module; an evaluation row whose context is also a training context is removed and
counted (``eval_text_in_train``). Training windows that do not contain the whole answer point at [CLS]
(BERT's SQuAD recipe); evaluation decodes the best span over all windows of each context.
Encoder: ``init_from`` (default: all-MiniLM-L6-v2). Export: ``answer_question``.
Inside a TFX Trainer the data are the pipeline's transformed examples (``examples``; one row per
example with all its windows, ``rw_tf.data.transform_fns.qa_preprocessing_fn``): training reads
their real windows, evaluation is the per-example ``span_exact_match`` the TFMA gate scores.

Example:
    >>> task = QuestionAnsweringTask(QATaskConfig())                               # doctest: +SKIP
    >>> run_task(task, task.trainer_config(steps_per_epoch=200), "/tmp/qa")        # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rw_tf.applications.question_answering import QuestionAnswerer, windows_exact_match
from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import DictConfig
from rw_tf.data.qa_examples import docstring_qa_examples, read_qa_jsonl
from rw_tf.data.qa_windows import (
    WindowSpec,
    question_context_windows,
    span_labels,
    window_inputs,
    window_problems,
)
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_by_group
from rw_tf.export.base import save_export
from rw_tf.export.question_answering import QuestionAnsweringExport
from rw_tf.models.question_answering import SpanQuestionAnswerer
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.tasks.span_metrics import exact_match, token_f1
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training.runner import TrainerConfig


@dataclasses.dataclass
class QATaskConfig(DictConfig):
    init_from: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    # CPU-sized defaults (SQuAD recipes use 384 / 128 / 64 on accelerators).
    max_sequence_length: int = 128
    doc_stride: int = 48
    max_question_length: int = 24
    max_windows: int = 32
    max_answer_length: int = 64
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = 300

    def validate(self) -> None:
        if self.eval_file and not self.train_file:   # the built-in data has its own held-out split
            raise ValueError("eval_file (--eval) is read with train_file (--train) only")

    def window_spec(self) -> WindowSpec:
        return WindowSpec(self.max_sequence_length, self.doc_stride, self.max_question_length, self.max_windows)


def load_qa_rows(config: QATaskConfig, seed: int) -> Tuple[List[Dict], List[Dict], collections.Counter]:
    rejects: collections.Counter = collections.Counter()
    if config.train_file:
        if not config.eval_file:
            raise ValueError("--train needs --eval too")
        train, rejects = read_qa_jsonl(config.train_file)
        evaluation, eval_rejects = read_qa_jsonl(config.eval_file)
        rejects.update(eval_rejects)
    else:
        train, evaluation = split_by_group(docstring_qa_examples(seed=seed))
    train = train[:config.max_train_examples]
    # SQuAD holds out whole articles: a context seen in training is not an evaluation context.
    evaluation = drop_eval_rows_seen_in_training(train, evaluation, ["context"], rejects)[:config.max_eval_examples]
    if not train or not evaluation:
        raise ValueError(f"no usable rows (train {len(train)}, eval {len(evaluation)}; rejected {dict(rejects)})")
    return train, evaluation, rejects


def windowable_rows(tokenizer, rows: List[Dict], spec: WindowSpec, rejects: collections.Counter) -> List[Dict]:
    """The rows this tokenizer and geometry can window; the others are counted in ``rejects`` by
    reason (``window_problems``), not trained or evaluated on."""
    problems = window_problems(tokenizer, [r["question"] for r in rows], [r["context"] for r in rows], spec)
    rejects.update(p for p in problems if p)
    return [r for r, p in zip(rows, problems) if p is None]


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


WINDOW_SHUFFLE_BUFFER = 16384   # windows (~25 MB at 128 tokens): the docstring set's ~7,800 twice over


def window_rows(windows: Dict[str, tf.Tensor]):
    """A batch of transformed examples ``[batch, W, ...]`` -> its windows ``[batch * W, ...]``:
    (encoder inputs, span targets, window mask)."""
    x = window_inputs(windows)
    y = {"start": tf.reshape(windows["start_positions"], [-1]), "end": tf.reshape(windows["end_positions"], [-1])}
    return x, y, tf.reshape(windows["window_mask"], [-1])


def _is_real_window(x, y, real):   # named, not lambdas: autograph cannot read two lambdas on one line
    return real > 0


def _without_window_mask(x, y, real):
    return x, y


class QuestionAnsweringTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer."""

    name = "qa"
    config_class = QATaskConfig
    # No gradient clipping: measured on the glossary set (120 steps, lr 1e-4), clipping at norm 1
    # cut exact match from 63 to 20; short fine-tunes need the full early steps.
    # Adam's epsilon as in Hugging Face fine-tuning (1e-8): with BERT's 1e-6 the MiniLM span head
    # learns far slower (docstring QA, 120 steps: exact match 38 with 1e-6, 63 with 1e-7, 67 with 1e-8).
    trainer_defaults = {"epochs": 1, "steps_per_epoch": 300, "batch_size": 16, "learning_rate": 5e-5,
                        "decay": "constant", "clipnorm": 0.0, "adam_epsilon": 1e-8}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        self.seed, self.validation_steps = trainer.seed, trainer.validation_steps
        self.spec = self.config.window_spec()
        if self.examples is not None:
            self.init_from = self.config.init_from or minilm_checkpoint_dir()
            self.tokenizer = WordPieceTokenizer(self.examples.vocab_file, lower_case=True)
            shape = list(self.examples.tft_output.transformed_feature_spec()["token_ids"].shape)
            if shape != [self.spec.max_windows, self.spec.max_sequence_length]:
                raise ValueError(f"the Transform made windows of shape {shape} (windows, tokens) but the task's "
                                 f"geometry is {self.spec}: give both the same max_windows and max_sequence_length")
            return {"vocab_size": self.tokenizer.vocab_size}
        self.train_rows, self.eval_rows, rejects = load_qa_rows(self.config, trainer.seed)
        self.init_from = self.config.init_from or minilm_checkpoint_dir()
        self.tokenizer = pretrained_tokenizer(self.init_from)
        self.train_rows = windowable_rows(self.tokenizer, self.train_rows, self.spec, rejects)
        self.eval_rows = windowable_rows(self.tokenizer, self.eval_rows, self.spec, rejects)
        if not self.train_rows or not self.eval_rows:
            raise ValueError(f"no rows fit the window geometry {self.spec} (rejected {rejects})")
        self.x, self.y, window_stats = training_windows(self.tokenizer, self.train_rows, self.spec)
        return {"train_examples": len(self.train_rows), "eval_examples": len(self.eval_rows),
                "rejected_rows": dict(rejects), "train_windows": window_stats,
                "eval_windows": training_windows(self.tokenizer, self.eval_rows, self.spec)[2]}

    def build_model(self) -> keras.Model:
        encoder = pretrained_encoder(self.init_from, self.tokenizer)
        check_sequence_length(self.spec.max_sequence_length, encoder)
        model = SpanQuestionAnswerer(encoder, name="span_question_answerer")
        model.build({k: (None, self.spec.max_sequence_length) for k in ENCODER_INPUTS})
        self.answerer = QuestionAnswerer(model, self.tokenizer, self.spec, self.config.max_answer_length)
        return model

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:   # real windows only, shuffled across examples
            windows = self.examples.dataset("train", batch_size).map(window_rows).unbatch()
            ds = windows.filter(_is_real_window).map(_without_window_mask).shuffle(WINDOW_SHUFFLE_BUFFER,
                                                                                     seed=self.seed)
        else:
            ds = tf.data.Dataset.from_tensor_slices((self.x, self.y)).shuffle(len(self.y["start"]), seed=self.seed)
            ds = ds.repeat()
        return ds.batch(batch_size, drop_remainder=True).prefetch(2)

    def num_train_examples(self) -> int:
        return len(self.y["start"])

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        if self.examples is None:
            return evaluate_answers(self.answerer, self.eval_rows)
        matches = [windows_exact_match(model, windows, self.config.max_answer_length).numpy()
                   for windows in self.examples.dataset("eval", 32).take(self.validation_steps or 10)]
        return {"span_exact_match": float(np.mean(np.concatenate(matches)))}

    def export(self, model: keras.Model, export_dir: str) -> str:
        return save_export(QuestionAnsweringExport(model, self.tokenizer, self.spec, self.config.max_answer_length,
                                                   transform_output=self.transform_output), export_dir)
