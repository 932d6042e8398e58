"""Export of a pretrained encoder (``PretrainingModel``).

Signatures: ``encode_text`` (text -> the mean of the token states, plus the [CLS] pooler's output
when pretraining trained it, i.e. ``pair_representation="cls_pooler"``), ``fill_mask`` (the writing
assistant: top-5 completions per ``[MASK]`` marker; plain encoders only, since marker texts are not
entity-linked) and, for pipeline-trained models, ``serving_default`` on serialized examples:
per-example masked-LM accuracy, weighted by ``mlm_num_masked`` it is TFMA's corpus accuracy.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from rw_tf.applications.fill_mask import top_k_completions
from rw_tf.export.base import TEXT_SPEC, ExportModule, Signature
from rw_tf.networks.pooling import masked_mean


class PretrainingExport(ExportModule):
    """Serving module of a ``PretrainingModel`` (see the module docstring)."""

    raw_signature = "encode_text"

    def signature_fns(self) -> Dict[str, Signature]:
        fns = {"encode_text": (self.encode_text, [TEXT_SPEC])}
        if self.linker is None:
            fns["fill_mask"] = (self.fill_mask, [TEXT_SPEC])
        return fns

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        features = self.transform(examples)
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
            "nsp_probability": tf.sigmoid(tf.cast(outputs["nsp"], tf.float32))[:, 0],
            "sop_probability": tf.sigmoid(tf.cast(outputs["sop"], tf.float32))[:, 0],
        }

    def fill_mask(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return top_k_completions(self.model, self.tokenizer, text, self.max_sequence_length, top_k=5)

    def encode_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        inputs = self.text_inputs(text)
        outputs = self.model.encoder(inputs, training=False)
        result = {"mean_embedding": tf.cast(masked_mean(outputs["sequence_output"], inputs["padding_mask"]),
                                            tf.float32)}
        if self.model.pair_representation == "cls_pooler":  # otherwise the pooler was never trained
            result["pooled_output"] = tf.cast(outputs["pooled_output"], tf.float32)
        return result
