"""Raw text -> encoder inputs as TF ops (used by Transform, exported signatures and tf.data).

Example:
    >>> feats = single_segment_inputs(tokenizer, tf.constant(["Hello world"]), 16)  # doctest: +SKIP
    >>> sorted(feats)                                                                # doctest: +SKIP
    ['padding_mask', 'segment_ids', 'token_ids']
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.data.traced import traced_once
from rw_tf.tokenization.wordpiece import WordPieceTokenizer


def single_segment_inputs(tokenizer: WordPieceTokenizer, texts: tf.Tensor, max_sequence_length: int,
                          linker=None) -> Dict[str, tf.Tensor]:
    """``[CLS] text [SEP]`` truncated to ``max_sequence_length`` and padded; int32 [batch, L].
    With an ``EntityLinker`` also ``entity_ids`` (-1 for special, padding and unlinked tokens)."""
    if max_sequence_length < 3:
        raise ValueError("max_sequence_length must be >= 3")
    ids = tokenizer.tokenize(texts)[:, :max_sequence_length - 2]
    token_ids, segment_ids = tf_text.combine_segments([ids], tokenizer.cls_id, tokenizer.sep_id)
    token_ids, padding_mask = tf_text.pad_model_inputs(token_ids, max_sequence_length,
                                                       pad_value=tokenizer.pad_id)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids, max_sequence_length)
    features = {"token_ids": tf.cast(token_ids, tf.int32), "segment_ids": tf.cast(segment_ids, tf.int32),
                "padding_mask": tf.cast(padding_mask, tf.int32)}
    if linker is not None:
        entities, _ = tf_text.combine_segments([linker.link_pieces(texts)[:, :max_sequence_length - 2]], -1, -1)
        entities, _ = tf_text.pad_model_inputs(entities, max_sequence_length, pad_value=-1)
        features["entity_ids"] = tf.cast(entities, tf.int32)
    return features


def single_segment_encoder(tokenizer: WordPieceTokenizer, max_sequence_length: int, linker=None):
    """``single_segment_inputs`` as one ``tf.function`` of a ``[batch]`` string tensor, traced once
    per tokenizer, length and linker (``traced_once``): what a dataset's map calls."""
    if max_sequence_length < 3:   # here too: inside the map's trace the error would come wrapped in autograph's text
        raise ValueError("max_sequence_length must be >= 3")
    return traced_once((tokenizer, linker), ("single_segment", max_sequence_length), lambda: tf.function(
        lambda texts: single_segment_inputs(tokenizer, texts, max_sequence_length, linker),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")]))


TEXT_ID_BUCKETS = 2 ** 31 - 1   # text ids (string hashes) that mask duplicates out of InfoNCE negatives


def text_ids(*texts: tf.Tensor) -> tf.Tensor:
    """int32 [batch, len(texts)]: a hash id per text, equal for equal strings."""
    return tf.cast(tf.stack([tf.strings.to_hash_bucket_fast(t, TEXT_ID_BUCKETS) for t in texts], axis=1), tf.int32)


def with_static_batch(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Declares the batch size of every tensor of a ``drop_remainder`` dataset: the tokenizer's
    ragged ops lose it, and XLA (and TPUs) compile a train step for static shapes."""
    def declare(*element):
        return tf.nest.map_structure(lambda t: tf.ensure_shape(t, [batch_size] + t.shape[1:]),
                                     element if len(element) > 1 else element[0])
    return dataset.map(declare)


def trim_to_longest(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Encoder inputs [batch, L] cut to the longest example's real length (``padding_mask``'s row
    sums); only padding is removed. An empty batch keeps zero columns."""
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
    longest = tf.maximum(longest, 0)
    return {k: v[:, :longest] for k, v in features.items()}


def length_buckets(max_sequence_length: int, smallest: int = 16) -> List[int]:
    """Padded lengths of the buckets: powers of two from ``smallest`` below ``max_sequence_length``,
    then ``max_sequence_length`` itself (few shapes, so XLA compiles a few step variants only)."""
    bounds, length = [], smallest
    while length < max_sequence_length:
        bounds.append(length)
        length *= 2
    return bounds + [max_sequence_length]


def bucketed_text_batches(texts: Sequence[str], columns: Sequence[Any], tokenizer: WordPieceTokenizer,
                          max_sequence_length: int, batch_size: int, seed: int, linker=None) -> tf.data.Dataset:
    """Endless training batches ``(encoder inputs, *columns)`` whose texts have similar lengths.

    Every text's word-piece count is measured once; ``tf.data``'s ``bucket_by_sequence_length``
    groups shuffled examples by the bucket their ``[CLS] text [SEP]`` length falls into
    (``length_buckets``) and emits full batches of one bucket; each batch is then padded to its
    bucket's length instead of ``max_sequence_length``. The batch size stays static and the
    sequence length takes one of the few bucket values. The order is seeded, so the same every run.
    """
    lengths = tokenizer.tokenize(tf.constant(list(texts))).row_lengths().numpy() + 2
    buckets = length_buckets(max_sequence_length)
    slices = (tf.constant(list(texts)), *[tf.constant(c) for c in columns],
              tf.constant(np.minimum(lengths, max_sequence_length), tf.int32))
    ds = tf.data.Dataset.from_tensor_slices(slices).shuffle(len(texts), seed=seed).repeat()
    ds = ds.bucket_by_sequence_length(lambda *row: row[-1], bucket_boundaries=[b + 1 for b in buckets[:-1]],
                                      bucket_batch_sizes=[batch_size] * len(buckets), drop_remainder=True)
    bounds = tf.constant(buckets, tf.int32)
    encode_text = single_segment_encoder(tokenizer, max_sequence_length, linker)

    def encode(text, *rest):
        *values, length = rest
        padded_to = tf.gather(bounds, tf.reduce_min(tf.where(bounds >= tf.reduce_max(length))))
        features = encode_text(text)
        features = {k: tf.ensure_shape(v[:, :padded_to], [batch_size, None]) for k, v in features.items()}
        return (features, *values)
    return ds.map(encode)


def rebucket_padded_batches(dataset: tf.data.Dataset, max_sequence_length: int, batch_size: int,
                            sequence_keys: Sequence[str]) -> tf.data.Dataset:
    """Length-bucketed batches from batches already padded to ``max_sequence_length`` (the TFX path,
    where tf.Transform pads every example): the examples are regrouped by their real length
    (``padding_mask``'s sum) into full batches of one bucket (``length_buckets``), and the
    ``sequence_keys`` features of each batch cut to the smallest bucket that holds its longest
    example. Only padding is cut; other features and the batch size stay as they are.

    ``dataset`` yields ``(features, *rest)`` with ``features["padding_mask"]`` of shape [batch, L].
    """
    buckets = length_buckets(max_sequence_length)
    bounds = tf.constant(buckets, tf.int32)
    ds = dataset.unbatch().bucket_by_sequence_length(
        lambda features, *rest: tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32)),
        bucket_boundaries=[b + 1 for b in buckets[:-1]], bucket_batch_sizes=[batch_size] * len(buckets),
        drop_remainder=True)

    def cut(features, *rest):
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
        padded_to = tf.gather(bounds, tf.reduce_min(tf.where(bounds >= longest)))
        features = {k: tf.ensure_shape(v[:, :padded_to], [batch_size, None]) if k in sequence_keys else v
                    for k, v in features.items()}
        return (features, *rest) if rest else features
    return ds.map(cut)


def real_token_rate(dataset: tf.data.Dataset, batches: int) -> float:
    """Share of real (not padding) positions in the first ``batches`` batches of ``(inputs, ...)``."""
    real = total = 0
    for element in dataset.take(batches):
        mask = element[0]["padding_mask"].numpy()
        real, total = real + int(mask.sum()), total + mask.size
    return real / max(total, 1)
