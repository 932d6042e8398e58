"""Training inside a TFX Trainer: transformed examples -> compiled model -> ``fit``.

The Trainer module files bind these to ``run_fn``; export is in ``serving.export``.
``custom_config`` keys (all optional): ``preset``, ``batch_size``, ``epochs``, ``learning_rate``,
``warmup_steps``, ``strategy``, ``jit_compile``, ``nsp_weight``, ``sop_weight``, ``num_classes``,
``dropout``, ``seed``; knowledge mode (pretraining): ``knowledge_dir`` (a ``rw-tf kg train``
output: its TransE entity embeddings are injected, frozen), ``knowledge_fusion`` ("gated" or
"additive") and ``knowledge_layers`` (block indices).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import keras
import tensorflow as tf

from rw_tf.config import EncoderConfig
from rw_tf.data.pretraining_dataset import to_keras_triplet
from rw_tf.models.classifier import TextClassifier
from rw_tf.models.pretraining import PretrainingModel
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.tokenization.wordpiece import WordPieceTokenizer
from rw_tf.training.pretrain import PretrainRunConfig, build_optimizer
from rw_tf.training.strategy import get_strategy

ENCODER_FEATURES = ("token_ids", "segment_ids", "padding_mask")
ASSETS_EXTRA = "assets.extra"  # where exports keep model.keras / encoder.keras (TF Serving ignores it)


def find_keras_file(path: str, name: str = "encoder.keras") -> str:
    """Locates ``assets.extra/<name>`` in an export, a TFX Model artifact or a pushed version dir."""
    for candidate in (path, os.path.dirname(path.rstrip("/")), os.path.join(path, "Format-Serving")):
        file = os.path.join(candidate, ASSETS_EXTRA, name)
        if tf.io.gfile.exists(file):
            return file
    raise FileNotFoundError(f"no {ASSETS_EXTRA}/{name} under {path}: is it an rw-tf export?")


def transform_vocab_file(tft_output) -> str:
    """The WordPiece vocabulary stored as an asset of the transform graph."""
    path = os.path.join(tft_output.transform_savedmodel_dir, "assets", "vocab.txt")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"the transform graph has no vocab.txt asset ({path})")
    return path


def transformed_dataset(fn_args, files, tft_output, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    from tfx_bsl.public import tfxio

    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=shuffle, num_epochs=None,
                                             shuffle_seed=0 if shuffle else None)
    return fn_args.data_accessor.tf_dataset_factory(files, options, tft_output.transformed_metadata.schema)


def _run_config(config: Dict[str, Any], fn_args) -> PretrainRunConfig:
    epochs = int(config.get("epochs", 1))
    return PretrainRunConfig(
        output_dir=fn_args.model_run_dir, preset=config.get("preset", "tiny"), epochs=epochs,
        steps_per_epoch=max(1, fn_args.train_steps // epochs), batch_size=int(config.get("batch_size", 32)),
        learning_rate=float(config.get("learning_rate", 1e-3)), warmup_steps=int(config.get("warmup_steps", 10)),
        strategy=config.get("strategy", "default"), jit_compile=bool(config.get("jit_compile", False)),
        nsp_weight=float(config.get("nsp_weight", 1.0)), sop_weight=float(config.get("sop_weight", 1.0)),
        seed=int(config.get("seed", 12345)))


def _fit(model: keras.Model, train_ds, eval_ds, run: PretrainRunConfig, fn_args) -> keras.callbacks.History:
    return model.fit(train_ds, epochs=run.epochs, steps_per_epoch=run.steps_per_epoch,
                     validation_data=eval_ds, validation_steps=max(1, fn_args.eval_steps),
                     callbacks=[keras.callbacks.TensorBoard(os.path.join(fn_args.model_run_dir, "logs"))],
                     verbose=2)


def build_encoder(encoder_config: EncoderConfig, config: Dict[str, Any]) -> TransformerEncoder:
    """A plain encoder, or with ``knowledge_dir`` a knowledge-enhanced one with TransE's entities."""
    if not config.get("knowledge_dir"):
        return TransformerEncoder.from_encoder_config(encoder_config)
    from rw_tf.knowledge.training import load_model_dir
    from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder

    transe, entities, _ = load_model_dir(config["knowledge_dir"])
    vectors = transe.entity_embedding.embeddings.numpy()
    encoder = KnowledgeEnhancedEncoder(num_entities=len(entities), entity_embedding_dim=vectors.shape[1],
                                       knowledge_layers=tuple(config.get("knowledge_layers", (0,))),
                                       fusion=config.get("knowledge_fusion", "gated"), **encoder_config.to_dict())
    encoder.set_entity_embeddings(vectors)
    return encoder


