"""SavedModels that TF Serving, TFMA and plain ``tf.saved_model.load`` can use without rw_tf.

Every export has these signatures:
- ``serving_default``: ``examples`` (serialized raw ``tf.Example``) -> predictions; parses the raw
  features, applies the tf.Transform graph, runs the model (used by TFMA and TF Serving Predict);
- ``transform_features``: ``examples`` -> transformed features (TFMA preprocessing function);
- a raw-text signature (``encode_text`` for the pretrained encoder, ``classify_text`` for
  classifiers): ``text`` (UTF-8 strings) -> outputs, the WordPiece tokenizer inside the graph.
The Keras models are also saved under ``assets.extra/`` (``model.keras``, ``encoder.keras``) for
Python users and for warm-starting fine-tuning; TF Serving ignores that directory.
Loading needs only TensorFlow and ``import tensorflow_text`` (to register its ops).

Example:
    >>> export_pretraining_model(model, tft_output, tokenizer, "/tmp/export", 128)   # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Dict

import keras
import tensorflow as tf

from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.tokenization.wordpiece import WordPieceTokenizer
from rw_tf.training.tfx_training import ASSETS_EXTRA

EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name="examples")
TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


class _TransformingExport(tf.Module):
    """Holds the Keras model, the tf.Transform layer and the tokenizer; parses raw examples."""

    def __init__(self, model: keras.Model, tft_output, tokenizer: WordPieceTokenizer,
                 max_sequence_length: int, label_keys=()) -> None:
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self.tokenizer = tokenizer
        self.max_sequence_length = max_sequence_length
        spec = tft_output.raw_feature_spec()
        self._raw_spec = {k: v for k, v in spec.items() if k not in label_keys}

    def _transform(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

    @tf.function(input_signature=[EXAMPLES_SPEC])
    def transform_features(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._transform(examples)

    def _text_inputs(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return single_segment_inputs(self.tokenizer, text, self.max_sequence_length)


def _masked_mean(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    weights = tf.cast(mask, sequence.dtype)[..., None]
    return tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


class PretrainingExport(_TransformingExport):
    """Serving module of a ``PretrainingModel``."""

    @tf.function(input_signature=[EXAMPLES_SPEC])
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        features = self._transform(examples)
        outputs = self.model(features, training=False)
        weights = tf.cast(features["masked_weights"], tf.float32)
        predicted = tf.argmax(outputs["mlm"], axis=-1, output_type=tf.int64)
        correct = tf.cast(tf.equal(predicted, tf.cast(features["masked_ids"], tf.int64)), tf.float32)
        num_masked = tf.reduce_sum(weights, axis=1)
        return {
            # Per-example accuracy; TFMA weights it by mlm_num_masked to get the exact corpus accuracy.
            "mlm_accuracy": tf.reduce_sum(correct * weights, axis=1) / tf.maximum(num_masked, 1.0),
            "mlm_num_masked": num_masked,
            "mlm_predicted_ids": predicted,
            "nsp_probability": tf.sigmoid(outputs["nsp"])[:, 0],
            "sop_probability": tf.sigmoid(outputs["sop"])[:, 0],
        }

    @tf.function(input_signature=[TEXT_SPEC])
    def encode_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        inputs = self._text_inputs(text)
        outputs = self.model.encoder(inputs, training=False)
        return {"pooled_output": outputs["pooled_output"],
                "mean_embedding": _masked_mean(outputs["sequence_output"], inputs["padding_mask"])}


class ClassifierExport(_TransformingExport):
    """Serving module of a ``TextClassifier`` (single-label)."""

    def _predict(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        logits = self.model(features, training=False)
        probabilities = tf.nn.softmax(logits, axis=-1)
        result = {"probabilities": probabilities,
                  "predicted_label": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}
        if probabilities.shape[-1] == 2:
            result["probability"] = probabilities[:, 1]
        return result

    @tf.function(input_signature=[EXAMPLES_SPEC])
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self._transform(examples))

    @tf.function(input_signature=[TEXT_SPEC])
    def classify_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self._text_inputs(text))


def _save(module: _TransformingExport, signatures: Dict, export_dir: str, model: keras.Model) -> str:
    tf.saved_model.save(module, export_dir, signatures=signatures)
    extra = os.path.join(export_dir, ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    model.save(os.path.join(extra, "model.keras"))
    model.encoder.save(os.path.join(extra, "encoder.keras"))
    return export_dir


def export_pretraining_model(model: keras.Model, tft_output, tokenizer: WordPieceTokenizer, export_dir: str,
                             max_sequence_length: int) -> str:
    module = PretrainingExport(model, tft_output, tokenizer, max_sequence_length)
    signatures = {"serving_default": module.serve_examples, "transform_features": module.transform_features,
                  "encode_text": module.encode_text}
    return _save(module, signatures, export_dir, model)


def export_classifier(model: keras.Model, tft_output, tokenizer: WordPieceTokenizer, export_dir: str,
                      max_sequence_length: int, label_key: str = "label") -> str:
    module = ClassifierExport(model, tft_output, tokenizer, max_sequence_length, label_keys=(label_key,))
    signatures = {"serving_default": module.serve_examples, "transform_features": module.transform_features,
                  "classify_text": module.classify_text}
    return _save(module, signatures, export_dir, model)
