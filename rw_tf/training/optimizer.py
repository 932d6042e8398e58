"""The one optimizer builder of every task: AdamW with warm-up, decay and BERT's exclusions.

Learning rate: linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then ``decay``:
``cosine`` (to 10% of the peak at the last step), ``linear`` (to 0, BERT's schedule) or
``constant``. Adam's epsilon defaults to BERT's 1e-6. Weight decay skips LayerNorm parameters
and biases (BERT). Gradients are clipped to global norm ``clipnorm`` (0 disables clipping; BERT's
clip_by_global_norm), after the replicas' gradients are summed (``DistributedAdamW``).

Example:
    >>> opt = build_optimizer(learning_rate=1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(opt.learning_rate), 6)  # step 0 of the warm-up
    0.0
"""
from __future__ import annotations

import keras
import tensorflow as tf

from rw_tf.config import check_choice, checks_number_arguments

DECAYS = ("cosine", "linear", "constant")


@checks_number_arguments(may_be_zero=("warmup_steps",))
def learning_rate_schedule(learning_rate: float, total_steps: int, warmup_steps: int = 0, decay: str = "cosine"):
    check_choice("decay", decay, DECAYS)
    total_steps = int(total_steps)                      # NumPy integers too (get_config writes JSON)
    warmup = min(int(warmup_steps), total_steps - 1)    # at least the last step decays
    if decay == "constant" and warmup == 0:
        return learning_rate
    if decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else learning_rate, decay_steps=max(1, total_steps - warmup),
            alpha=0.1, warmup_target=learning_rate if warmup else None, warmup_steps=warmup)
    end = 0.0 if decay == "linear" else learning_rate
    return _WarmupThenLinear(learning_rate, warmup, total_steps, end)


@keras.saving.register_keras_serializable(package="rw_tf")
class _WarmupThenLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then linear change to ``end`` at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, end: float) -> None:
        self.peak, self.warmup_steps, self.total_steps, self.end = peak, warmup_steps, total_steps, end

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * step / max(1, self.warmup_steps)
        frac = keras.ops.clip((step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps), 0.0, 1.0)
        after = self.peak + (self.end - self.peak) * frac
        return keras.ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "end": self.end}


@keras.saving.register_keras_serializable(package="rw_tf")
class DistributedAdamW(keras.optimizers.AdamW):
    """AdamW whose gradient clipping sees the gradient of the global batch.

    Under ``tf.distribute`` Keras clips each replica's gradient before the replicas' gradients are
    summed, which is not the single-device computation (clipping the gradient of the whole
    batch). Here, with several replicas, the gradients are summed first, clipped, and each replica
    passes a 1/R share on to Keras's own summation, so the update equals the single-device one.
    Without distribution it is plain ``keras.optimizers.AdamW``.
    """

    @staticmethod
    def _replica_context():
        context = tf.distribute.get_replica_context() if keras.backend.backend() == "tensorflow" else None
        return context if context is not None and context.num_replicas_in_sync > 1 else None

    def _clip_gradients(self, grads):
        return grads if self._replica_context() is not None else super()._clip_gradients(grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        context = self._replica_context()
        if context is not None and (self.clipnorm or self.global_clipnorm or self.clipvalue):
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
            share = 1.0 / context.num_replicas_in_sync
            grads = [_scaled(g, share) for g in super()._clip_gradients(summed)]
        return super()._backend_update_step(grads, trainable_variables, learning_rate)


def _scaled(gradient, factor: float):
    if isinstance(gradient, tf.IndexedSlices):  # embedding gradients are sparse
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


@checks_number_arguments(may_be_zero=("warmup_steps", "weight_decay", "clipnorm"))
def build_optimizer(learning_rate: float, total_steps: int, warmup_steps: int = 0, decay: str = "cosine",
                    weight_decay: float = 0.01, clipnorm: float = 1.0, epsilon: float = 1e-6
                    ) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(learning_rate, total_steps, warmup_steps, decay)
    optimizer = DistributedAdamW(learning_rate=schedule, weight_decay=weight_decay, epsilon=epsilon,
                                 global_clipnorm=clipnorm or None)
    # BERT excludes LayerNorm parameters and biases. Keras 3 matches on the short variable name
    # ("gamma", "beta", "bias", "output_bias"), not the layer path, so the names are listed as such.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
