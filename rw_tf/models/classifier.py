"""Text classification task model: encoder pooled output -> dropout -> dense logits."""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.losses import KnowledgeDistillationLoss
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.encoder import TransformerEncoder


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("kd_weight",))
class TextClassifier(TaskModelMixin, keras.Model):
    """Classifies the [CLS]-pooled encoder output into ``num_classes`` (softmax) or, with
    ``multi_label=True``, into independent labels (sigmoid).

    Outputs logits [batch, num_classes]; ``compile()`` with no loss picks the matching
    cross-entropy and accuracy. Refined fine-tuning: with ``kd_weight=beta > 0`` the outputs are
    ``{"task": logits, "kd": logits}`` and the loss is L_task + beta * KL(f_K || f) at temperature
    ``kd_temperature`` (logged as ``task_loss`` and ``kd_loss``); ``add_task_distillation_targets``
    adds the knowledge model's logits to the batches.

    Args:
        encoder: a ``TransformerEncoder`` (its [CLS] pooler is trained).
        num_classes: classes (>= 2), or labels (>= 1) with ``multi_label``.
        multi_label: independent sigmoid labels instead of one softmax class.
        dropout: rate on the pooled output.
        kd_weight: beta, the weight of the distillation term (0: none).
        kd_temperature: the distillation's temperature T.
    Shapes:
        Inputs: encoder inputs [batch, seq]. Outputs: logits [batch, num_classes] (float32), or
        ``{"task": [batch, num_classes], "kd": [batch, num_classes]}`` with ``kd_weight > 0``.

    Example:
        >>> clf = TextClassifier(TransformerEncoder.from_preset("tiny", vocab_size=100), num_classes=3)
        >>> ids = keras.ops.ones((2, 8), dtype="int32")
        >>> tuple(clf({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids}).shape)
        (2, 3)
        >>> clf.compile(optimizer="adam")     # sparse categorical cross-entropy; labels [batch]
    """

    nested_layers = ("encoder",)
    config_fields = ("num_classes", "multi_label", "dropout", "kd_weight", "kd_temperature")

    def __init__(self, encoder: TransformerEncoder, num_classes: int = 2, multi_label: bool = False,
                 dropout: float = 0.1, kd_weight: float = 0.0, kd_temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            if num_classes < 1 or (num_classes < 2 and not multi_label):
                raise ValueError("num_classes must be >= 2 (or >= 1 with multi_label=True)")
            self.encoder = encoder
            encoder.pooler.trainable = True  # the classifier reads the pooled [CLS] (frozen by some pretraining)
            self.set_config_fields(locals())
            self.dropout_layer = keras.layers.Dropout(dropout)
            self.classifier = keras.layers.Dense(
                num_classes, name="logits",
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=encoder.config.initializer_range))

    def build(self, input_shape: Dict[str, Any]) -> None:
        if not self.encoder.built:
            self.encoder.build(input_shape)
        self.classifier.build((None, self.encoder.config.hidden_size))
        self.built = True

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        pooled = self.encoder(inputs, training=training)["pooled_output"]
        logits = ops.cast(self.classifier(self.dropout_layer(pooled, training=training)), "float32")
        return {"task": logits, "kd": logits} if self.kd_weight > 0 else logits

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None, **kwargs: Any) -> None:
        if loss is None:
            loss = (keras.losses.BinaryCrossentropy(from_logits=True) if self.multi_label
                    else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if metrics is None:
            metrics = ([keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")] if self.multi_label
                       else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        if self.kd_weight > 0:
            distribution = "sigmoid" if self.multi_label else "softmax"  # independent labels: Bernoulli KL
            loss = {"task": loss, "kd": KnowledgeDistillationLoss(self.kd_temperature, distribution)}
            kwargs.setdefault("loss_weights", {"task": 1.0, "kd": float(self.kd_weight)})
            metrics = {"task": metrics}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)


def task_logits(outputs: Any) -> Any:
    """The classifier logits whether or not the model was built for distillation."""
    return outputs["task"] if isinstance(outputs, dict) else outputs


def add_task_distillation_targets(dataset, teacher: keras.Model):
    """``(x, y)`` -> ``(x, {"task": y, "kd": teacher logits})`` for refined fine-tuning."""
    def with_teacher_logits(x, y):
        return x, {"task": y, "kd": task_logits(teacher(x, training=False))}

    return dataset.map(with_teacher_logits)
