"""Input functions traced once per tokenizer, for tf.data maps.

Tracing tokenization (normalization, WordPiece, trimming, masking) into a dataset's map function
takes a second or more, and a task builds its datasets several times: the model's input spec, the
token-rate probe, ``fit``, each evaluation and calibration pass. ``traced_once`` keeps one
``tf.function`` per tokenizer and settings, so every dataset calls the same graph. The functions
cached here are pure functions of their inputs (hash-seeded masking, static tables), so sharing
them changes no example.

Example:
    >>> encode = traced_once(tokenizer, ("single_segment", 64, None),                  # doctest: +SKIP
    ...                      lambda: tf.function(lambda t: encode_texts(t), input_signature=[spec]))
    >>> ds.map(encode)                                                                   # doctest: +SKIP
"""
from __future__ import annotations

import weakref
from typing import Callable, Hashable

import tensorflow as tf

# Keyed weakly by the tokenizer, so a tokenizer's functions go with it; the settings key holds any
# linker strongly, so an id is never reused while its entry exists.
_TRACED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def traced_once(tokenizer: object, key: Hashable, make: Callable[[], tf.types.experimental.GenericFunction]):
    """The function ``make()`` returned the first time for ``tokenizer`` and ``key``."""
    by_key = _TRACED.setdefault(tokenizer, {})
    if key not in by_key:
        by_key[key] = make()
    return by_key[key]
