"""The export base: SavedModels that TF Serving, TFMA and plain ``tf.saved_model.load`` can use
without rw_tf.

An ``ExportModule`` holds the Keras model, the WordPiece tokenizer (its vocabulary becomes a
SavedModel asset), optionally the entity linker of knowledge mode, and, for models trained by the
TFX pipeline, the tf.Transform layer. Task modules (``rw_tf.export.pretraining``, ...) only say
which signatures they add; ``save_export`` traces and writes them:
- raw-text signatures (``encode_text``, ``classify_text``, ``answer_question``, ...) take UTF-8
  strings and tokenize inside the graph;
- with a Transform output, ``transform_features`` (serialized raw ``tf.Example`` -> transformed
  features, TFMA's preprocessing function) and ``serving_default`` on serialized examples;
- signatures listed in ``signature_methods`` get that method name (e.g. Classify's
  ``tensorflow/serving/classify``; ``tf.saved_model.save`` writes every signature as Predict).
The Keras models are also saved under ``assets.extra/`` (``model.keras``, ``encoder.keras``) for
Python users and for warm starts; TF Serving ignores that folder. Loading the SavedModel needs
only TensorFlow and ``import tensorflow_text`` (to register its ops).

Example:
    >>> module = ClassifierExport(model, tokenizer, max_sequence_length=128)    # doctest: +SKIP
    >>> save_export(module, "/tmp/export/1")                                    # doctest: +SKIP
"""
from __future__ import annotations

import abc
import json
import os
from typing import Callable, Dict, List, Sequence, Tuple

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from rw_tf.config import checks_number_arguments
from rw_tf.data.text_inputs import single_segment_inputs, trim_to_longest
from rw_tf.tokenization.wordpiece import WordPieceTokenizer

ASSETS_EXTRA = "assets.extra"  # where exports keep model.keras / encoder.keras (TF Serving ignores it)
EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name="examples")
TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")

Signature = Tuple[Callable, List[tf.TensorSpec]]


@checks_number_arguments()
class ExportModule(tf.Module, metaclass=abc.ABCMeta):
    """Base of every export. Subclasses implement ``signature_fns`` (name -> (python function,
    input signature)) and name the default ones in ``raw_signature`` and ``examples_signature``;
    with a Transform output, ``score_examples`` (serialized examples) is the latter.

    Args:
        model: the trained Keras task model.
        tokenizer: the ``WordPieceTokenizer`` used in training (its vocabulary is an asset).
        max_sequence_length: tokens per sequence of the raw-text signatures.
        linker: an ``EntityLinker`` for knowledge-enhanced encoders (adds ``entity_ids``).
        transform_output: a ``tft.TFTransformOutput``; adds the example-based signatures.
        label_keys: raw features not available at serving time (removed from the parse spec).
    """

    raw_signature = ""                        # the default without a Transform graph (raw inputs)
    examples_signature = "serving_default"    # the default with one (serialized examples)
    signature_methods: Dict[str, str] = {}

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, max_sequence_length: int,
                 linker=None, transform_output=None, label_keys: Sequence[str] = ()) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_sequence_length = int(max_sequence_length)
        self.linker = linker
        self.transform_output = transform_output
        if transform_output is not None:
            self.tft_layer = transform_output.transform_features_layer()
            spec = transform_output.raw_feature_spec()
            self._raw_spec = {k: v for k, v in spec.items() if k not in label_keys}

    @property
    def default_signature(self) -> str:
        """The signature that TF Serving's requests without a signature name reach."""
        return self.examples_signature if self.transform_output is not None else self.raw_signature

    def text_inputs(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Encoder inputs of raw texts (with ``entity_ids`` in knowledge mode), padded to the longest
        text of the request rather than to ``max_sequence_length``: every signature that reads them
        pools over real tokens only (masked attention, masked means), so padding changes nothing but
        the work, and served texts are mostly far shorter than the maximum."""
        return trim_to_longest(single_segment_inputs(self.tokenizer, text, self.max_sequence_length, self.linker))

    def transform(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Serialized raw tf.Examples -> the features the model was trained on."""
        return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

    @abc.abstractmethod
    def signature_fns(self) -> Dict[str, Signature]:
        """name -> (function of tensors, input signature) for every signature of the export."""

    def all_signature_fns(self) -> Dict[str, Signature]:
        fns = dict(self.signature_fns())
        if self.transform_output is not None:
            # Modules of pipeline-trained models define score_examples: serialized raw examples ->
            # what the pipeline's TFMA gate scores.
            fns[self.examples_signature] = (self.score_examples, [EXAMPLES_SPEC])
            fns["transform_features"] = (self.transform, [EXAMPLES_SPEC])
        return fns

    def keras_models(self) -> Dict[str, keras.Model]:
        """What ``assets.extra`` keeps: the task model and, when it has one, its encoder."""
        models = {"model.keras": self.model}
        if hasattr(self.model, "encoder"):
            models["encoder.keras"] = self.model.encoder
        return models


def set_signature_method(export_dir: str, signature_key: str, method_name: str) -> None:
    """Rewrites a signature's method_name in saved_model.pb (``tf.saved_model.save`` writes Predict)."""
    path = os.path.join(export_dir, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved.ParseFromString(f.read())
    for meta_graph in saved.meta_graphs:
        meta_graph.signature_def[signature_key].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved.SerializeToString())


def save_export(module: ExportModule, export_dir: str) -> str:
    """Traces every signature of ``module``, writes the SavedModel and ``assets.extra``."""
    functions = {}
    for name, (fn, spec) in module.all_signature_fns().items():
        functions[name] = tf.function(fn, input_signature=spec)
        setattr(module, name, functions[name])  # tracked, so the SavedModel keeps it
    if module.default_signature not in functions:
        raise ValueError(f"{type(module).__name__}: default signature {module.default_signature!r} "
                         f"is not among {sorted(functions)}")
    # A task's main raw-text signature doubles as serving_default unless the module defines one.
    signatures = {"serving_default": functions[module.default_signature], **functions}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    for key, method in module.signature_methods.items():
        if key in functions:
            set_signature_method(export_dir, key, method)
    extra = os.path.join(export_dir, ASSETS_EXTRA)
    tf.io.gfile.makedirs(extra)
    for filename, model in module.keras_models().items():
        _save_without_optimizer_state(model, os.path.join(extra, filename))
    settings = {k: v for k, v in module.tokenizer.get_config().items() if k != "vocab_file"}
    with tf.io.gfile.GFile(os.path.join(extra, "tokenizer.json"), "w") as f:
        json.dump(settings, f)  # load_pretrained_encoder rebuilds the tokenizer with assets/vocab.txt
    return export_dir


def _save_without_optimizer_state(model: keras.Model, path: str) -> None:
    """Saves ``model`` with its compile settings but without the optimizer's slot variables (Adam's
    two moments would triple the file); whoever fine-tunes an export starts a fresh optimizer."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        model.save(path)
        return
    model.optimizer = None
    try:
        model.save(path)
    finally:
        model.optimizer = optimizer


def find_keras_file(path: str, name: str = "encoder.keras") -> str:
    """Locates ``assets.extra/<name>`` in an export, a TFX Model artifact or a pushed version dir."""
    for candidate in (path, os.path.dirname(path.rstrip("/")), os.path.join(path, "Format-Serving")):
        file = os.path.join(candidate, ASSETS_EXTRA, name)
        if tf.io.gfile.exists(file):
            return file
    raise FileNotFoundError(f"no {ASSETS_EXTRA}/{name} under {path}: is it an rw-tf export?")
