"""tf.data input pipeline for pretraining: candidate pairs -> (x, y, sample_weight) batches.

Example:
    >>> ds = pretraining_dataset(columns, tokenizer, PretrainingDataConfig(), batch_size=32)  # doctest: +SKIP
    >>> model.fit(ds, steps_per_epoch=100)                                                   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.masking import PAIR_TEXT_FEATURES, PretrainingExampleBuilder
from rw_tf.data.text_inputs import with_static_batch
from rw_tf.data.traced import traced_once
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask", "masked_positions")


def to_keras_triplet(features: Dict[str, tf.Tensor]) -> Tuple[Dict, Dict, Dict]:
    """Splits builder features into Keras ``(x, y, sample_weight)`` for ``PretrainingModel``."""
    x = {k: features[k] for k in MODEL_INPUTS + ("entity_ids",) if k in features}
    y = {"mlm": features["masked_ids"], "nsp": features["nsp_label"][:, None],
         "sop": features["sop_label"][:, None]}
    sample_weight = {"mlm": features["masked_weights"], "nsp": tf.ones_like(features["nsp_label"]),
                     "sop": features["sop_weight"]}
    return x, y, sample_weight


def traced_example_builder(tokenizer: WordPieceTokenizer, config: PretrainingDataConfig, linker=None):
    """``PretrainingExampleBuilder(tokenizer, config, linker)`` as one ``tf.function`` over batches
    of the three text columns (``{"text_a", "text_b", "text_random"}``, each ``[batch]`` strings),
    traced once per tokenizer, settings and linker (``traced_once``)."""
    signature = {k: tf.TensorSpec([None], tf.string, name=k) for k in PAIR_TEXT_FEATURES}
    return traced_once((tokenizer, linker), ("pretraining_examples", config), lambda: tf.function(
        PretrainingExampleBuilder(tokenizer, config, linker), input_signature=[signature]))


def pretraining_features(columns: Dict[str, Sequence[str]], tokenizer: WordPieceTokenizer,
                         config: PretrainingDataConfig, batch_size: int, shuffle: bool = True,
                         repeat: bool = True, drop_remainder: bool = True, linker=None) -> tf.data.Dataset:
    """Batches of builder features (all of them, e.g. ``masked_entity_ids`` for evaluation)."""
    if not columns.get("text_a"):
        raise ValueError("no candidate pairs: the corpus produced no sentence pairs")
    builder = traced_example_builder(tokenizer, config, linker)
    texts = {k: tf.constant(list(columns[k]), tf.string) for k in PAIR_TEXT_FEATURES}
    ds = tf.data.Dataset.from_tensor_slices(texts)
    if shuffle:
        ds = ds.shuffle(len(columns["text_a"]), seed=config.seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(builder, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return with_static_batch(ds, batch_size) if drop_remainder else ds


def pretraining_dataset(columns: Dict[str, Sequence[str]], tokenizer: WordPieceTokenizer,
                        config: PretrainingDataConfig, batch_size: int, shuffle: bool = True,
                        repeat: bool = True, drop_remainder: bool = True, linker=None) -> tf.data.Dataset:
    """Batches of ``(x, y, sample_weight)`` for ``PretrainingModel.fit`` from candidate pairs;
    with an ``EntityLinker``, ``x`` also holds ``entity_ids`` for a knowledge-enhanced encoder."""
    ds = pretraining_features(columns, tokenizer, config, batch_size, shuffle, repeat, drop_remainder, linker)
    return ds.map(to_keras_triplet).prefetch(tf.data.AUTOTUNE)
