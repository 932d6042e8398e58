"""Writing assistant: top-k completions for ``[MASK]`` markers with a pretrained MLM head.

The marker is cut out of the text before tokenization (the tokenizer would split "[MASK]" into
punctuation) and replaced by the [MASK] token; every marker is one WordPiece slot. A text
without a marker is an error (``InvalidArgumentError`` in graphs, ``ValueError`` in Python).

Example:
    >>> fill_mask(model, tokenizer, ["The [MASK] statement is used for iteration."], top_k=3)  # doctest: +SKIP
    [[[('for', 0.62), ('while', 0.21), ('if', 0.05)]]]
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.tokenization.wordpiece import WordPieceTokenizer, as_string_tensor

MASK_MARKER = "[MASK]"


def masked_text_inputs(tokenizer: WordPieceTokenizer, texts: tf.Tensor, max_sequence_length: int,
                       max_masks: int = 8) -> Dict[str, tf.Tensor]:
    """Encoder inputs with [MASK] at every marker, plus ``masked_positions`` [batch, max_masks]
    and ``mask_weights`` (1 for a real marker)."""
    parts = tf.strings.split(texts, sep=MASK_MARKER)                       # [batch, (k)]
    counts = parts.row_lengths() - 1
    tf.debugging.assert_greater(tf.reduce_min(tf.concat([counts, [1]], 0)), tf.constant(0, tf.int64),
                                message=f"every text needs at least one {MASK_MARKER} marker")
    piece_ids = tokenizer.tokenize(parts.flat_values)                      # [parts, (t)]
    is_last = tf.equal(tf.ragged.range(parts.row_lengths()).flat_values, tf.repeat(parts.row_lengths() - 1,
                                                                                   parts.row_lengths()))
    mask_tail = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(~is_last, tf.int64))], tf.constant(tokenizer.mask_id, tf.int64)),
        tf.cast(~is_last, tf.int64))
    joined = tf.concat([piece_ids, mask_tail], axis=1)
    ids = tf.RaggedTensor.from_row_lengths(joined, parts.row_lengths()).merge_dims(1, 2)
    ids = ids[:, :max_sequence_length - 2]
    token_ids, segment_ids = tf_text.combine_segments([ids], tokenizer.cls_id, tokenizer.sep_id)
    token_ids, padding_mask = tf_text.pad_model_inputs(token_ids, max_sequence_length, pad_value=tokenizer.pad_id)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids, max_sequence_length)
    is_mask = tf.equal(token_ids, tokenizer.mask_id)
    position = tf.range(max_sequence_length)[None, :]
    order = tf.sort(tf.where(is_mask, position, max_sequence_length + position), axis=1)[:, :max_masks]
    weights = tf.cast(order < max_sequence_length, tf.float32)
    return {"token_ids": tf.cast(token_ids, tf.int32), "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(padding_mask, tf.int32),
            "masked_positions": tf.where(order < max_sequence_length, order, 0), "mask_weights": weights}


def top_k_completions(model, tokenizer: WordPieceTokenizer, texts: tf.Tensor, max_sequence_length: int,
                      top_k: int = 5, max_masks: int = 8) -> Dict[str, tf.Tensor]:
    """[batch, max_masks, top_k] token ids, token strings and probabilities (padding masks: score 0)."""
    inputs = masked_text_inputs(tokenizer, texts, max_sequence_length, max_masks)
    probs = tf.nn.softmax(model(inputs, training=False)["mlm"], axis=-1)
    scores, ids = tf.math.top_k(probs, k=top_k)
    scores = scores * inputs["mask_weights"][..., None]
    return {"token_ids": ids, "tokens": tf.gather(tf.constant(tokenizer.vocabulary), ids), "scores": scores,
            "num_masks": tf.cast(tf.reduce_sum(inputs["mask_weights"], axis=1), tf.int32)}


def fill_mask(model, tokenizer: WordPieceTokenizer, texts: Sequence[str], top_k: int = 5,
              max_sequence_length: int = 128) -> List[List[List[Tuple[str, float]]]]:
    """Python API: per text, per marker, the top-k (token, probability) suggestions."""
    batch = as_string_tensor(list(texts))
    missing = [t for t in texts if MASK_MARKER not in (t.decode("utf-8", "replace") if isinstance(t, bytes) else t)]
    if missing:
        raise ValueError(f"no {MASK_MARKER} marker in {missing[0][:80]!r}")
    out = top_k_completions(model, tokenizer, batch, max_sequence_length, top_k)
    tokens, scores, counts = out["tokens"].numpy(), out["scores"].numpy(), out["num_masks"].numpy()
    return [[[(tokens[b, m, k].decode("utf-8"), float(scores[b, m, k])) for k in range(top_k)]
             for m in range(counts[b])] for b in range(len(texts))]
