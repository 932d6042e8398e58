"""Checks of id inputs (token, segment, entity, relation and item ids, masked positions).

An embedding lookup does not fail on a wrong id, it returns a plausible wrong vector: Keras's
``ops.take`` wraps a negative id to the end of the table (-1 becomes the last token of the
vocabulary), TensorFlow's GPU gather returns zeros for an id past the table, and Keras casts a
float id to an integer (1.5 becomes 1). So ids are checked before the lookup: their dtype when the
layer is called (integers, or floats holding whole numbers as Keras accepts them; anything else
is a ``TypeError``), their values when they are known: a ``ValueError`` for concrete ids (eager
calls), an ``InvalidArgumentError`` when a TensorFlow graph runs (``fit``, ``predict``, a
SavedModel; an XLA-compiled step compiles the check away, as XLA has no assertions). Ids traced
by ``jax.jit`` are not checked. (``keras.ops`` has no assertion, so this one function of the layers
calls TensorFlow directly, under the TensorFlow backend only.)

Example:
    >>> ids = checked_ids(keras.ops.array([[1, 2]], dtype="int32"), 100, "token_ids")
    >>> checked_ids(keras.ops.array([[1, -2]], dtype="int32"), 100, "token_ids")  # doctest: +SKIP
    ValueError: token_ids must be ids in [0, 100); got values from -2 to 1
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np


def checked_ids(ids: Any, high: int, what: str, low: int = 0, limit: str = "") -> Any:
    """``ids`` unchanged, after checking that every id is a whole number in [``low``, ``high``);
    ``limit`` says what ``high`` is, for the message."""
    if not hasattr(ids, "dtype"):   # a list
        ids = keras.ops.convert_to_tensor(ids)
    dtype = keras.backend.standardize_dtype(ids.dtype)
    is_float = dtype.startswith(("float", "bfloat"))
    if not (is_float or dtype.startswith(("int", "uint"))):
        raise TypeError(f"{what} must be integer ids, got {dtype} values")
    message = (f"{what} must be {'whole-number ' if is_float else ''}ids in [{low}, {high})"
               f"{f' ({limit})' if limit else ''}; got values from")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        ids = tf.convert_to_tensor(ids)
        if tf.executing_eagerly():
            return _checked_values(ids, low, high, message)
        wide = tf.cast(ids, tf.float64 if is_float else tf.int64)
        ok = (wide >= low) & (wide < high)
        if is_float:
            ok &= tf.math.floor(wide) == wide
        check = tf.debugging.Assert(tf.reduce_all(ok), [message, tf.reduce_min(wide), "to", tf.reduce_max(wide)])
        with tf.control_dependencies([check]):
            return tf.identity(ids)
    if keras.backend.backend() == "jax":
        import jax

        if isinstance(ids, jax.core.Tracer):
            return ids
    return _checked_values(ids, low, high, message)


def _checked_values(ids: Any, low: int, high: int, message: str) -> Any:
    values = np.asarray(keras.ops.convert_to_numpy(ids))
    if values.size and not np.all((values >= low) & (values < high) & (np.floor(values) == values)):
        raise ValueError(f"{message} {values.min()} to {values.max()}")
    return ids
