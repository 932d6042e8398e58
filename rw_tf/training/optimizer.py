"""The one optimizer builder of every task: AdamW with warm-up, decay and BERT's exclusions.

Learning rate: linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then ``decay``:
``cosine`` (to 10% of the peak at the last step), ``linear`` (to 0, BERT's schedule) or
``constant``. Weight decay skips LayerNorm parameters and biases (BERT). Gradients are clipped to
global norm ``clipnorm`` (0 disables clipping).

Example:
    >>> opt = build_optimizer(learning_rate=1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(opt.learning_rate), 6)  # step 0 of the warm-up
    0.0
"""
from __future__ import annotations

import keras

DECAYS = ("cosine", "linear", "constant")


def learning_rate_schedule(learning_rate: float, total_steps: int, warmup_steps: int = 0, decay: str = "cosine"):
    if decay not in DECAYS:
        raise ValueError(f"unknown decay {decay!r}; choose one of {DECAYS}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    total_steps = max(1, int(total_steps))
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
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


def build_optimizer(learning_rate: float, total_steps: int, warmup_steps: int = 0, decay: str = "cosine",
                    weight_decay: float = 0.01, clipnorm: float = 1.0) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(learning_rate, total_steps, warmup_steps, decay)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay,
                                       clipnorm=clipnorm or None)
    # BERT excludes LayerNorm parameters and biases. Keras 3 matches on the short variable name
    # ("gamma", "beta", "bias", "output_bias"), not the layer path, so the names are listed as such.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
