"""Pooling of token states into one vector per sequence.

Example:
    >>> import keras
    >>> tuple(masked_mean(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 3))).shape)
    (2, 4)
"""
from __future__ import annotations

from typing import Any

from keras import ops


def masked_mean(sequence: Any, padding_mask: Any) -> Any:
    """Mean of ``sequence`` [batch, seq, hidden] over positions where ``padding_mask`` is 1."""
    weights = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
