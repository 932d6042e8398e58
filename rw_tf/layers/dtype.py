"""Dtype policies for layers that build sub-layers.

Keras gives a sub-layer created without ``dtype`` the *global* policy, not its parent's, so a
model saved under mixed precision would reload in float32 unless every sub-layer is handed the
parent's policy. ``sublayer_policy`` does that for a whole ``__init__`` body.

Example:
    >>> class Block(keras.layers.Layer):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         with sublayer_policy(self):
    ...             self.dense = keras.layers.Dense(4)
    >>> Block(dtype="mixed_bfloat16").dense.dtype_policy.name
    'mixed_bfloat16'
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import keras


@contextlib.contextmanager
def sublayer_policy(layer: keras.layers.Layer) -> Iterator[None]:
    """Makes ``layer``'s dtype policy the global one while its sub-layers are created."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(layer.dtype_policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
