"""The pretraining task model: encoder + tied masked-LM head + NSP head + SOP head."""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf
from keras import ops

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.heads.masked_lm import MaskedLMHead
from rw_tf.heads.segment_pair import SegmentPairHead, segment_means
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.losses import InfoNCELoss, KnowledgeDistillationLoss, pretraining_losses
from rw_tf.metrics import SparseTopLogitAccuracy
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.pooling import masked_mean, unit_vectors

PAIR_REPRESENTATIONS = ("segment_means", "cls_pooler")


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("nsp_weight", "sop_weight", "kd_weight", "nce_weight"))
class PretrainingModel(TaskModelMixin, keras.Model):
    """Predicts masked tokens, next-sentence and sentence-order labels from one encoder pass.

    ``compile()`` with no loss uses L = L_MLM + nsp_weight * L_NSP + sop_weight * L_SOP and logs
    each term (``mlm_loss``, ``nsp_loss``, ``sop_loss``) plus ``mlm_accuracy``, ``nsp_accuracy``,
    ``sop_accuracy``; feed ``(x, y, sample_weight)`` as built by ``rw_tf.data.pretraining_dataset``.

    ``pair_representation`` says what NSP and SOP read: ``"segment_means"`` (the design's
    P(y | S1, S2) = sigmoid(W^T [h_S1; h_S2] + b) over the mean states of each segment; the [CLS]
    pooler is then not trained and is frozen) or ``"cls_pooler"`` (BERT: a logit from the tanh pooler
    over [CLS], which trains the pooler, so ``pooled_output`` becomes a usable sentence vector).

    Domain pretraining with knowledge distillation: ``kd_weight=alpha > 0`` adds the output ``kd``
    (the MLM logits again) scored by ``KnowledgeDistillationLoss(kd_temperature)`` against a
    knowledge model's MLM logits, L = L_MLM + l1 L_NSP + l2 L_SOP + alpha L_KD, logged as
    ``kd_loss``; ``add_distillation_targets`` puts the teacher's logits into the batches.

    Contrastive term: ``nce_weight=l3 > 0`` runs the encoder a second time on the same inputs (an
    independent dropout mask, as in SimCSE) and adds the output ``nce`` [batch, 2, hidden]: the
    two mean-pooled, L2-normalised views, scored by ``InfoNCELoss(nce_temperature)`` with the
    rest of the global batch as negatives, L = L_MLM + l1 L_NSP + l2 L_SOP + l3 L_NCE, logged as
    ``nce_loss``; ``add_contrastive_targets`` puts its (unused) targets into the batches.

    Args:
        encoder: the ``TransformerEncoder`` (or ``KnowledgeEnhancedEncoder``) being pretrained; the
            MLM head's output weights are its token embedding (tied).
        nsp_weight: l1, the weight of L_NSP (0: NSP not trained).
        sop_weight: l2, the weight of L_SOP.
        kd_weight: alpha, the weight of L_KD (0: no distillation).
        kd_temperature: the distillation's temperature T.
        pair_representation: ``"segment_means"`` or ``"cls_pooler"`` (above).
        nce_weight: l3, the weight of the contrastive term (0: none).
        nce_temperature: its InfoNCE temperature tau.
    Shapes:
        Inputs: the encoder inputs [batch, seq] plus ``masked_positions`` [batch, max_predictions].
        Outputs: ``{"mlm": [batch, max_predictions, vocab] logits, "nsp": [batch, 1], "sop": [batch, 1]}``
        (plus ``"kd"`` and ``"nce"`` when their weights are > 0).

    Example:
        >>> model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=100))
        >>> ids = keras.ops.ones((2, 8), dtype="int32")
        >>> out = model({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids,
        ...              "masked_positions": keras.ops.array([[1, 2], [3, 0]])})
        >>> {name: tuple(value.shape) for name, value in out.items()}
        {'mlm': (2, 2, 100), 'nsp': (2, 1), 'sop': (2, 1)}
        >>> model.compile(optimizer="adam")     # then model.fit(pretraining_dataset(...), ...)
    """

    nested_layers = ("encoder",)
    config_fields = (
        "nsp_weight", "sop_weight", "kd_weight", "kd_temperature", "pair_representation", "nce_weight",
        "nce_temperature",
    )

    def __init__(self, encoder: TransformerEncoder, nsp_weight: float = 1.0, sop_weight: float = 1.0,
                 kd_weight: float = 0.0, kd_temperature: float = 1.0, pair_representation: str = "segment_means",
                 nce_weight: float = 0.0, nce_temperature: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choice("pair_representation", pair_representation, PAIR_REPRESENTATIONS)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.encoder = encoder
            self.set_config_fields(locals())
            # Only the pooled variant reads the pooler; otherwise it gets no gradient, so it is frozen.
            encoder.pooler.trainable = pair_representation == "cls_pooler"
            if nce_weight > 0 and encoder.config.dropout == 0:
                raise ValueError("the contrastive term compares two dropout views of each input, but the encoder "
                                 "has no dropout (the tiny preset): set dropout > 0")
            self.mlm_head = MaskedLMHead(encoder.token_embedding,
                                         layer_norm_epsilon=encoder.config.layer_norm_epsilon,
                                         initializer_range=encoder.config.initializer_range, name="mlm_head")
            if pair_representation == "cls_pooler":
                init = keras.initializers.TruncatedNormal(stddev=encoder.config.initializer_range)
                self.nsp_head = keras.layers.Dense(1, kernel_initializer=init, name="nsp_head")
                self.sop_head = keras.layers.Dense(1, kernel_initializer=init, name="sop_head")
            else:
                self.nsp_head = SegmentPairHead(encoder.config.initializer_range, name="nsp_head")
                self.sop_head = SegmentPairHead(encoder.config.initializer_range, name="sop_head")

    def build(self, input_shape: Dict[str, Any]) -> None:
        if not self.encoder.built:  # a pretrained encoder may be passed in already built
            self.encoder.build(input_shape)
        seq_shape = tuple(input_shape["token_ids"]) + (self.encoder.config.hidden_size,)
        self.mlm_head.build(seq_shape, input_shape["masked_positions"])
        pair_shape = seq_shape if self.pair_representation == "segment_means" else (None, seq_shape[-1])
        self.nsp_head.build(pair_shape)
        self.sop_head.build(pair_shape)
        self.built = True

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Dict[str, Any]:
        if "masked_positions" not in inputs:
            raise KeyError("pretraining inputs need 'masked_positions' besides the encoder inputs")
        encoded = self.encoder(inputs, training=training)
        seq = encoded["sequence_output"]
        outputs = {"mlm": self.mlm_head(seq, inputs["masked_positions"])}
        if self.pair_representation == "cls_pooler":
            outputs["nsp"], outputs["sop"] = (self.nsp_head(encoded["pooled_output"]),
                                              self.sop_head(encoded["pooled_output"]))
        else:
            means = segment_means(seq, inputs["segment_ids"], inputs["padding_mask"])   # once for both heads
            outputs["nsp"] = self.nsp_head.logits_from_means(means)
            outputs["sop"] = self.sop_head.logits_from_means(means)
        outputs = {k: ops.cast(v, "float32") for k, v in outputs.items()}   # float32 logits under mixed precision
        if self.kd_weight > 0:
            outputs["kd"] = outputs["mlm"]
        if self.nce_weight > 0:
            second = self.encoder(inputs, training=training)["sequence_output"]
            views = [unit_vectors(masked_mean(s, inputs["padding_mask"])) for s in (seq, second)]
            outputs["nce"] = ops.stack(views, axis=1)
        return outputs

    def compile(self, optimizer: Any = "adam", loss: Any = None, loss_weights: Any = None,
                weighted_metrics: Any = None, **kwargs: Any) -> None:
        """Keras ``compile`` whose loss, loss weights and metrics default to the pretraining objective."""
        if loss is None:
            loss, default_weights = pretraining_losses(self.nsp_weight, self.sop_weight)
            if self.kd_weight > 0:
                loss["kd"] = KnowledgeDistillationLoss(self.kd_temperature)
                default_weights["kd"] = float(self.kd_weight)
            if self.nce_weight > 0:
                loss["nce"] = InfoNCELoss(self.nce_temperature)
                default_weights["nce"] = float(self.nce_weight)
            loss_weights = default_weights if loss_weights is None else loss_weights
        if weighted_metrics is None:
            weighted_metrics = {
                "mlm": [SparseTopLogitAccuracy(name="accuracy")],   # Keras's accuracy, cheaper on a vocabulary
                "nsp": [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
                "sop": [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
            }
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                        weighted_metrics=weighted_metrics, **kwargs)


def warm_start(target: "PretrainingModel", source: "PretrainingModel") -> None:
    """Copies ``source``'s encoder core (embeddings, blocks, pooler) and heads into ``target`` (both
    built, same sizes). Layers only one of them has stay as they are: a knowledge-enhanced target
    keeps its fresh fusion layers and entity table when it starts from a plain language model."""
    pairs = [(target.encoder.embeddings, source.encoder.embeddings), (target.encoder.pooler, source.encoder.pooler),
             *zip(target.encoder.blocks, source.encoder.blocks), (target.mlm_head, source.mlm_head)]
    if len(target.encoder.blocks) != len(source.encoder.blocks):
        raise ValueError(f"cannot warm-start {len(target.encoder.blocks)} blocks from {len(source.encoder.blocks)}")
    if target.pair_representation == source.pair_representation:
        pairs += [(target.nsp_head, source.nsp_head), (target.sop_head, source.sop_head)]
    for to, frm in pairs:
        shapes = ([tuple(w.shape) for w in to.weights], [tuple(w.shape) for w in frm.weights])
        if shapes[0] != shapes[1]:
            raise ValueError(f"{to.name}: weight shapes {shapes[0]} differ from the source's {shapes[1]}")
        to.set_weights(frm.get_weights())


def add_distillation_targets(dataset, teacher: keras.Model):
    """Adds the knowledge model's MLM logits as ``y["kd"]`` (weighted like the MLM positions) to
    ``(x, y, sample_weight)`` batches, for a student built with ``kd_weight > 0``."""
    def with_targets(x, y, sample_weight):
        logits = teacher(x, training=False)["mlm"]
        return x, {**y, "kd": logits}, {**sample_weight, "kd": sample_weight["mlm"]}
    return dataset.map(with_targets)


def add_contrastive_targets(dataset):
    """Adds ``y["nce"]`` (text ids -1: nothing masked) to ``(x, y, sample_weight)`` batches, for a
    model built with ``nce_weight > 0``."""
    def with_targets(x, y, sample_weight):
        batch = tf.shape(x["token_ids"])[0]
        return (x, {**y, "nce": -tf.ones([batch, 2], tf.int32)},
                {**sample_weight, "nce": tf.ones([batch], tf.float32)})
    return dataset.map(with_targets)
