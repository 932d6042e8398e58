"""Question + context -> encoder windows for extractive QA, as TF ops (training, eval and export).

Each example becomes ``[CLS] question [SEP] context-window [SEP]`` sequences. A context longer
than one window is covered by sliding windows whose starts are ``doc_stride`` word pieces apart
(the original BERT ``run_squad`` convention: the stride is the step, so windows overlap by
``window_length - doc_stride`` pieces). Every context piece carries the byte span of the source
word it came from, which is how decoded spans turn back into text and character offsets.

Bad input raises ``tf.errors.InvalidArgumentError`` with the reason: an empty question or
context, a question longer than ``max_question_length`` pieces, or a context that needs more than
``max_windows`` windows (the model's input limit for one example).

Example:
    >>> spec = WindowSpec(max_sequence_length=64, doc_stride=24, max_question_length=16)
    >>> windows = question_context_windows(tokenizer, ["Who?"], ["Ada wrote it."], spec)  # doctest: +SKIP
    >>> windows.features["token_ids"].shape                                                # doctest: +SKIP
    TensorShape([1, 64])
"""
from __future__ import annotations

import dataclasses
from typing import Dict

import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.config import DictConfig
from rw_tf.tokenization.normalization import repair_utf8
from rw_tf.tokenization.wordpiece import WordPieceTokenizer, as_string_tensor


@dataclasses.dataclass(frozen=True)
class WindowSpec(DictConfig):
    """Window geometry. ``doc_stride`` must not exceed the context room left by the longest
    allowed question (``max_sequence_length - 3 - max_question_length``), or pieces would be skipped."""

    max_sequence_length: int = 256
    doc_stride: int = 128
    max_question_length: int = 64
    max_windows: int = 32

    def validate(self) -> None:
        room = self.max_sequence_length - 3 - self.max_question_length
        if self.max_question_length < 1 or room < 1:
            raise ValueError(f"max_question_length {self.max_question_length} leaves no room for context in "
                             f"{self.max_sequence_length} tokens")
        if not 1 <= self.doc_stride <= room:
            raise ValueError(f"doc_stride must be in [1, {room}] (context room with the longest question), "
                             f"got {self.doc_stride}")


@dataclasses.dataclass
class QuestionContextWindows:
    """Encoder inputs for every window plus what span decoding needs to map positions back.

    - ``features``: ``token_ids``, ``segment_ids``, ``padding_mask``: int32 ``[windows, L]``;
    - ``example_index``: int64 ``[windows]``, the example each window belongs to (rows in order);
    - ``context_offset``: int64 ``[windows]``, sequence position of the window's first context piece;
    - ``window_start``: int64 ``[windows]``, index of that piece among the example's context pieces;
    - ``window_length``: int64 ``[windows]``, number of context pieces in the window;
    - ``piece_starts`` / ``piece_ends``: ``RaggedTensor[batch, (pieces)]`` int64 byte span of the
      source word of every context piece;
    - ``contexts``: the contexts as UTF-8 (invalid bytes replaced), which the offsets index.
    """

    features: Dict[str, tf.Tensor]
    example_index: tf.Tensor
    context_offset: tf.Tensor
    window_start: tf.Tensor
    window_length: tf.Tensor
    piece_starts: tf.RaggedTensor
    piece_ends: tf.RaggedTensor
    contexts: tf.Tensor


def _check(condition: tf.Tensor, message: str) -> None:
    # tf.debugging.Assert works eagerly and in exported graphs; the message reaches TF Serving clients.
    tf.debugging.Assert(tf.reduce_all(condition), [message])


def window_problems(tokenizer: WordPieceTokenizer, questions, contexts, spec: WindowSpec):
    """Why each (question, context) cannot be windowed (None when it can): the reasons the
    windowing would fail on, so training data can reject and count such rows instead."""
    question_length = tokenizer.tokenize(questions).row_lengths().numpy()
    context_length = tokenizer.tokenize(contexts).row_lengths().numpy()
    room = spec.max_sequence_length - 3 - question_length
    windows = 1 + (context_length - room + spec.doc_stride - 1).clip(min=0) // spec.doc_stride
    return [("empty_question" if q == 0 else "empty_context" if c == 0 else
             "question_too_long" if q > spec.max_question_length else
             "context_too_long" if w > spec.max_windows else None)
            for q, c, w in zip(question_length, context_length, windows)]


