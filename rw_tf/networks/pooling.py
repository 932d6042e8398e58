"""Pooling of token states into one vector per sequence.

Example:
    >>> import keras
    >>> tuple(masked_mean(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 3))).shape)
    (2, 4)
"""
from __future__ import annotations

from typing import Any

from keras import ops


def unit_vectors(x: Any) -> Any:
    """``x`` in float32, L2-normalised along the last axis (zero vectors stay zero)."""
    x = ops.cast(x, "float32")
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


def masked_mean(sequence: Any, padding_mask: Any) -> Any:
    """Mean of ``sequence`` [batch, seq, hidden] over positions where ``padding_mask`` is 1."""
    weights = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
