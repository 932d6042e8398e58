"""Pretraining examples as TensorFlow ops: pair selection (NSP/SOP), packing and MLM masking.

Everything here is batched TF graph code so the same function runs in ``tf.data.Dataset.map`` and
in a tf.Transform ``preprocessing_fn``. Randomness is a hash of (seed, example text, purpose,
position), never a stateful RNG: a given example always gets the same labels and masks, whatever
batch, worker or order it is processed in.

Rules (BERT's ``create_pretraining_data.py`` and ALBERT, see REFERENCES):
- NSP: with probability ``nsp_random_rate`` the second segment is ``text_random`` (from another
  document, label 0 = "not next"), else ``text_b`` (label 1 = "is next").
- SOP: with probability ``sop_swap_rate`` the two segments are swapped (label 1 = swapped).
  ``sop_weight`` = NSP label, because order is undefined for a random pair.
- Layout ``[CLS] A [SEP] B [SEP]``, trimmed round-robin to ``max_sequence_length`` and padded.
- MLM: k = min(max_predictions, max(1, round(rate * #candidates))) tokens are chosen among
  non-special tokens in random order (whole words together with ``whole_word_masking``); each
  chosen token becomes [MASK] (80%), a random non-special token (10%) or stays (10%).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.config import PretrainingDataConfig
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

# The builder's inputs: a candidate pair and a segment of another document (for NSP).
PAIR_TEXT_FEATURES = ("text_a", "text_b", "text_random")

_HASH_BUCKETS = 1 << 24


def example_keys(text_a: tf.Tensor, text_b: tf.Tensor, seed: int) -> tf.Tensor:
    """A stable 1-D string key per example (seed + both texts)."""
    return tf.strings.join([tf.strings.as_string(tf.constant(seed, tf.int64)), text_a, text_b],
                           separator="\x1f")


def hash_uniform(keys: tf.Tensor, purpose: str, length: int) -> tf.Tensor:
    """Deterministic pseudo-uniform floats in [0, 1), shape [batch, length]."""
    positions = tf.strings.as_string(tf.range(length))
    strings = tf.expand_dims(keys + "\x1e" + purpose + "\x1e", 1) + tf.expand_dims(positions, 0)
    buckets = tf.strings.to_hash_bucket_fast(strings, _HASH_BUCKETS)
    return tf.cast(buckets, tf.float32) / float(_HASH_BUCKETS)


def _word_index(words: tf.RaggedTensor) -> tf.RaggedTensor:
    """For [batch, (words), (pieces)] ids, the word number of every piece: [batch, (pieces)]."""
    pieces_per_word = words.values.row_lengths()
    word_numbers = tf.ragged.range(words.row_lengths()).flat_values
    return tf.RaggedTensor.from_row_lengths(tf.repeat(word_numbers, pieces_per_word),
                                            tf.reduce_sum(words.row_lengths(axis=2), axis=1))


def _fill_budget(sizes: tf.Tensor, budget: tf.Tensor, max_size: int) -> tf.Tensor:
    """Which units to mask, visiting ``sizes`` [batch, n] (0 = no unit) in order: a unit is taken
    when it still fits in ``budget`` [batch] and skipped when it does not, so a long word does not
    end the selection (BERT's create_masked_lm_predictions). If nothing fits, the first unit of at
    most ``max_size`` pieces is taken, so every example with a candidate gets a mask."""
    def take(used, size):
        return used + tf.where(tf.logical_and(size > 0, used + size <= budget), size, 0)

    used_after = tf.transpose(tf.scan(take, tf.transpose(sizes), initializer=tf.zeros_like(budget)))
    used_before = tf.pad(used_after[:, :-1], [[0, 0], [1, 0]])
    chosen = used_after > used_before
    nothing = tf.logical_not(tf.reduce_any(chosen, axis=1))
    first = tf.logical_and(tf.range(tf.shape(sizes)[1])[None, :] == 0,
                           tf.logical_and(sizes > 0, sizes <= max_size))
    return tf.logical_or(chosen, tf.logical_and(nothing[:, None], first))


def choose_masked_tokens(token_ids: tf.Tensor, unit_ids: tf.Tensor, keys: tf.Tensor,
                         config: PretrainingDataConfig, vocab_size: int, mask_id: int,
                         special_ids: list) -> Dict[str, tf.Tensor]:
    """Masks dense ``token_ids`` [batch, L]; ``unit_ids`` >= 0 marks candidates, equal ids mask together.

    Returns ``masked_token_ids`` [batch, L] and ``masked_positions``, ``masked_ids``,
    ``masked_weights`` [batch, max_predictions_per_seq].
    """
    length = token_ids.shape[1]
    num_preds = config.max_predictions_per_seq
    candidate = unit_ids >= 0
    # Renumber units 0..n-1 in order of appearance (unit ids may have gaps).
    new_unit = tf.logical_and(candidate, tf.not_equal(unit_ids, tf.pad(unit_ids, [[0, 0], [1, 0]],
                                                                      constant_values=-1)[:, :-1]))
    unit = tf.where(candidate, tf.cumsum(tf.cast(new_unit, tf.int32), axis=1) - 1, -1)
    unit_sizes = tf.reduce_sum(tf.one_hot(unit, length, dtype=tf.int32), axis=1)  # [batch, L units]
    num_candidates = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
    budget = tf.cast(tf.round(tf.cast(num_candidates, tf.float32) * config.masked_lm_rate), tf.int32)
    budget = tf.minimum(num_preds, tf.maximum(1, budget))
    budget = tf.where(num_candidates > 0, budget, 0)

    score = tf.where(unit_sizes > 0, hash_uniform(keys, "select", length), 2.0)
    order = tf.argsort(score, axis=1, stable=True)
    sorted_sizes = tf.gather(unit_sizes, order, batch_dims=1)
    chosen_sorted = _fill_budget(sorted_sizes, budget, num_preds)
    chosen_unit = tf.gather(chosen_sorted, tf.argsort(order, axis=1), batch_dims=1)
    selected = tf.logical_and(candidate, tf.gather(chosen_unit, tf.maximum(unit, 0), batch_dims=1))

    action = hash_uniform(keys, "action", length)
    non_special = tf.constant(sorted(set(range(vocab_size)) - set(special_ids)), tf.int32)
    random_index = tf.cast(hash_uniform(keys, "random", length) * tf.cast(tf.size(non_special), tf.float32),
                           tf.int32)
    random_tokens = tf.cast(tf.gather(non_special, random_index), token_ids.dtype)
    use_mask = tf.logical_and(selected, action < config.mask_token_rate)
    use_random = tf.logical_and(selected, tf.logical_and(
        action >= config.mask_token_rate, action < config.mask_token_rate + config.random_token_rate))
    masked = tf.where(use_mask, tf.cast(mask_id, token_ids.dtype), token_ids)
    masked = tf.where(use_random, random_tokens, masked)

    position = tf.range(length)[None, :]
    sort_key = tf.where(selected, position, length + position)
    top = tf.sort(sort_key, axis=1)[:, :min(num_preds, length)]
    top = tf.pad(top, [[0, 0], [0, max(0, num_preds - length)]], constant_values=2 * length)
    weights = tf.cast(top < length, tf.float32)
    positions = tf.where(top < length, top, 0)
    labels = tf.where(top < length, tf.gather(token_ids, positions, batch_dims=1), 0)
    return {"masked_token_ids": masked, "masked_positions": positions,
            "masked_ids": tf.cast(labels, tf.int32), "masked_weights": weights, "selected": selected}


class PretrainingExampleBuilder:
    """Turns a batch of candidate pairs into model-ready pretraining features (TF ops only).

    Example:
        >>> builder = PretrainingExampleBuilder(tokenizer, PretrainingDataConfig())   # doctest: +SKIP
        >>> feats = builder({"text_a": a, "text_b": b, "text_random": r})             # doctest: +SKIP
        >>> sorted(feats)                                                              # doctest: +SKIP
        ['masked_ids', 'masked_positions', 'masked_weights', 'nsp_label', 'padding_mask', ...]
    """

    def __init__(self, tokenizer: WordPieceTokenizer, config: PretrainingDataConfig, linker=None) -> None:
        """``linker`` (an ``EntityLinker``) adds ``entity_ids`` (-1 at masked positions, so the
        entity of a masked token never leaks into the input) and ``masked_entity_ids``."""
        if config.max_sequence_length < 5:
            raise ValueError("max_sequence_length must be >= 5")
        self.tokenizer = tokenizer
        self.config = config
        self.linker = linker
        self._trimmer = tf_text.RoundRobinTrimmer(config.max_sequence_length - 3)

    def __call__(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        missing = [k for k in PAIR_TEXT_FEATURES if k not in features]
        if missing:
            raise KeyError(f"pretraining features are missing {missing}")
        cfg, tok = self.config, self.tokenizer
        text_a, text_b, text_random = (features[k] for k in PAIR_TEXT_FEATURES)
        for name, t in (("text_a", text_a), ("text_b", text_b), ("text_random", text_random)):
            if t.dtype != tf.string:
                raise TypeError(f"{name} must be a string tensor, got {t.dtype.name}")
        keys = example_keys(text_a, text_b, cfg.seed)
        coins = hash_uniform(keys, "pair", 2)
        is_next = coins[:, 0] >= cfg.nsp_random_rate
        swapped = coins[:, 1] < cfg.sop_swap_rate
        second = tf.where(is_next, text_b, text_random)
        first_text = tf.where(swapped, second, text_a)
        second_text = tf.where(swapped, text_a, second)

        words_a, words_b = tok.tokenize_words(first_text), tok.tokenize_words(second_text)
        ids_a, ids_b = words_a.merge_dims(-2, -1), words_b.merge_dims(-2, -1)
        if cfg.whole_word_masking:
            unit_a, unit_b = _word_index(words_a), _word_index(words_b)
        else:
            unit_a, unit_b = (tf.ragged.range(ids.row_lengths()) for ids in (ids_a, ids_b))
        ids_a, ids_b = self._trimmer.trim([ids_a, ids_b])
        unit_a, unit_b = self._trimmer.trim([unit_a, unit_b])
        offset = tf.cast(cfg.max_sequence_length, unit_b.dtype)  # keeps B's units apart from A's
        token_ids, segment_ids = tf_text.combine_segments([ids_a, ids_b], tok.cls_id, tok.sep_id)
        units, _ = tf_text.combine_segments([unit_a, unit_b + offset], -1, -1)
        length = cfg.max_sequence_length
        token_ids, padding_mask = tf_text.pad_model_inputs(token_ids, length, pad_value=tok.pad_id)
        segment_ids, _ = tf_text.pad_model_inputs(segment_ids, length)
        units, _ = tf_text.pad_model_inputs(units, length, pad_value=-1)
        # [UNK] is a regular prediction target in BERT; only structural tokens are excluded.
        special = tf.reduce_any(tf.equal(token_ids[..., None],
                                         tf.constant([tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id],
                                                     token_ids.dtype)), axis=-1)
        units = tf.where(special, tf.constant(-1, units.dtype), units)
        mlm = choose_masked_tokens(token_ids, units, keys, cfg, tok.vocab_size, tok.mask_id, tok.special_ids)
        extra = {}
        if self.linker is not None:
            ent_a, ent_b = self._trimmer.trim([self.linker.link_pieces(first_text),
                                               self.linker.link_pieces(second_text)])
            entities, _ = tf_text.combine_segments([ent_a, ent_b], -1, -1)
            entities, _ = tf_text.pad_model_inputs(entities, length, pad_value=-1)
            extra["masked_entity_ids"] = tf.where(mlm["masked_weights"] > 0, tf.gather(
                entities, mlm["masked_positions"], batch_dims=1), tf.constant(-1, entities.dtype))
            extra["entity_ids"] = tf.where(mlm["selected"], tf.constant(-1, entities.dtype), entities)
        return {**extra,
            "token_ids": tf.cast(mlm["masked_token_ids"], tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(padding_mask, tf.int32),
            "masked_positions": mlm["masked_positions"],
            "masked_ids": mlm["masked_ids"],
            "masked_weights": mlm["masked_weights"],
            "nsp_label": tf.cast(is_next, tf.float32),
            "sop_label": tf.cast(swapped, tf.float32),
            "sop_weight": tf.cast(is_next, tf.float32),
        }