def question_context_windows(tokenizer: WordPieceTokenizer, questions, contexts,
                             spec: WindowSpec) -> QuestionContextWindows:
    """Builds the windows of a batch of (question, context) pairs; see the module docstring."""
    questions, contexts = as_string_tensor(questions), repair_utf8(as_string_tensor(contexts))
    _check(tf.equal(tf.shape(questions)[0], tf.shape(contexts)[0]),
           "questions and contexts must have the same batch size")
    question_ids = tokenizer.tokenize(questions)
    word_ids, word_starts, word_ends = tokenizer.tokenize_with_offsets(contexts)
    context_ids = word_ids.merge_dims(1, 2)
    pieces_per_word = word_ids.row_lengths(axis=2)
    piece_starts = context_ids.with_flat_values(tf.repeat(word_starts.flat_values, pieces_per_word.flat_values))
    piece_ends = context_ids.with_flat_values(tf.repeat(word_ends.flat_values, pieces_per_word.flat_values))

    question_length = question_ids.row_lengths()
    context_length = context_ids.row_lengths()
    _check(question_length > 0, "question is empty (no word pieces after normalization)")
    _check(context_length > 0, "question has no context: the context is empty (no word pieces after "
                               "normalization)")
    _check(question_length <= spec.max_question_length,
           f"question is longer than max_question_length={spec.max_question_length} word pieces")
    room = spec.max_sequence_length - 3 - question_length
    stride = tf.constant(spec.doc_stride, tf.int64)
    num_windows = 1 + tf.maximum(context_length - room + stride - 1, 0) // stride
    _check(num_windows <= spec.max_windows,
           f"context is longer than the model accepts: it needs more than max_windows={spec.max_windows} "
           f"windows of {spec.max_sequence_length} tokens at doc_stride={spec.doc_stride}")

    window_rows = tf.ragged.range(num_windows)
    example_index = window_rows.value_rowids()
    window_start = window_rows.flat_values * stride
    window_room = tf.gather(room, example_index)
    window_length = tf.minimum(window_room, tf.gather(context_length, example_index) - window_start)
    first = tf.gather(context_ids.row_starts(), example_index) + window_start
    window_ids = tf.gather(context_ids.flat_values, tf.ragged.range(first, first + window_length))
    window_questions = tf.gather(question_ids, example_index)

    token_ids, segment_ids = tf_text.combine_segments([window_questions, window_ids], tokenizer.cls_id,
                                                      tokenizer.sep_id)
    token_ids, padding_mask = tf_text.pad_model_inputs(token_ids, spec.max_sequence_length,
                                                       pad_value=tokenizer.pad_id)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids, spec.max_sequence_length)
    features = {"token_ids": tf.cast(token_ids, tf.int32), "segment_ids": tf.cast(segment_ids, tf.int32),
                "padding_mask": tf.cast(padding_mask, tf.int32)}
    return QuestionContextWindows(features, example_index, tf.gather(question_length, example_index) + 2,
                                  window_start, window_length, piece_starts, piece_ends, contexts)


def answer_piece_span(windows: QuestionContextWindows, answer_starts: tf.Tensor,
                      answer_ends: tf.Tensor) -> tf.Tensor:
    """First and last context piece overlapping each answer's byte span ``[start, end)``:
    int64 ``[batch, 2]``, ``-1`` where no piece overlaps (an answer of only whitespace or
    control characters)."""
    starts, ends = tf.cast(answer_starts, tf.int64), tf.cast(answer_ends, tf.int64)
    overlap = tf.logical_and(windows.piece_ends > tf.expand_dims(starts, 1),
                             windows.piece_starts < tf.expand_dims(ends, 1))
    position = tf.ragged.range(windows.piece_starts.row_lengths())
    fill = lambda value: position.with_flat_values(
        tf.fill(tf.shape(position.flat_values), tf.constant(value, tf.int64)))
    first = tf.reduce_min(tf.where(overlap, position, fill(tf.int64.max)), axis=1)
    last = tf.reduce_max(tf.where(overlap, position, fill(-1)), axis=1)
    first = tf.where(last < 0, tf.constant(-1, tf.int64), first)
    return tf.stack([first, last], axis=1)


