"""Input functions traced once per tokenizer, for tf.data maps.

Tracing tokenization (normalization, WordPiece, trimming, masking) into a dataset's map function
takes a second or more, and a task builds its datasets several times: the model's input spec, the
token-rate probe, ``fit``, each evaluation and calibration pass. ``traced_once`` keeps one
``tf.function`` per tokenizer and settings, so every dataset calls the same graph. The functions
cached here are pure functions of their inputs (hash-seeded masking, static tables), so sharing
them changes no example.

Example:
    >>> encode = traced_once((tokenizer, None), ("single_segment", 64),                # doctest: +SKIP
    ...                      lambda: tf.function(lambda t: encode_texts(t), input_signature=[spec]))
    >>> ds.map(encode)                                                                   # doctest: +SKIP
"""
from __future__ import annotations

import collections
from typing import Callable, Hashable, Tuple

import tensorflow as tf

# The most recently used functions. An entry holds its tokenizer and linker, which the function's
# closure references anyway, so a weakly keyed cache could never drop it; a bound
# keeps a process that makes many tokenizers (a recipe, a test session) from holding them all.
MAX_TRACED_FUNCTIONS = 16
_TRACED: "collections.OrderedDict" = collections.OrderedDict()


def traced_once(objects: Tuple[object, ...], settings: Hashable,
                make: Callable[[], tf.types.experimental.GenericFunction]):
    """The function ``make()`` returned the first time for ``objects`` (the tokenizer, a linker or
    None; compared by identity) and ``settings`` (compared by value); the least recently used of
    more than ``MAX_TRACED_FUNCTIONS`` is dropped."""
    entry = (tuple(_Identity(obj) for obj in objects), settings)
    if entry in _TRACED:
        _TRACED.move_to_end(entry)
    else:
        _TRACED[entry] = make()
        while len(_TRACED) > MAX_TRACED_FUNCTIONS:
            _TRACED.popitem(last=False)
    return _TRACED[entry]


class _Identity:
    """A hashable stand-in that compares its object by identity (and keeps it alive while cached)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj
