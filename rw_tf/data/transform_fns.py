"""tf.Transform ``preprocessing_fn`` bodies and their typed configurations.

The pipeline serializes a ``PretrainingTransformConfig`` or ``TextTransformConfig`` into the
Transform's ``custom_config`` (``to_dict``); the module files parse it back (``from_dict``: unknown
keys are an error) and call the functions here, so both sides share one set of defaults.

The tokenizer is created through ``tft.make_and_track_object`` so its lookup table and vocabulary
file are saved in the transform graph (the vocabulary becomes an asset of ``transform_fn``).
Pretraining examples are built by the same TF ops as the tf.data pipeline, so eval examples are
masked deterministically and TFMA can score masked-LM accuracy on them.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence

import tensorflow as tf

from rw_tf.checkpoints.hf_bert import minilm_checkpoint_dir
from rw_tf.config import DictConfig, PretrainingDataConfig
from rw_tf.data.images import decode_images
from rw_tf.data.masking import PAIR_TEXT_FEATURES, PretrainingExampleBuilder
from rw_tf.data.qa_windows import (
    WindowSpec,
    answer_byte_span,
    question_context_windows,
    span_labels,
    windows_by_example,
)
from rw_tf.data.text_inputs import single_segment_inputs, text_ids
from rw_tf.knowledge.entity_linking import linker_for_knowledge_dir
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

# Sentence-embedding examples: raw feature -> the view it becomes (``SentenceEncoder``'s inputs).
EMBEDDING_VIEWS = {"query": "anchor", "item": "positive", "negative": "negative"}


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


def require_features(inputs: Dict[str, tf.Tensor], names: Sequence[str], what: str) -> None:
    """A ``KeyError`` naming the features ``what`` examples lack."""
    missing = [k for k in names if k not in inputs]
    if missing:
        raise KeyError(f"{what} examples are missing features {missing}")


def tracked_tokenizer(vocab_file: Optional[str], lower_case: bool) -> WordPieceTokenizer:
    """The tokenizer of ``vocab_file`` (None: all-MiniLM-L6-v2's), tracked by the transform graph."""
    import tensorflow_transform as tft  # Transform-only dependency; sets tf.keras to tf_keras on import

    vocab_file = vocab_file or os.path.join(minilm_checkpoint_dir(), "vocab.txt")
    return tft.make_and_track_object(lambda: WordPieceTokenizer(vocab_file, lower_case=lower_case),
                                     name="wordpiece_tokenizer")


def tracked_linker(tokenizer: WordPieceTokenizer, alias_file: str, knowledge_dir: str):
    """An ``EntityLinker`` over ``alias_file`` with the entity ids of a ``rw-tf kg train`` model dir."""
    import tensorflow_transform as tft  # see tracked_tokenizer

    return tft.make_and_track_object(lambda: linker_for_knowledge_dir(tokenizer, alias_file, knowledge_dir),
                                     name="entity_linker")


@dataclasses.dataclass
class PretrainingTransformConfig(DictConfig):
    """How the pretraining Transform builds masked examples (knowledge mode: alias table + kg model)."""

    vocab_file: str
    max_sequence_length: int = 128
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False
    seed: int = 12345
    lower_case: bool = True
    alias_file: Optional[str] = None
    knowledge_dir: Optional[str] = None

    def data_config(self) -> PretrainingDataConfig:
        return PretrainingDataConfig(max_sequence_length=self.max_sequence_length,
                                     max_predictions_per_seq=self.max_predictions_per_seq,
                                     whole_word_masking=self.whole_word_masking, seed=self.seed)


@dataclasses.dataclass
class TextTransformConfig(DictConfig):
    """How a text-classification Transform builds encoder inputs (+ ``entity_ids`` in knowledge mode)."""

    vocab_file: str
    max_sequence_length: int = 128
    lower_case: bool = True
    label_key: str = "label"
    alias_file: Optional[str] = None
    knowledge_dir: Optional[str] = None


@dataclasses.dataclass
class PairTransformConfig(DictConfig):
    """How a sentence-embedding Transform tokenizes (query, item, negative) with the encoder's
    vocabulary (``vocab_file``; None: all-MiniLM-L6-v2's, found where the Transform runs)."""

    vocab_file: Optional[str] = None
    max_sequence_length: int = 64
    lower_case: bool = True


@dataclasses.dataclass
class ImageTextTransformConfig(DictConfig):
    """How an image-text Transform decodes images (checked headers, RGB, ``image_size`` square,
    normalised) and tokenizes captions with the text encoder's vocabulary (``vocab_file``; None:
    all-MiniLM-L6-v2's)."""

    vocab_file: Optional[str] = None
    max_sequence_length: int = 16
    image_size: int = 32
    lower_case: bool = True


MAX_QA_EXAMPLE_TOKENS = 65_536   # e.g. 128 windows of 512 tokens; each token is 5 int64 features


@dataclasses.dataclass
class QATransformConfig(DictConfig):
    """How an extractive-QA Transform windows (question, context) pairs: ``WindowSpec``'s geometry
    and the encoder's vocabulary (``vocab_file``; None: all-MiniLM-L6-v2's). ``max_windows`` is
    also the padded number of windows per example."""

    vocab_file: Optional[str] = None
    max_sequence_length: int = 128
    doc_stride: int = 48
    max_question_length: int = 24
    max_windows: int = 10
    lower_case: bool = True

    def validate(self) -> None:
        tokens = self.max_windows * self.max_sequence_length
        if tokens > MAX_QA_EXAMPLE_TOKENS:
            raise ValueError(f"max_windows x max_sequence_length is {tokens:,} tokens, at most "
                             f"{MAX_QA_EXAMPLE_TOKENS:,}: the Transform pads every question to that many")
        self.window_spec()   # doc_stride within the room the longest question leaves

    def window_spec(self) -> WindowSpec:
        return WindowSpec(self.max_sequence_length, self.doc_stride, self.max_question_length, self.max_windows)


@dataclasses.dataclass
class InteractionTransformConfig(DictConfig):
    """How a recommendation Transform maps item ids to indices (``items_file``: one id per line,
    the catalogue in index order) and pads histories to ``max_history``."""

    items_file: str
    max_history: int = 32


def pretraining_preprocessing_fn(inputs: Dict[str, tf.Tensor],
                                 config: PretrainingTransformConfig) -> Dict[str, tf.Tensor]:
    """Raw ``text_a``/``text_b``/``text_random`` -> masked pretraining features (+ ``mlm_num_masked``);
    in knowledge mode also ``entity_ids`` and ``masked_entity_ids``."""
    require_features(inputs, PAIR_TEXT_FEATURES, "pretraining")
    tokenizer = tracked_tokenizer(config.vocab_file, config.lower_case)
    linker = tracked_linker(tokenizer, config.alias_file, config.knowledge_dir) if config.alias_file else None
    features = PretrainingExampleBuilder(tokenizer, config.data_config(), linker)(
        {k: dense_1d(inputs[k], b"") for k in PAIR_TEXT_FEATURES})
    features["mlm_num_masked"] = tf.reduce_sum(features["masked_weights"], axis=1)
    return example_dtypes(features)


def classification_preprocessing_fn(inputs: Dict[str, tf.Tensor], config: TextTransformConfig) -> Dict[str, tf.Tensor]:
    """Raw ``text`` (+ label) -> encoder inputs (+ int64 label; + ``entity_ids`` in knowledge mode)."""
    require_features(inputs, ["text"], "classification")
    tokenizer = tracked_tokenizer(config.vocab_file, config.lower_case)
    linker = tracked_linker(tokenizer, config.alias_file, config.knowledge_dir) if config.alias_file else None
    features = single_segment_inputs(tokenizer, dense_1d(inputs["text"], b""), config.max_sequence_length, linker)
    if config.label_key in inputs:
        features[config.label_key] = dense_1d(inputs[config.label_key], -1)
    return example_dtypes(features)


def pair_preprocessing_fn(inputs: Dict[str, tf.Tensor], config: PairTransformConfig) -> Dict[str, tf.Tensor]:
    """Raw ``query``/``item``/``negative`` -> ``{anchor,positive,negative}_{token_ids,segment_ids,
    padding_mask}``, ``{view}_text_id`` (string hashes) and a constant ``pair_label`` of 1 (the
    label TFMA reads while the gate scores the model's ``pair_accuracy``)."""
    require_features(inputs, EMBEDDING_VIEWS, "sentence-embedding")
    tokenizer = tracked_tokenizer(config.vocab_file, config.lower_case)
    features = {}
    for raw, view in EMBEDDING_VIEWS.items():
        text = dense_1d(inputs[raw], b"")
        for key, value in single_segment_inputs(tokenizer, text, config.max_sequence_length).items():
            features[f"{view}_{key}"] = value
        features[f"{view}_text_id"] = text_ids(text)[:, 0]
    features["pair_label"] = tf.ones_like(features["anchor_text_id"])
    return example_dtypes(features)


IMAGE_TEXT_FEATURES = ("image", "caption", "negative_caption", "label")


def image_text_preprocessing_fn(inputs: Dict[str, tf.Tensor], config: ImageTextTransformConfig) -> Dict[str, tf.Tensor]:
    """Raw ``image`` (PNG/JPEG bytes), ``caption``, ``negative_caption`` (another class's) and
    ``label`` -> ``image`` float32 [size, size, 3], ``text_*`` and ``negative_text_*`` encoder
    inputs, ``label`` and a constant ``match_label`` of 1 (the label TFMA reads while the gate
    scores the model's ``match_accuracy``). A bad image fails with its reason (``decode_images``)."""
    require_features(inputs, IMAGE_TEXT_FEATURES, "image-text")
    tokenizer = tracked_tokenizer(config.vocab_file, config.lower_case)
    features = {"image": decode_images(dense_1d(inputs["image"], b""), config.image_size)}
    for raw, prefix in (("caption", "text"), ("negative_caption", "negative_text")):
        encoded = single_segment_inputs(tokenizer, dense_1d(inputs[raw], b""), config.max_sequence_length)
        features.update({f"{prefix}_{k}": v for k, v in encoded.items()})
    features["label"] = dense_1d(inputs["label"], -1)
    features["match_label"] = tf.ones_like(features["label"])
    return example_dtypes(features)


QA_FEATURES = ("question", "context", "answer", "answer_start")


def qa_preprocessing_fn(inputs: Dict[str, tf.Tensor], config: QATransformConfig) -> Dict[str, tf.Tensor]:
    """Raw ``question``, ``context``, ``answer`` and ``answer_start`` (character offset) -> one row
    per example holding all its windows (``windows_by_example``: encoder inputs ``[W, L]``, span
    targets, window mask, token byte spans) and a constant ``qa_label`` of 1 (the label TFMA reads
    while the gate scores the model's ``span_exact_match``). A question or context the geometry
    cannot window, or an answer that is not at its offset, fails with the reason."""
    require_features(inputs, QA_FEATURES, "question-answering")
    tokenizer = tracked_tokenizer(config.vocab_file, config.lower_case)
    spec = config.window_spec()
    windows = question_context_windows(tokenizer, dense_1d(inputs["question"], b""), dense_1d(inputs["context"], b""),
                                       spec)
    answer_start, answer_end = answer_byte_span(windows.contexts, dense_1d(inputs["answer"], b""),
                                                dense_1d(inputs["answer_start"], -1))
    features = windows_by_example(windows, span_labels(windows, answer_start, answer_end), spec.max_windows)
    features["qa_label"] = tf.ones_like(features["window_mask"][:, 0])
    return example_dtypes(features)


def tracked_item_table(items_file: str):
    """A lookup table item id -> line number of ``items_file`` (-1: unknown), saved with the graph."""
    import tensorflow_transform as tft  # see tracked_tokenizer

    def make():
        init = tf.lookup.TextFileInitializer(items_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                             tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        return tf.lookup.StaticHashTable(init, -1)
    return tft.make_and_track_object(make, name="item_table")


def interaction_preprocessing_fn(inputs: Dict[str, tf.Tensor], config: InteractionTransformConfig
                                 ) -> Dict[str, tf.Tensor]:
    """Raw ``history`` (space-separated item ids, oldest first) and ``item`` -> ``history_ids``
    [max_history] (the latest items, -1 padding after them; unknown ids dropped), ``item_id``
    (-1 if unknown) and a constant ``hit_label`` (the label TFMA reads while the gate scores hits)."""
    require_features(inputs, ("history", "item"), "recommendation")
    table = tracked_item_table(config.items_file)
    tokens = tf.strings.split(dense_1d(inputs["history"], b""))
    ids = tf.ragged.boolean_mask(table.lookup(tokens), table.lookup(tokens) >= 0)
    latest = ids[:, -config.max_history:]
    return {"history_ids": latest.to_tensor(default_value=-1, shape=[None, config.max_history]),
            "item_id": table.lookup(dense_1d(inputs["item"], b"")),
            "hit_label": tf.ones_like(table.lookup(dense_1d(inputs["item"], b"")))}
