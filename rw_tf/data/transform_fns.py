"""tf.Transform ``preprocessing_fn`` bodies. The TFX module files only bind configuration to these.

The tokenizer is created through ``tft.make_and_track_object`` so its lookup table and vocabulary
file are saved in the transform graph (the vocabulary becomes an asset of ``transform_fn``).
Pretraining examples are built by the same TF ops as the tf.data pipeline, so eval examples are
masked deterministically and TFMA can score masked-LM accuracy on them.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.masking import PretrainingExampleBuilder
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

PAIR_TEXT_FEATURES = ("text_a", "text_b", "text_random")


def dense_1d(value: tf.Tensor, default) -> tf.Tensor:
    """A [batch] tensor from a [batch, 1] dense, sparse or ragged feature (missing -> ``default``)."""
    if isinstance(value, tf.sparse.SparseTensor):
        value = tf.sparse.to_dense(value, default_value=default)
    elif isinstance(value, tf.RaggedTensor):
        value = value.to_tensor(default_value=default)
    value = tf.pad(value, [[0, 0], [0, 1]], constant_values=default)[:, :1] if value.shape.rank == 2 else value
    return tf.reshape(value, [-1])


def example_dtypes(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Casts integer outputs to int64: Transform materializes tf.Examples (int64/float32/bytes)."""
    return {k: tf.cast(v, tf.int64) if v.dtype.is_integer else v for k, v in features.items()}


def tracked_tokenizer(vocab_file: str, lower_case: bool) -> WordPieceTokenizer:
    import tensorflow_transform as tft  # Transform-only dependency; sets tf.keras to tf_keras on import

    return tft.make_and_track_object(lambda: WordPieceTokenizer(vocab_file, lower_case=lower_case),
                                     name="wordpiece_tokenizer")


def tracked_linker(tokenizer: WordPieceTokenizer, alias_file: str, knowledge_dir: str):
    """An ``EntityLinker`` over ``alias_file`` with the entity ids of a ``rw-tf kg train`` model dir."""
    import tensorflow_transform as tft

    from rw_tf.knowledge.entity_linking import EntityLinker, aliases_for_knowledge_dir

    aliases = aliases_for_knowledge_dir(alias_file, knowledge_dir)
    return tft.make_and_track_object(lambda: EntityLinker(tokenizer, aliases), name="entity_linker")


def pretraining_preprocessing_fn(inputs: Dict[str, tf.Tensor], vocab_file: str,
                                 data_config: PretrainingDataConfig, lower_case: bool = True,
                                 alias_file: str = None, knowledge_dir: str = None) -> Dict[str, tf.Tensor]:
    """Raw ``text_a``/``text_b``/``text_random`` -> masked pretraining features (+ ``mlm_num_masked``);
    with ``alias_file`` and ``knowledge_dir`` also ``entity_ids`` and ``masked_entity_ids``."""
    missing = [k for k in PAIR_TEXT_FEATURES if k not in inputs]
    if missing:
        raise KeyError(f"pretraining examples are missing features {missing}")
    tokenizer = tracked_tokenizer(vocab_file, lower_case)
    linker = tracked_linker(tokenizer, alias_file, knowledge_dir) if alias_file else None
    features = PretrainingExampleBuilder(tokenizer, data_config, linker)(
        {k: dense_1d(inputs[k], b"") for k in PAIR_TEXT_FEATURES})
    features["mlm_num_masked"] = tf.reduce_sum(features["masked_weights"], axis=1)
    return example_dtypes(features)


def classification_preprocessing_fn(inputs: Dict[str, tf.Tensor], vocab_file: str, max_sequence_length: int,
                                    lower_case: bool = True) -> Dict[str, tf.Tensor]:
    """Raw ``text`` (+ ``label``) -> encoder inputs (+ int64 ``label``)."""
    if "text" not in inputs:
        raise KeyError("classification examples need a 'text' feature")
    tokenizer = tracked_tokenizer(vocab_file, lower_case)
    features = single_segment_inputs(tokenizer, dense_1d(inputs["text"], b""), max_sequence_length)
    if "label" in inputs:
        features["label"] = dense_1d(inputs["label"], -1)
    return example_dtypes(features)
