"""Extractive question answering: best-span decoding over sliding windows, answers with offsets.

For every window the best span ``(i, j)`` maximizes ``start_logit[i] + end_logit[j]`` over
context positions with ``i <= j < i + max_answer_length``; each example takes its best window.
The span is widened to whole source words and returned as the text of the context plus
character offsets (``context[start:end] == answer`` in Python). ``probability`` is the span's
softmax share among all valid spans of its window (windows overlap, so the same
span may be counted in several; per window it is a proper distribution). As in SQuAD 1.1 there is
always an answer; a low probability is the signal that the context may not contain one.

All decoding is TF ops, so the same code runs in evaluation and inside the exported SavedModel.

Example:
    >>> qa = QuestionAnswerer(model, tokenizer, WindowSpec(256, 128, 64))            # doctest: +SKIP
    >>> qa.answer(["What does json.dumps do?"], ["json.dumps: Serialize obj to a JSON str."])  # doctest: +SKIP
    [{'answer': 'Serialize obj to a JSON str.', 'start': 12, 'end': 40, 'score': 9.1, 'probability': 0.93}]
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import keras
import numpy as np
import tensorflow as tf

from rw_tf.config import checks_number_arguments
from rw_tf.data.qa_windows import (
    QuestionContextWindows,
    WindowSpec,
    context_positions,
    question_context_windows,
    window_inputs,
)
from rw_tf.errors import error_reason
from rw_tf.tokenization.wordpiece import WordPieceTokenizer


def window_best_spans(start_logits: tf.Tensor, end_logits: tf.Tensor, in_context: tf.Tensor,
                      max_answer_length: int):
    """Each window's best span among context positions (``in_context``, bool ``[windows, L]``) with
    ``i <= j < i + max_answer_length``: ``(start, end, score, log of the window's total span mass)``,
    each ``[windows]``."""
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    length = tf.shape(start_logits, out_type=tf.int64)[1]
    position = tf.range(length)
    span_length = position[tf.newaxis, :] - position[:, tf.newaxis]                      # j - i
    allowed = tf.logical_and(span_length >= 0, span_length < max_answer_length)
    valid = tf.logical_and(tf.logical_and(in_context[:, :, None], in_context[:, None, :]), allowed[None])
    scores = start_logits[:, :, None] + end_logits[:, None, :]
    scores = tf.reshape(tf.where(valid, scores, -np.inf), [tf.shape(scores)[0], -1])
    best = tf.argmax(scores, axis=1)
    return best // length, best % length, tf.reduce_max(scores, axis=1), tf.reduce_logsumexp(scores, axis=1)


def best_spans(windows: QuestionContextWindows, start_logits: tf.Tensor, end_logits: tf.Tensor,
               max_answer_length: int) -> Dict[str, tf.Tensor]:
    """Decodes one answer per example: ``answer`` (string), ``start``/``end`` (character offsets,
    end exclusive), ``score`` (logit sum) and ``probability``; all ``[batch]``."""
    in_context = context_positions(windows, tf.shape(start_logits)[1])
    best_start, best_end, best_score, window_mass = window_best_spans(start_logits, end_logits, in_context,
                                                                      max_answer_length)
    num_examples = windows.piece_starts.nrows()
    by_example = tf.RaggedTensor.from_value_rowids(best_score, windows.example_index, nrows=num_examples)
    window = by_example.row_starts() + tf.argmax(by_example.to_tensor(-np.inf), axis=1)

    to_piece = tf.gather(windows.window_start - windows.context_offset, window)
    start_piece = tf.gather(best_start, window) + to_piece
    end_piece = tf.gather(best_end, window) + to_piece
    first_piece = windows.piece_starts.row_starts()
    byte_start = tf.gather(windows.piece_starts.flat_values, first_piece + start_piece)
    byte_end = tf.gather(windows.piece_ends.flat_values, first_piece + end_piece)
    answer = tf.strings.substr(windows.contexts, byte_start, byte_end - byte_start)
    char_start = tf.strings.length(tf.strings.substr(windows.contexts, tf.zeros_like(byte_start), byte_start),
                                   unit="UTF8_CHAR")
    score = tf.gather(best_score, window)
    return {"answer": answer, "start": tf.cast(char_start, tf.int64),
            "end": tf.cast(char_start + tf.strings.length(answer, unit="UTF8_CHAR"), tf.int64),
            "score": score, "probability": tf.exp(score - tf.gather(window_mass, window))}


def span_exact_match(start_logits: tf.Tensor, end_logits: tf.Tensor, windows: Dict[str, tf.Tensor],
                     max_answer_length: int) -> tf.Tensor:
    """Per example (float32 ``[batch]``): 1 when the best span over its windows, decoded as
    ``best_spans`` decodes it, covers exactly the answer's words. ``windows`` holds
    ``windows_by_example``'s tensors ``[batch, W, ...]``; the logits are ``[batch * W, L]``."""
    token_starts, token_ends = windows["token_starts"], windows["token_ends"]
    batch, num_windows, length = (tf.shape(token_starts, out_type=tf.int64)[k] for k in range(3))
    start, end, score, _ = window_best_spans(start_logits, end_logits,
                                             tf.reshape(token_starts, [-1, length]) >= 0, max_answer_length)
    score = tf.where(tf.cast(windows["window_mask"], tf.bool), tf.reshape(score, [batch, num_windows]), -np.inf)
    window = tf.argmax(score, axis=1)                       # each example's best window, as best_spans picks

    def in_window(values):      # [batch, W, ...] -> the best window's [batch, ...]
        return tf.gather(values, window, batch_dims=1)

    def at(values, positions):  # [batch, W, L] at the best window's positions -> [batch]
        return tf.gather(in_window(values), tf.cast(positions, tf.int64)[:, None], batch_dims=1)[:, 0]

    start, end = (in_window(tf.reshape(t, [batch, num_windows])) for t in (start, end))
    label_start, label_end = in_window(windows["start_positions"]), in_window(windows["end_positions"])
    same_words = tf.logical_and(tf.equal(at(token_starts, start), at(token_starts, label_start)),
                                tf.equal(at(token_ends, end), at(token_ends, label_end)))
    return tf.cast(tf.logical_and(label_start > 0, same_words), tf.float32)


def windows_exact_match(model: keras.Model, windows: Dict[str, tf.Tensor], max_answer_length: int) -> tf.Tensor:
    """``span_exact_match`` of ``model`` on ``windows_by_example`` tensors (a QA Transform's output);
    the model runs on the real windows only (padding windows are most of a batch's rows)."""
    real = tf.reshape(windows["window_mask"], [-1]) > 0
    inputs = window_inputs(windows)
    outputs = model({k: tf.boolean_mask(v, real) for k, v in inputs.items()}, training=False)
    shape = tf.shape(inputs["token_ids"], out_type=tf.int64)
    start, end = (tf.scatter_nd(tf.where(real), outputs[k], shape) for k in ("start", "end"))
    return span_exact_match(start, end, windows, max_answer_length)


def answer_questions(model: keras.Model, tokenizer: WordPieceTokenizer, questions: Any, contexts: Any,
                     spec: WindowSpec, max_answer_length: int) -> Dict[str, tf.Tensor]:
    """Windows -> model -> best spans for a batch of (question, context) strings (TF ops)."""
    windows = question_context_windows(tokenizer, questions, contexts, spec)
    outputs = model(windows.features, training=False)
    return best_spans(windows, outputs["start"], outputs["end"], max_answer_length)


@checks_number_arguments()
class QuestionAnswerer:
    """Python front end: validates input, batches examples and returns plain dicts.

    A question without context, an empty question, a question over ``max_question_length``
    pieces or a context over ``max_windows`` windows raises ``ValueError`` saying which example.
    """

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, spec: WindowSpec,
                 max_answer_length: int = 48, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.max_answer_length, self.batch_size = max_answer_length, batch_size
        self._answer = tf.function(
            lambda q, c: answer_questions(model, tokenizer, q, c, spec, max_answer_length),
            input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> List[Dict[str, Any]]:
        if isinstance(questions, str) or isinstance(contexts, str):
            raise TypeError("questions and contexts must be sequences of strings, not one string")
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        for i, (question, context) in enumerate(zip(questions, contexts)):
            if not isinstance(question, str) or not isinstance(context, str):
                raise TypeError(f"example {i}: question and context must be str")
            if not context.strip():
                raise ValueError(f"example {i}: the question has no context")
            if not question.strip():
                raise ValueError(f"example {i}: the question is empty")
        results: List[Dict[str, Any]] = []
        for lo in range(0, len(questions), self.batch_size):
            q, c = list(questions[lo:lo + self.batch_size]), list(contexts[lo:lo + self.batch_size])
            try:
                out = self._answer(tf.constant(q), tf.constant(c))
            except tf.errors.InvalidArgumentError as err:
                raise ValueError(f"examples {lo}..{lo + len(q) - 1}: {error_reason(err)}") from None
            for k in range(len(q)):
                results.append({"answer": out["answer"][k].numpy().decode("utf-8"),
                                "start": int(out["start"][k]), "end": int(out["end"][k]),
                                "score": float(out["score"][k]), "probability": float(out["probability"][k])})
        return results