def span_labels(windows: QuestionContextWindows, answer_starts: tf.Tensor, answer_ends: tf.Tensor) -> tf.Tensor:
    """Training targets per window: sequence positions ``[windows, 2]`` (start, end) of the answer,
    or ``(0, 0)`` (the [CLS] token) for a window that does not contain the whole answer."""
    span = tf.gather(answer_piece_span(windows, answer_starts, answer_ends), windows.example_index)
    window_end = windows.window_start + windows.window_length
    inside = tf.logical_and(tf.logical_and(span[:, 0] >= windows.window_start, span[:, 1] < window_end),
                            span[:, 0] >= 0)
    positions = span - tf.expand_dims(windows.window_start, 1) + tf.expand_dims(windows.context_offset, 1)
    return tf.where(tf.expand_dims(inside, 1), positions, tf.zeros_like(positions))


def context_positions(windows: QuestionContextWindows, length: tf.Tensor) -> tf.Tensor:
    """bool ``[windows, length]``: the sequence positions that hold the window's context pieces."""
    position = tf.range(tf.cast(length, tf.int64))[tf.newaxis, :]
    lo = windows.context_offset[:, tf.newaxis]
    return tf.logical_and(position >= lo, position < lo + windows.window_length[:, tf.newaxis])


def window_inputs(windows: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """``windows_by_example``'s encoder inputs ``[batch, W, L]`` as a model takes them: int32
    ``[batch * W, L]``, window by window in example order."""
    length = tf.shape(windows["token_ids"])[-1]
    return {k: tf.reshape(tf.cast(windows[k], tf.int32), [-1, length]) for k in ("token_ids", "segment_ids",
                                                                                  "padding_mask")}


def answer_byte_span(contexts: tf.Tensor, answers: tf.Tensor, answer_starts: tf.Tensor):
    """Byte span ``[start, end)`` of each answer from its *character* offset in the (repaired)
    context; fails with the reason when the answer is not the context's text at that offset."""
    answer_starts = tf.maximum(tf.cast(answer_starts, tf.int64), 0)
    start = tf.cast(tf.strings.length(tf.strings.substr(contexts, tf.zeros_like(answer_starts), answer_starts,
                                                        unit="UTF8_CHAR")), tf.int64)
    end = start + tf.cast(tf.strings.length(answers), tf.int64)
    _check(tf.equal(tf.strings.substr(contexts, start, end - start), answers),
           "answer is not the context's text at answer_start (a character offset)")
    return start, end


def windows_by_example(windows: QuestionContextWindows, labels: tf.Tensor, max_windows: int) -> Dict[str, tf.Tensor]:
    """Per-example window tensors, padded to ``max_windows`` (one row per example, as tf.Transform
    and TFMA need): ``token_ids``/``segment_ids``/``padding_mask`` int32 ``[batch, W, L]``,
    ``window_mask`` ``[batch, W]`` (1: a real window), ``start_positions``/``end_positions``
    ``[batch, W]`` (``span_labels``; 0 in padding windows) and ``token_starts``/``token_ends``
    ``[batch, W, L]``, the byte span of each context token's source word (-1 outside the context),
    which is how a predicted span is compared with the answer."""
    length = tf.shape(windows.features["token_ids"], out_type=tf.int64)[1]
    in_context = context_positions(windows, length)
    first_piece = tf.gather(windows.piece_starts.row_starts(), windows.example_index)
    # the piece at each context position: the window's first piece plus the position's offset in it
    piece = (first_piece + windows.window_start - windows.context_offset)[:, tf.newaxis] + tf.range(length)
    piece = tf.where(in_context, piece, 0)
    by_window = dict(windows.features, window_mask=tf.ones_like(windows.example_index),
                     start_positions=labels[:, 0], end_positions=labels[:, 1],
                     token_starts=tf.where(in_context, tf.gather(windows.piece_starts.flat_values, piece), -1),
                     token_ends=tf.where(in_context, tf.gather(windows.piece_ends.flat_values, piece), -1))
    rows = windows.piece_starts.nrows()
    out = {}
    for key, value in by_window.items():
        ragged = tf.RaggedTensor.from_value_rowids(value, windows.example_index, nrows=rows)
        default = -1 if key in ("token_starts", "token_ends") else 0
        out[key] = ragged.to_tensor(default_value=tf.cast(default, value.dtype),
                                    shape=[None, max_windows] + value.shape[1:].as_list())
    return out
