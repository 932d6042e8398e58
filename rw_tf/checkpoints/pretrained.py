"""Starting points for training: any pretrained encoder a user has, with its tokenizer.

``pretrained_encoder(path)`` and ``pretrained_tokenizer(path)`` accept
- a Hugging Face BERT-family folder (``config.json`` + ``model.safetensors`` + ``vocab.txt``);
- an rw-tf export or pushed version (``assets.extra/encoder.keras`` + ``assets/vocab.txt``), a TFX
  Model artifact, or a training output folder holding ``export/1`` (``rw-tf pretrain`` / ``finetune``).
The tokenizer settings travel with rw-tf exports in ``assets.extra/tokenizer.json``. Load the
tokenizer with the data and the encoder inside the strategy scope.

Example:
    >>> tokenizer = pretrained_tokenizer("runs/pretrain")                        # doctest: +SKIP
    >>> with strategy.scope(): encoder = pretrained_encoder("runs/pretrain")     # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Optional

import keras
import tensorflow as tf

from rw_tf.checkpoints.hf_bert import hf_bert_encoder, hf_bert_masked_lm, hf_bert_tokenizer
from rw_tf.config import checks_number_arguments
from rw_tf.errors import CorruptFileError
from rw_tf.export.base import ASSETS_EXTRA, find_keras_file
from rw_tf.model_files import load_keras_file, read_json_object
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.tokenization.wordpiece import WordPieceTokenizer, check_settings

TOKENIZER_FILE = "tokenizer.json"


def _existing(path: str) -> str:
    # TFX names a base model ``<artifact>/Format-Serving`` whether or not that folder exists.
    if not tf.io.gfile.exists(path) and os.path.basename(path.rstrip("/")) == "Format-Serving":
        path = os.path.dirname(path.rstrip("/"))
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"pretrained model not found: {path}")
    return path


def _is_hugging_face(path: str) -> bool:
    return tf.io.gfile.exists(os.path.join(path, "config.json"))


def _export_dir(path: str) -> str:
    for candidate in (path, os.path.join(path, "export", "1"), os.path.join(path, "Format-Serving")):
        if tf.io.gfile.exists(os.path.join(candidate, ASSETS_EXTRA)):
            return candidate
    raise FileNotFoundError(f"{path} is neither a Hugging Face BERT folder (config.json, model.safetensors) "
                            f"nor an rw-tf export/training folder (assets.extra/encoder.keras)")


def pretrained_tokenizer(path: str) -> WordPieceTokenizer:
    """The tokenizer stored with the pretrained model at ``path``."""
    path = _existing(path)
    if _is_hugging_face(path):
        return hf_bert_tokenizer(path)
    export_dir = _export_dir(path)
    settings_path = os.path.join(export_dir, ASSETS_EXTRA, TOKENIZER_FILE)
    settings = read_json_object(settings_path, "tokenizer settings") if tf.io.gfile.exists(settings_path) else {}
    try:
        check_settings(settings, settings_path)
    except ValueError as err:
        raise CorruptFileError(str(err)) from None
    return WordPieceTokenizer.from_config({**settings, "vocab_file": os.path.join(export_dir, "assets", "vocab.txt")})


@checks_number_arguments()
def pretrained_encoder(path: str, tokenizer: WordPieceTokenizer = None,
                       dropout: Optional[float] = None) -> TransformerEncoder:
    """The encoder stored at ``path``; with ``tokenizer``, checks that their vocabularies agree;
    ``dropout`` (not None) replaces its dropout and attention-dropout rates (e.g. SimCSE needs
    dropout, and the tiny preset has none)."""
    path = _existing(path)
    encoder = (hf_bert_encoder(path) if _is_hugging_face(path)
               else load_keras_file(find_keras_file(_export_dir(path), "encoder.keras"), TransformerEncoder))
    encoder = _in_global_policy(encoder, dropout)
    if tokenizer is not None and tokenizer.vocab_size != encoder.config.vocab_size:
        raise ValueError(f"the encoder at {path} has vocab_size {encoder.config.vocab_size} but the tokenizer "
                         f"has {tokenizer.vocab_size} tokens: use the vocabulary the encoder was trained with")
    return encoder


def pretrained_task_model(path: str) -> keras.Model:
    """The whole task model (``assets.extra/model.keras``, e.g. a ``PretrainingModel`` with its MLM
    head) of an rw-tf export, pushed version, TFX Model artifact or training folder, or a Hugging
    Face BERT checkpoint with its masked-LM head (``hf_bert_masked_lm``); to continue pretraining
    from, or to use as a distillation teacher."""
    path = _existing(path)
    if _is_hugging_face(path):  # a BERT checkpoint with its masked-LM head, as a PretrainingModel
        return hf_bert_masked_lm(path)
    return load_keras_file(find_keras_file(_export_dir(path), "model.keras"))


def _in_global_policy(encoder: TransformerEncoder, dropout: Optional[float] = None) -> TransformerEncoder:
    """``encoder`` in the current global dtype policy (and with ``dropout`` if given): a saved model
    keeps the policy it was trained in, so a float32 checkpoint fine-tuned with ``--precision
    mixed_bfloat16`` is rebuilt in it."""
    policy = keras.mixed_precision.global_policy()
    changes = {} if encoder.dtype_policy.name == policy.name else {"dtype": policy.name}
    if dropout is not None and (dropout, dropout) != (encoder.config.dropout, encoder.config.attention_dropout):
        changes.update(dropout=float(dropout), attention_dropout=float(dropout))
    if not changes:
        return encoder
    clone = type(encoder).from_config({**encoder.get_config(), **changes})
    clone.build({"token_ids": (None, None)})
    clone.set_weights(encoder.get_weights())
    return clone
