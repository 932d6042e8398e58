"""Losses, kept apart from the heads that produce their inputs.

Pretraining: L = L_MLM + l1 * L_NSP + l2 * L_SOP, where
- L_MLM is the softmax cross-entropy averaged over the *masked* positions of the batch
  (padding predictions carry sample weight 0 and do not count in the mean);
- L_NSP and L_SOP are sigmoid cross-entropies on one logit per example. SOP is weighted by the
  NSP label, so order is only learned on pairs that really are consecutive.
Every weighted mean is taken over the *global* batch (``GlobalMeanLoss``), so a step under
``tf.distribute`` computes the same loss and gradients as one device with the whole batch.

Example:
    >>> losses, weights = pretraining_losses(nsp_weight=0.5, sop_weight=1.0)
    >>> sorted(losses), weights["nsp"]
    (['mlm', 'nsp', 'sop'], 0.5)
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import keras
import tensorflow as tf
from keras import ops


def replica_sum(value: Any) -> Any:
    """The sum of ``value`` over the replicas of the current ``tf.distribute`` step; ``value``
    itself with one replica, outside a replica context or under another Keras backend."""
    if keras.backend.backend() != "tensorflow":
        return value
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


class GlobalMeanLoss(keras.losses.Loss):
    """Base of losses averaged over the global batch: sum(w * l) / sum(w), both sums over every
    replica. Subclasses implement ``call`` (per-element losses).

    Keras averages each replica's own weighted mean; when replicas hold different total weights
    (numbers of masked tokens, of consecutive pairs for SOP) that is not the global mean, and the
    result would depend on how the batch was split. Here each replica returns its share
    ``sum_r(w * l) / sum_all(w)``; the gradients Keras sums over replicas are then those of the
    single-device computation, and the logged value (scaled back by Keras) is the global mean.
    """

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        values = ops.cast(self.call(ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)), "float32")
        weights = (ops.ones_like(values) if sample_weight is None
                   else ops.broadcast_to(ops.reshape(ops.cast(sample_weight, "float32"),
                                                     ops.shape(values)), ops.shape(values)))
        return ops.divide_no_nan(ops.sum(values * weights), replica_sum(ops.sum(weights)))


@keras.saving.register_keras_serializable(package="rw_tf")
class MaskedLMLoss(GlobalMeanLoss):
    """Softmax cross-entropy of vocabulary logits [batch, predictions, vocab] against token ids,
    averaged over the masked positions (sample weight 1) of the global batch.

    Example:
        >>> ids, logits = keras.ops.array([[1, 0]]), keras.ops.zeros((1, 2, 4))
        >>> round(float(MaskedLMLoss()(ids, logits, keras.ops.array([[1.0, 0.0]]))), 4)  # log 4
        1.3863
    """

    def __init__(self, name: str = "mlm_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


@keras.saving.register_keras_serializable(package="rw_tf")
class BinaryLogitLoss(GlobalMeanLoss):
    """Sigmoid cross-entropy of one logit per example [batch, 1], averaged over the global batch.

    Example:
        >>> round(float(BinaryLogitLoss()(keras.ops.ones((2, 1)), keras.ops.zeros((2, 1)))), 4)   # log 2
        0.6931
    """

    def __init__(self, name: str = "binary_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return keras.losses.binary_crossentropy(y_true, y_pred, from_logits=True)


def masked_lm_loss() -> keras.losses.Loss:
    """Cross-entropy over vocabulary logits, mean over masked positions of the global batch."""
    return MaskedLMLoss()


def binary_logit_loss(name: str) -> keras.losses.Loss:
    """Sigmoid cross-entropy on a single logit per example, mean over weighted examples."""
    return BinaryLogitLoss(name=name)


def pretraining_losses(nsp_weight: float = 1.0, sop_weight: float = 1.0
                       ) -> Tuple[Dict[str, keras.losses.Loss], Dict[str, float]]:
    """Returns the per-output losses and their weights (l1 = ``nsp_weight``, l2 = ``sop_weight``)."""
    if nsp_weight < 0 or sop_weight < 0:
        raise ValueError("loss weights must be non-negative")
    losses = {"mlm": masked_lm_loss(), "nsp": binary_logit_loss("nsp_loss"),
              "sop": binary_logit_loss("sop_loss")}
    return losses, {"mlm": 1.0, "nsp": float(nsp_weight), "sop": float(sop_weight)}


@keras.saving.register_keras_serializable(package="rw_tf")
class KnowledgeDistillationLoss(GlobalMeanLoss):
    """L_KD = T^2 * KL(p_K || p_LM) at temperature T, averaged over (weighted) positions of the
    global batch.

    ``y_true`` are the knowledge model's logits (the teacher f_K), ``y_pred`` the language model's
    (the student f_LM). ``distribution="softmax"`` compares one categorical distribution per row
    (MLM positions, single-label classes); ``"sigmoid"`` compares independent Bernoulli
    distributions, one per label (multi-label), summing their KLs. The T^2 factor keeps gradient
    sizes comparable across temperatures (Hinton et al. 2015). Domain pretraining uses
    L_MLM + alpha * L_KD, refined fine-tuning L_task + beta * L_KD.

    Example:
        >>> kd = KnowledgeDistillationLoss(temperature=2.0)
        >>> float(kd(keras.ops.zeros((1, 3)), keras.ops.zeros((1, 3))))
        0.0
    """

    def __init__(self, temperature: float = 1.0, distribution: str = "softmax", name: str = "kd_loss",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        if distribution not in ("softmax", "sigmoid"):
            raise ValueError(f"distribution must be 'softmax' or 'sigmoid', got {distribution!r}")
        self.temperature = temperature
        self.distribution = distribution

    def call(self, y_true: Any, y_pred: Any) -> Any:
        t = self.temperature
        teacher, student = ops.cast(y_true, "float32") / t, ops.cast(y_pred, "float32") / t
        if self.distribution == "sigmoid":
            p = ops.sigmoid(teacher)
            kl = (p * (ops.log_sigmoid(teacher) - ops.log_sigmoid(student))
                  + (1.0 - p) * (ops.log_sigmoid(-teacher) - ops.log_sigmoid(-student)))
            return (t * t) * ops.sum(kl, axis=-1)
        teacher_log, student_log = ops.log_softmax(teacher, axis=-1), ops.log_softmax(student, axis=-1)
        return (t * t) * ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(temperature=self.temperature, distribution=self.distribution)
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
