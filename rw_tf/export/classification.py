"""Export of a text classifier (``TextClassifier``), single- or multi-label.

Signatures: ``classify_text`` (text -> temperature-calibrated probabilities and decisions) and, for
pipeline-trained models, ``serving_default`` on serialized examples and ``classification``
(``inputs`` -> ``classes``, ``scores``) with method ``tensorflow/serving/classify`` so TF Serving's
Classify API accepts it.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from rw_tf.config import checks_number_arguments
from rw_tf.export.base import TEXT_SPEC, ExportModule, Signature
from rw_tf.models.classifier import task_logits


@checks_number_arguments()
def classifier_outputs(logits: tf.Tensor, multi_label: bool = False, temperature: float = 1.0) -> Dict[str, tf.Tensor]:
    """Probabilities (temperature-calibrated) and decisions from classifier logits."""
    scaled = tf.cast(logits, tf.float32) / temperature
    if multi_label:
        probabilities = tf.sigmoid(scaled)
        return {"probabilities": probabilities, "predicted_labels": tf.cast(probabilities > 0.5, tf.int64)}
    probabilities = tf.nn.softmax(scaled, axis=-1)
    result = {"probabilities": probabilities,
              "predicted_label": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}
    if probabilities.shape[-1] == 2:
        result["probability"] = probabilities[:, 1]
    return result


@checks_number_arguments()
class ClassifierExport(ExportModule):
    """Serving module of a ``TextClassifier``; ``temperature`` calibrates the probabilities."""

    raw_signature = "classify_text"
    signature_methods = {"classification": tf.saved_model.CLASSIFY_METHOD_NAME}

    def __init__(self, *args, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.temperature = float(temperature)

    def signature_fns(self) -> Dict[str, Signature]:
        fns = {"classify_text": (self.classify_text, [TEXT_SPEC])}
        if self.transform_output is not None:
            fns["classification"] = (self.classify_examples, [tf.TensorSpec([None], tf.string, name="inputs")])
        return fns

    def _predict(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        logits = task_logits(self.model(features, training=False))
        return classifier_outputs(logits, self.model.multi_label, self.temperature)

    def classify_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self.text_inputs(text))

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(self.transform(examples))

    def classify_examples(self, inputs: tf.Tensor) -> Dict[str, tf.Tensor]:
        scores = self._predict(self.transform(inputs))["probabilities"]
        names = tf.constant([[str(i) for i in range(self.model.num_classes)]])
        return {"classes": tf.tile(names, [tf.shape(scores)[0], 1]), "scores": scores}
