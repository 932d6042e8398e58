"""SavedModels that TF Serving, TFMA and plain ``tf.saved_model.load`` can use without rw_tf.

Every export has these signatures:
- ``serving_default``: ``examples`` (serialized raw ``tf.Example``) -> predictions; parses the raw
  features, applies the tf.Transform graph, runs the model (used by TFMA and TF Serving Predict);
- ``transform_features``: ``examples`` -> transformed features (TFMA preprocessing function);
- a raw-text signature (``encode_text`` for the pretrained encoder, ``classify_text`` for
  classifiers): ``text`` (UTF-8 strings) -> outputs, the WordPiece tokenizer inside the graph;
- extractive QA models have ``answer_question``: ``question`` and ``context`` (UTF-8 strings)
  -> ``answer``, character ``start``/``end``, ``score``, ``probability`` (sliding windows inside);
- classifiers also have ``classification``: ``inputs`` (serialized tf.Examples) -> ``classes``,
  ``scores``, with method ``tensorflow/serving/classify`` so TF Serving's Classify API accepts it.
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

from rw_tf.applications.question_answering import answer_questions
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.models.classifier import task_logits
from rw_tf.networks.pooling import masked_mean
from rw_tf.tokenization.wordpiece import WordPieceTokenizer
from rw_tf.training.tfx_training import ASSETS_EXTRA

EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name="examples")
TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


class _TextExport(tf.Module):
    """Holds the Keras model and the tokenizer (with its vocabulary asset)."""

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, max_sequence_length: int,
                 linker=None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_sequence_length = max_sequence_length
        self.linker = linker  # knowledge-enhanced models also need entity ids for raw text

    def _text_inputs(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return single_segment_inputs(self.tokenizer, text, self.max_sequence_length, self.linker)


class _TransformingExport(_TextExport):
    """Adds the tf.Transform layer: parses raw serialized examples and transforms them."""

    def __init__(self, model: keras.Model, tft_output, tokenizer: WordPieceTokenizer,
                 max_sequence_length: int, label_keys=(), linker=None) -> None:
        super().__init__(model, tokenizer, max_sequence_length, linker)
        self.tft_layer = tft_output.transform_features_layer()
        spec = tft_output.raw_feature_spec()
        self._raw_spec = {k: v for k, v in spec.items() if k not in label_keys}

    def _transform(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

    @tf.function(input_signature=[EXAMPLES_SPEC])
    def transform_features(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._transform(examples)


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

    def _fill_mask(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Writing assistant: top-5 completions for each [MASK] marker (texts without one: error)."""
        from rw_tf.applications.fill_mask import top_k_completions

        return top_k_completions(self.model, self.tokenizer, text, self.max_sequence_length, top_k=5)

    @tf.function(input_signature=[TEXT_SPEC])
    def encode_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        inputs = self._text_inputs(text)
        outputs = self.model.encoder(inputs, training=False)
        return {"pooled_output": outputs["pooled_output"],
                "mean_embedding": masked_mean(outputs["sequence_output"], inputs["padding_mask"])}


def classifier_outputs(logits: tf.Tensor, multi_label: bool = False, temperature: float = 1.0) -> Dict[str, tf.Tensor]:
    """Probabilities (temperature-calibrated) and decisions from classifier logits."""
    scaled = logits / temperature
    if multi_label:
        probabilities = tf.sigmoid(scaled)
        return {"probabilities": probabilities, "predicted_labels": tf.cast(probabilities > 0.5, tf.int64)}
    probabilities = tf.nn.softmax(scaled, axis=-1)
    result = {"probabilities": probabilities,
              "predicted_label": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}
    if probabilities.shape[-1] == 2:
        result["probability"] = probabilities[:, 1]
    return result


class TextClassifierExport(_TextExport):
    """Raw-text serving module of a fine-tuned ``TextClassifier`` (no tf.Transform graph)."""

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, max_sequence_length: int,
                 temperature: float = 1.0) -> None:
        super().__init__(model, tokenizer, max_sequence_length)
        self.temperature = float(temperature)

    @tf.function(input_signature=[TEXT_SPEC])
    def classify_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        logits = task_logits(self.model(self._text_inputs(text), training=False))
        return classifier_outputs(logits, self.model.multi_label, self.temperature)


