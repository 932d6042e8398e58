"""Paths refused before any work: folders whose names the libraries underneath read as file
patterns, outputs that would replace or delete the run's own inputs, and names that are not UTF-8.

TensorFlow finds the variables of a SavedModel or a checkpoint by file pattern (its
TensorSliceReader matches ``<folder>/variables/variables*``), where ``[`` opens a character class
and ``\\`` escapes: a model exported under ``runs/p[1]`` saves, and then nobody can load it (rw-tf,
TF Serving, TFMA: "Failed to find any matching files"). TFX and Beam find the files under a pipeline
root or an output folder by pattern too (``<root>/.../train/*``, ``<output>/events/events*``), where
``*`` and ``?`` also count: ``runs/p[1]`` matched the files of ``runs/p1``, and a report or a
training run would have read another run's files without a word. Inputs are another matter:
``rw-tf refine`` and ``--input`` take patterns on purpose, and a file whose name only looks like one
(``notes[1].txt``) is read as the file it names when it exists.

A run that writes where its inputs are would destroy them: ``rw-tf refine 'out/refined/*' out``
(refining a corpus again in place) deleted ``out/refined`` before reading it, then failed with the
corpus gone; ``rw-tf vocab --input f --output f`` replaced the text with its vocabulary.

Example:
    >>> require_model_folder("runs/p1", "--output-dir")
    >>> require_model_folder("runs/p[1]", "--output-dir")
    Traceback (most recent call last):
    rw_tf.path_checks.PatternInPathError: --output-dir 'runs/p[1]' has '[', which TensorFlow reads as ...
    >>> require_inputs_outside(["out/refined/a.jsonl"], ["out/refined"], "this run replaces it")
    Traceback (most recent call last):
    rw_tf.errors.UserError: the input out/refined/a.jsonl is in out/refined, and this run replaces it: ...
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

from rw_tf.errors import UserError


class PatternInPathError(UserError, ValueError):
    """A folder's path holds file pattern syntax (a ``UserError``, and a ``ValueError`` for the
    config classes that report invalid values as such)."""


TENSORFLOW_PATTERN_CHARACTERS = "[\\"
FILE_PATTERN_CHARACTERS = "*?[\\"
PATTERN_CHARACTERS = FILE_PATTERN_CHARACTERS   # what makes an input a pattern rather than a file name


def _require_literal(path: str, what: str, characters: str, reader: str, consequence: str) -> None:
    found = sorted({c for c in path if c in characters}, key=path.index)
    if found:
        shown = " and ".join(f"'{c}'" for c in found)
        raise PatternInPathError(f"{what} '{path}' has {shown}, which {reader} as file pattern syntax: "
                                 f"{consequence}",
                                 hint=f"choose a folder whose path has none of {' '.join(characters)}")


def require_model_folder(path: str, what: str) -> None:
    """Refuses a folder that SavedModels or checkpoints are written to, or read from, when its path
    has a character TensorFlow's checkpoint reader takes as pattern syntax."""
    _require_literal(path, what, TENSORFLOW_PATTERN_CHARACTERS, "TensorFlow reads",
                     "a SavedModel or checkpoint under it cannot be loaded")


def require_pattern_free_folder(path: str, what: str) -> None:
    """Refuses a folder that TFX or Beam lists by pattern (a pipeline root, a refinement's output)."""
    _require_literal(path, what, FILE_PATTERN_CHARACTERS, "TFX and Beam read",
                     "they would read another folder's files under it, or none")


def _forms(path: str) -> Tuple[str, ...]:
    """A local path as written (made absolute: a link in it goes when its folder is deleted) and
    with links resolved (the file itself); a URI (gs://...) as written."""
    if "://" in path:
        return (path.rstrip("/"),)
    return os.path.abspath(path), os.path.realpath(path)


def require_inputs_outside(inputs: Sequence[str], replaced: Sequence[str], consequence: str) -> None:
    """Refuses a run whose ``replaced`` paths (files it overwrites, folders it deletes and rewrites)
    hold one of its ``inputs``: that input would be gone before it is read, or replaced by the output."""
    targets = [(shown, target) for shown in replaced for target in _forms(shown)]
    for source in inputs:
        for resolved in _forms(source):
            for shown, target in targets:
                if resolved == target or resolved.startswith(target.rstrip("/") + "/"):
                    raise UserError(f"the input {source} is {'' if resolved == target else 'in '}{shown}, and "
                                    f"{consequence}: the input would be lost",
                                    hint="write the output somewhere else, or move the input out of the way first")


def not_utf8(value: str) -> Optional[str]:
    """Why ``value`` is not UTF-8 text, else None. The shell passes bytes, and Python keeps bytes
    that are not UTF-8 as lone surrogates (surrogateescape), which no model input, request or
    TensorFlow file path can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = value[err.start:err.start + 1].encode("utf-8", "surrogateescape")
        return f"{value!r} is not UTF-8 text (byte 0x{byte.hex()} at character {err.start})"
    return None


def require_utf8_paths(paths: Sequence[str], pattern: str) -> None:
    """Refuses a file that ``pattern`` matched whose name is not UTF-8: its id would fail in Beam's
    coders or TensorFlow far from the pattern. ``paths`` are Python's names (lone surrogates for
    such bytes) or, as TensorFlow's glob raises them, the undecodable bytes."""
    for path in paths:
        reason = not_utf8(path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path)
        if reason:
            raise UserError(f"{reason}, matched by {pattern!r}", hint="rename the file or folder; rw-tf reads every "
                            "path as UTF-8")
