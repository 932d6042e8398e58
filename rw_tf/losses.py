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

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.shape_checks import check_shapes


def replica_sum(value: Any) -> Any:
    """The sum of ``value`` over the replicas of the current ``tf.distribute`` step; ``value``
    itself with one replica, outside a replica context or under another Keras backend."""
    if keras.backend.backend() != "tensorflow":
        return value
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_gather(value: Any) -> Tuple[Any, Any]:
    """``(every replica's value concatenated along axis 0 in replica order, the row where this
    replica's rows start)``; ``(value, 0)`` with one replica, outside a replica context or under
    another Keras backend.

    The gradient flows back to each replica's own rows: TensorFlow's ``ReplicaContext.all_gather``
    sums the incoming gradients over the replicas and hands each replica its slice, which is the
    gradient of the global loss (the sum of every replica's share) with respect to its rows.
    """
    if keras.backend.backend() != "tensorflow":
        return value, 0
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value, 0
    sizes = context.all_gather(tf.shape(value)[:1], axis=0)
    return context.all_gather(value, axis=0), tf.reduce_sum(sizes[:context.replica_id_in_sync_group])


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

    Args:
        name: the loss's name (what Keras logs).
    Shapes:
        ``loss(token_ids [batch, predictions], logits [batch, predictions, vocab],
        sample_weight=None [batch, predictions])`` -> a scalar.

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
    """Sigmoid cross-entropy of one logit per example, averaged over the (weighted) global batch.

    Args:
        name: the loss's name (what Keras logs: ``nsp_loss``, ``sop_loss``, ...).
    Shapes:
        ``loss(labels [batch, 1] in {0, 1}, logits [batch, 1], sample_weight=None [batch])`` -> a scalar.

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
@checks_number_arguments()
class KnowledgeDistillationLoss(ConfigFields, GlobalMeanLoss):
    """L_KD = T^2 * KL(p_K || p_LM) at temperature T, averaged over (weighted) positions of the
    global batch.

    ``y_true`` are the knowledge model's logits (the teacher f_K), ``y_pred`` the language model's
    (the student f_LM). ``distribution="softmax"`` compares one categorical distribution per row
    (MLM positions, single-label classes); ``"sigmoid"`` compares independent Bernoulli
    distributions, one per label (multi-label), summing their KLs. The T^2 factor keeps gradient
    sizes comparable across temperatures (Hinton et al. 2015). Domain pretraining uses
    L_MLM + alpha * L_KD, refined fine-tuning L_task + beta * L_KD.

    Args:
        temperature: T (> 0): both logits are divided by it before the distributions are taken.
        distribution: ``"softmax"`` (one categorical per row) or ``"sigmoid"`` (one Bernoulli per label).
        name: the loss's name (what Keras logs).
    Shapes:
        ``loss(teacher_logits [batch, ..., classes], student_logits [batch, ..., classes],
        sample_weight=None [batch, ...])`` -> a scalar.

    Example:
        >>> kd = KnowledgeDistillationLoss(temperature=2.0)
        >>> float(kd(keras.ops.zeros((1, 3)), keras.ops.zeros((1, 3))))    # same distributions
        0.0
        >>> teacher, student = keras.ops.array([[2.0, 0.0]]), keras.ops.array([[0.0, 0.0]])
        >>> round(float(kd(teacher, student)), 4)    # 4 * KL(softmax([1, 0]) || [0.5, 0.5])
        0.4438
    """

    config_fields = ("temperature", "distribution")

    def __init__(self, temperature: float = 1.0, distribution: str = "softmax", name: str = "kd_loss",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if distribution not in ("softmax", "sigmoid"):
            raise ValueError(f"distribution must be 'softmax' or 'sigmoid', got {distribution!r}")
        self.set_config_fields(locals())

    def call(self, y_true: Any, y_pred: Any) -> Any:
        layout = ("batch",) + tuple(f"axis {i}" for i in range(1, len(y_pred.shape)))
        check_shapes(type(self).__name__, y_true=(y_true, layout), y_pred=(y_pred, layout))
        t = self.temperature
        teacher, student = ops.cast(y_true, "float32") / t, ops.cast(y_pred, "float32") / t
        if self.distribution == "sigmoid":
            p = ops.sigmoid(teacher)
            kl = (p * (ops.log_sigmoid(teacher) - ops.log_sigmoid(student))
                  + (1.0 - p) * (ops.log_sigmoid(-teacher) - ops.log_sigmoid(-student)))
            return (t * t) * ops.sum(kl, axis=-1)
        teacher_log, student_log = ops.log_softmax(teacher, axis=-1), ops.log_softmax(student, axis=-1)
        return (t * t) * ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1)


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class InfoNCELoss(ConfigFields, GlobalMeanLoss):
    """Symmetric InfoNCE over L2-normalised embeddings, negatives from the whole global batch.

    ``y_pred`` [batch, views, dim]: view 0 the anchors, view 1 their positives, views 2.. hard
    negatives (optional). ``y_true`` [batch, views] integer text ids (-1: unknown): two texts with
    the same id are the same text, so neither is used as the other's negative (false-negative
    masking of duplicates in a batch; SimCSE feeds the same text twice and gets the same id).
    Columns of ``y_true`` beyond the views are further ids masked out of the anchor's candidates
    (a recommender passes the user's history: items the user already has are not negatives).

    Anchor i is scored against every positive and every hard negative of the global batch (all
    replicas, gathered with ``replica_gather``; gradients flow back to each replica's rows):
    l_i = -log softmax(a_i . k / tau)[its positive]; with ``symmetric`` the positive -> anchor
    direction (positive i against every anchor) is averaged in. The mean is over the global batch,
    so a step under ``tf.distribute`` equals the single-device computation over the global batch.
    For uninformative embeddings (all equal) the loss is log(number of candidates); for perfectly
    aligned, mutually orthogonal ones it tends to 0 as tau -> 0.

    Args:
        temperature: tau (> 0). A model that learns its temperature scales the anchors itself and
            passes 1.0 (``SentenceEncoder(learn_temperature=True)``).
        symmetric: also score positives against anchors (CLIP, MultipleNegativesSymmetricRankingLoss).
        name: the loss's name (what Keras logs).
    Shapes:
        ``loss(text_ids [batch, views + extra], embeddings [batch, views, dim])`` -> a scalar.

    Example:
        >>> emb = keras.ops.stack([keras.ops.eye(4), keras.ops.eye(4)], axis=1)    # [4, 2, 4]
        >>> float(InfoNCELoss(0.05)(-keras.ops.ones((4, 2), "int32"), emb)) < 1e-6
        True
        >>> same = keras.ops.ones((4, 2, 4)) / 2.0                      # uninformative: log(4 candidates)
        >>> round(float(InfoNCELoss(0.05)(-keras.ops.ones((4, 2), "int32"), same)), 4)
        1.3863
    """

    config_fields = ("temperature", "symmetric")

    def __init__(self, temperature: float = 0.05, symmetric: bool = True, name: str = "nce_loss",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.set_config_fields(locals())

    def call(self, y_true: Any, y_pred: Any) -> Any:
        embeddings = ops.cast(y_pred, "float32") / self.temperature ** 0.5
        ids = ops.cast(y_true, "int32")
        check_shapes(type(self).__name__, y_true=(ids, ("batch", "text ids")),
                     y_pred=(embeddings, ("batch", "views", "dim")))
        views, columns = embeddings.shape[1], ids.shape[1]
        if views is not None and (views < 2 or columns is not None and columns < views):
            raise ValueError(f"InfoNCELoss needs embeddings [batch, views >= 2, dim] and text ids [batch, >= views], "
                             f"got shapes {tuple(embeddings.shape)} and {tuple(ids.shape)}")
        ids, excluded = ids[:, :views], ids[:, views:]
        anchors, anchor_ids = embeddings[:, 0], ids[:, 0]
        # Keys: every replica's positives, then every replica's hard negatives.
        keys, offset = replica_gather(embeddings[:, 1])
        key_ids, _ = replica_gather(ids[:, 1])
        if views > 2:
            negatives, _ = replica_gather(ops.reshape(embeddings[:, 2:], (-1, ops.shape(embeddings)[-1])))
            negative_ids, _ = replica_gather(ops.reshape(ids[:, 2:], (-1,)))
            keys, key_ids = ops.concatenate([keys, negatives], 0), ops.concatenate([key_ids, negative_ids], 0)
        labels = offset + ops.arange(ops.shape(anchors)[0])
        loss = _nce_terms(anchors, anchor_ids, keys, key_ids, labels, excluded)
        if self.symmetric:
            all_anchors, _ = replica_gather(anchors)
            all_anchor_ids, _ = replica_gather(anchor_ids)
            loss = 0.5 * (loss + _nce_terms(embeddings[:, 1], ids[:, 1], all_anchors, all_anchor_ids, labels))
        return loss


def _nce_terms(queries: Any, query_ids: Any, keys: Any, key_ids: Any, labels: Any, excluded: Any = None) -> Any:
    """-log softmax(q . k)[label] per query, other keys with the query's text id (or one of its
    ``excluded`` ids [batch, n], -1 = none) masked out."""
    logits = ops.matmul(queries, ops.transpose(keys))
    columns = ops.arange(ops.shape(keys)[0])
    masked_ids = ops.expand_dims(query_ids, 1)
    if excluded is not None and excluded.shape[1] != 0:
        masked_ids = ops.concatenate([masked_ids, excluded], axis=1)              # [batch, 1 + n]
    same_text = ops.any(ops.logical_and(ops.expand_dims(masked_ids, 2) == ops.reshape(key_ids, (1, 1, -1)),
                                        ops.expand_dims(masked_ids, 2) >= 0), axis=1)
    false_negative = ops.logical_and(same_text, ops.expand_dims(columns, 0) != ops.expand_dims(labels, 1))
    logits = ops.where(false_negative, -1e9, logits)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
