"""Writing assistant: top-k completions for ``[MASK]`` markers with a pretrained MLM head.

The marker is cut out of the text before tokenization (the tokenizer would split "[MASK]" into
punctuation) and replaced by the [MASK] token; every marker is one WordPiece slot. A text
without a marker is an error (``InvalidArgumentError`` in graphs, ``ValueError`` in Python).

``fill_mask`` scores every marker on its own; ``masked_span_suggestions`` completes all markers of
a text jointly (a masked span such as "[MASK] [MASK]"): beam search filling the markers left to
right, each step conditioned on the pieces already chosen, scored by the product of the chosen
pieces' probabilities.

Example:
    >>> fill_mask(model, tokenizer, ["The [MASK] statement is used for iteration."], top_k=3)  # doctest: +SKIP
    [[[('for', 0.62), ('while', 0.21), ('if', 0.05)]]]
    >>> masked_span_suggestions(model, tokenizer, "Use a [MASK] [MASK] here.", top_k=2)      # doctest: +SKIP
    [{'pieces': ['for', 'loop'], 'text': 'Use a for loop here.', 'probability': 0.12}, ...]
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.config import checks_number_arguments
from rw_tf.errors import error_reason
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
    kept = tf.cast(tf.reduce_sum(weights, axis=1), tf.int64)
    # A marker beyond max_masks or past the length limit cannot be served: an error, never a silent drop.
    tf.debugging.Assert(tf.reduce_all(tf.equal(kept, counts)), [
        f"a text has more {MASK_MARKER} markers than can be filled: at most {max_masks} markers, all within "
        f"the first {max_sequence_length - 2} word pieces"])
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


@checks_number_arguments()
def fill_mask(model, tokenizer: WordPieceTokenizer, texts: Sequence[str], top_k: int = 5,
              max_sequence_length: int = 128) -> List[List[List[Tuple[str, float]]]]:
    """Python API: per text, per marker, the top-k (token, probability) suggestions."""
    batch = as_string_tensor(list(texts))
    missing = [t for t in texts if MASK_MARKER not in (t.decode("utf-8", "replace") if isinstance(t, bytes) else t)]
    if missing:
        raise ValueError(f"no {MASK_MARKER} marker in {missing[0][:80]!r}")
    try:
        out = top_k_completions(model, tokenizer, batch, max_sequence_length, top_k)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(error_reason(err)) from None
    tokens, scores, counts = out["tokens"].numpy(), out["scores"].numpy(), out["num_masks"].numpy()
    return [[[(tokens[b, m, k].decode("utf-8"), float(scores[b, m, k])) for k in range(top_k)]
             for m in range(counts[b])] for b in range(len(texts))]


@checks_number_arguments(may_be_zero=("beam_width",))
def masked_span_suggestions(model, tokenizer: WordPieceTokenizer, text: str, top_k: int = 5,
                            beam_width: int = 0, max_sequence_length: int = 128,
                            max_masks: int = 8) -> List[Dict]:
    """Top-k joint completions of all markers in ``text`` (beam search, width ``max(beam_width,
    top_k)``). Returns ``[{"pieces", "text", "probability"}]``, best first; special tokens are
    never proposed. A text without a marker, or with more than ``max_masks``, is a ``ValueError``."""
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    count = text.count(MASK_MARKER)
    if count == 0:
        raise ValueError(f"no {MASK_MARKER} marker in {text[:80]!r}")
    if count > max_masks:
        raise ValueError(f"{count} markers; at most max_masks={max_masks} can be filled")
    inputs = {k: v.numpy() for k, v in masked_text_inputs(tokenizer, tf.constant([text]), max_sequence_length,
                                                         max_masks).items()}
    num_masks = int(inputs["mask_weights"].sum())
    if num_masks < count:
        raise ValueError(f"only {num_masks} of {count} markers fit in max_sequence_length={max_sequence_length}")
    positions = inputs["masked_positions"][0]
    width = max(beam_width, top_k)
    blocked = np.zeros(tokenizer.vocab_size, bool)
    blocked[tokenizer.special_ids] = True
    beams = [(0.0, [])]                                     # (log probability, chosen piece ids)
    for step in range(num_masks):
        batch = {k: np.repeat(v, len(beams), axis=0) for k, v in inputs.items() if k != "mask_weights"}
        for row, (_, chosen) in enumerate(beams):
            batch["token_ids"][row, positions[:step]] = chosen
        logits = np.asarray(model(batch, training=False)["mlm"])[:, step, :tokenizer.vocab_size]
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        log_probs[:, blocked] = -np.inf
        candidates = [(score + log_probs[row, piece], chosen + [int(piece)])
                      for row, (score, chosen) in enumerate(beams)
                      for piece in np.argsort(-log_probs[row])[:width]]
        beams = sorted(candidates, key=lambda c: -c[0])[:width]
    return [{"pieces": tokenizer.ids_to_tokens([chosen])[0],
             "text": _fill_markers(text, tokenizer.ids_to_tokens([chosen])[0]),
             "probability": float(np.exp(score))} for score, chosen in beams[:top_k]]


def _fill_markers(text: str, pieces: List[str]) -> str:
    """Puts the pieces in place of the markers; a "##" continuation joins the text before it."""
    parts = text.split(MASK_MARKER)
    out = parts[0]
    for piece, rest in zip(pieces, parts[1:]):
        out = out.rstrip() + piece[2:] if piece.startswith("##") else out + piece
        out += rest
    return out