def export_text_classifier(model: keras.Model, tokenizer: WordPieceTokenizer, export_dir: str,
                           max_sequence_length: int, temperature: float = 1.0) -> str:
    module = TextClassifierExport(model, tokenizer, max_sequence_length, temperature)
    return _save(module, {"serving_default": module.classify_text, "classify_text": module.classify_text},
                 export_dir, model)


class QuestionAnsweringExport(tf.Module):
    """Raw-text serving module of a ``SpanQuestionAnswerer``: windows, model and span decoding
    in one graph. Bad input (no context, over-long question or context) fails the request with
    INVALID_ARGUMENT and the reason."""

    def __init__(self, model: keras.Model, tokenizer: WordPieceTokenizer, spec, max_answer_length: int) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.spec, self.max_answer_length = spec, int(max_answer_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                  tf.TensorSpec([None], tf.string, name="context")])
    def answer_question(self, question: tf.Tensor, context: tf.Tensor) -> Dict[str, tf.Tensor]:
        return answer_questions(self.model, self.tokenizer, question, context, self.spec, self.max_answer_length)


def export_question_answerer(model: keras.Model, tokenizer: WordPieceTokenizer, export_dir: str, spec,
                             max_answer_length: int) -> str:
    module = QuestionAnsweringExport(model, tokenizer, spec, max_answer_length)
    return _save(module, {"serving_default": module.answer_question, "answer_question": module.answer_question},
                 export_dir, model)


class ClassifierExport(_TransformingExport):
    """Serving module of a ``TextClassifier`` (single-label) trained by the TFX pipeline."""

    def _predict(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return classifier_outputs(task_logits(self.model(features, training=False)))

    @tf.function(input_signature=[EXAMPLES_SPEC])
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self._transform(examples))

    @tf.function(input_signature=[TEXT_SPEC])
    def classify_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self._text_inputs(text))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_examples(self, inputs: tf.Tensor) -> Dict[str, tf.Tensor]:
        scores = self._predict(self._transform(inputs))["probabilities"]
        names = tf.constant([[str(i) for i in range(self.model.num_classes)]])
        return {"classes": tf.tile(names, [tf.shape(scores)[0], 1]), "scores": scores}


def set_signature_method(export_dir: str, signature_key: str, method_name: str) -> None:
    """Rewrites a signature's method_name in saved_model.pb (``tf.saved_model.save`` writes Predict)."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved.ParseFromString(f.read())
    for meta_graph in saved.meta_graphs:
        meta_graph.signature_def[signature_key].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved.SerializeToString())


def _save(module: _TransformingExport, signatures: Dict, export_dir: str, model: keras.Model,
          methods: Dict[str, str] = None) -> str:
    tf.saved_model.save(module, export_dir, signatures=signatures)
    for key, method in (methods or {}).items():
        set_signature_method(export_dir, key, method)
    extra = os.path.join(export_dir, ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    model.save(os.path.join(extra, "model.keras"))
    model.encoder.save(os.path.join(extra, "encoder.keras"))
    return export_dir


def export_pretraining_model(model: keras.Model, tft_output, tokenizer: WordPieceTokenizer, export_dir: str,
                             max_sequence_length: int, linker=None) -> str:
    module = PretrainingExport(model, tft_output, tokenizer, max_sequence_length, linker=linker)
    signatures = {"serving_default": module.serve_examples, "transform_features": module.transform_features,
                  "encode_text": module.encode_text}
    if linker is None:  # marker texts are not entity-linked, so only plain encoders get fill_mask
        module.fill_mask = tf.function(module._fill_mask, input_signature=[TEXT_SPEC])
        signatures["fill_mask"] = module.fill_mask
    return _save(module, signatures, export_dir, model)


def export_classifier(model: keras.Model, tft_output, tokenizer: WordPieceTokenizer, export_dir: str,
                      max_sequence_length: int, label_key: str = "label") -> str:
    module = ClassifierExport(model, tft_output, tokenizer, max_sequence_length, label_keys=(label_key,))
    signatures = {"serving_default": module.serve_examples, "transform_features": module.transform_features,
                  "classify_text": module.classify_text, "classification": module.classify_examples}
    return _save(module, signatures, export_dir, model,
                 methods={"classification": tf.saved_model.CLASSIFY_METHOD_NAME})