def knowledge_linker(config: Dict[str, Any], tokenizer: WordPieceTokenizer):
    """The entity linker of knowledge mode (None otherwise), for the raw-text export."""
    if not config.get("knowledge_dir"):
        return None
    from rw_tf.knowledge.entity_linking import EntityLinker, aliases_for_knowledge_dir

    return EntityLinker(tokenizer, aliases_for_knowledge_dir(config["alias_file"], config["knowledge_dir"]))


def train_pretraining_model(fn_args) -> Tuple[PretrainingModel, Any, WordPieceTokenizer, int]:
    """Pretrains from transformed examples; returns (model, tft_output, tokenizer, max_sequence_length)."""
    import tensorflow_transform as tft

    config = dict(fn_args.custom_config or {})
    run = _run_config(config, fn_args)
    keras.utils.set_random_seed(run.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tokenizer = WordPieceTokenizer(transform_vocab_file(tft_output), lower_case=config.get("lower_case", True))
    train_ds = transformed_dataset(fn_args, fn_args.train_files, tft_output, run.batch_size, True).map(to_keras_triplet)
    eval_ds = transformed_dataset(fn_args, fn_args.eval_files, tft_output, run.batch_size, False).map(to_keras_triplet)
    max_len = int(tft_output.transformed_feature_spec()["token_ids"].shape[0])
    encoder_config = EncoderConfig.preset_for_length(run.preset, tokenizer.vocab_size, max_len)
    with get_strategy(run.strategy).scope():
        model = PretrainingModel(build_encoder(encoder_config, config), nsp_weight=run.nsp_weight,
                                 sop_weight=run.sop_weight, name="pretraining_model")
        model.compile(optimizer=build_optimizer(run), jit_compile=run.jit_compile)
    _fit(model, train_ds, eval_ds, run, fn_args)
    return model, tft_output, tokenizer, max_len


def _classifier_triplet(label_key: str):
    def split(features):
        return {k: features[k] for k in ENCODER_FEATURES}, features[label_key]
    return split


def train_text_classifier(fn_args, label_key: str = "label") -> Tuple[TextClassifier, Any, WordPieceTokenizer, int]:
    """Fine-tunes a classifier, warm-started from ``fn_args.base_model``'s encoder when given."""
    import tensorflow_transform as tft

    config = dict(fn_args.custom_config or {})
    run = _run_config(config, fn_args)
    keras.utils.set_random_seed(run.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tokenizer = WordPieceTokenizer(transform_vocab_file(tft_output), lower_case=config.get("lower_case", True))
    split = _classifier_triplet(label_key)
    train_ds = transformed_dataset(fn_args, fn_args.train_files, tft_output, run.batch_size, True).map(split)
    eval_ds = transformed_dataset(fn_args, fn_args.eval_files, tft_output, run.batch_size, False).map(split)
    max_len = int(tft_output.transformed_feature_spec()["token_ids"].shape[0])
    with get_strategy(run.strategy).scope():
        if fn_args.base_model:
            encoder = keras.saving.load_model(find_keras_file(fn_args.base_model, "encoder.keras"))
            if encoder.config.vocab_size != tokenizer.vocab_size:
                raise ValueError(f"the pretrained encoder has vocab_size {encoder.config.vocab_size} but the "
                                 f"transform vocabulary has {tokenizer.vocab_size}: use the same vocab.txt")
        else:
            encoder = TransformerEncoder.from_encoder_config(
                EncoderConfig.preset_for_length(run.preset, tokenizer.vocab_size, max_len))
        model = TextClassifier(encoder, num_classes=int(config.get("num_classes", 2)),
                               dropout=float(config.get("dropout", 0.1)), name="text_classifier")
        model.compile(optimizer=build_optimizer(run), jit_compile=run.jit_compile)
    _fit(model, train_ds, eval_ds, run, fn_args)
    return model, tft_output, tokenizer, max_len
