"""Losses, kept apart from the heads that produce their inputs.

Pretraining: L = L_MLM + l1 * L_NSP + l2 * L_SOP, where
- L_MLM is the softmax cross-entropy averaged over the *masked* positions of the batch
  (padding predictions carry sample weight 0 and do not count in the mean);
- L_NSP and L_SOP are sigmoid cross-entropies on one logit per example. SOP is weighted by the
  NSP label, so order is only learned on pairs that really are consecutive.

Example:
    >>> losses, weights = pretraining_losses(nsp_weight=0.5, sop_weight=1.0)
    >>> sorted(losses), weights["nsp"]
    (['mlm', 'nsp', 'sop'], 0.5)
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import keras
from keras import ops


def masked_lm_loss() -> keras.losses.Loss:
    """Cross-entropy over vocabulary logits, mean over positions with non-zero sample weight."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight",
                                                      name="mlm_loss")


def binary_logit_loss(name: str) -> keras.losses.Loss:
    """Sigmoid cross-entropy on a single logit per example, mean over weighted examples."""
    return keras.losses.BinaryCrossentropy(from_logits=True, reduction="mean_with_sample_weight", name=name)


def pretraining_losses(nsp_weight: float = 1.0, sop_weight: float = 1.0
                       ) -> Tuple[Dict[str, keras.losses.Loss], Dict[str, float]]:
    """Returns the per-output losses and their weights (l1 = ``nsp_weight``, l2 = ``sop_weight``)."""
    if nsp_weight < 0 or sop_weight < 0:
        raise ValueError("loss weights must be non-negative")
    losses = {"mlm": masked_lm_loss(), "nsp": binary_logit_loss("nsp_loss"),
              "sop": binary_logit_loss("sop_loss")}
    return losses, {"mlm": 1.0, "nsp": float(nsp_weight), "sop": float(sop_weight)}


@keras.saving.register_keras_serializable(package="rw_tf")
class KnowledgeDistillationLoss(keras.losses.Loss):
    """L_KD = T^2 * KL(softmax(z_K / T) || softmax(z_LM / T)), averaged over (weighted) positions.

    ``y_true`` are the knowledge model's logits (the teacher f_K), ``y_pred`` the language model's
    (the student f_LM); T is the temperature (the T^2 factor keeps gradient sizes comparable across
    temperatures, Hinton et al. 2015). Domain pretraining uses L_MLM + alpha * L_KD, refined
    fine-tuning L_task + beta * L_KD.

    Example:
        >>> kd = KnowledgeDistillationLoss(temperature=2.0)
        >>> float(kd(keras.ops.zeros((1, 3)), keras.ops.zeros((1, 3))))
        0.0
    """

    def __init__(self, temperature: float = 1.0, name: str = "kd_loss",
                 reduction: str = "mean_with_sample_weight", **kwargs: Any) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature

    def call(self, y_true: Any, y_pred: Any) -> Any:
        t = self.temperature
        teacher_log = ops.log_softmax(ops.convert_to_tensor(y_true) / t, axis=-1)
        student_log = ops.log_softmax(ops.convert_to_tensor(y_pred) / t, axis=-1)
        return (t * t) * ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config


@keras.saving.register_keras_serializable(package="rw_tf")
class InBatchInfoNCE(keras.losses.Loss):
    """InfoNCE with in-batch negatives: for a [batch, batch] similarity matrix S (row i = query i,
    column j = item j, the positive on the diagonal), -mean_i log softmax(S_i / tau)_i.
    ``symmetric=True`` averages with the item->query direction (CLIP-style).

    Example:
        >>> loss = InBatchInfoNCE(temperature=0.05)
        >>> float(loss(keras.ops.zeros(4), keras.ops.eye(4) * 10.0)) < 1e-3
        True
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False, name: str = "info_nce",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature
        self.symmetric = symmetric

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = ops.convert_to_tensor(y_pred) / self.temperature
        labels = ops.arange(ops.shape(logits)[0])
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        if self.symmetric:
            loss = 0.5 * (loss + keras.losses.sparse_categorical_crossentropy(labels, ops.transpose(logits),
                                                                               from_logits=True))
        return loss

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(temperature=self.temperature, symmetric=self.symmetric)
        return config
