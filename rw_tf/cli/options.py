"""Command-line options from config dataclasses: the one mapping between flags and configs.

Every field of a config dataclass becomes ``--field-name`` (or the flag in its metadata, e.g.
``--input`` for ``corpus_files``) with the field's type: booleans get ``--x/--no-x``, sequences take
several values. Unset options stay ``None`` so a task's own defaults apply; ``set_values`` returns
only what the user gave.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_config_options(parser, TrainerConfig)
    >>> set_values(parser.parse_args(["--epochs", "2"]), TrainerConfig)
    {'epochs': 2}
"""
from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import typing
from typing import Any, Dict, Iterable, Optional

from rw_tf.path_checks import not_utf8


def utf8_text(value: str) -> str:
    """argparse ``type`` of text arguments (see ``not_utf8``)."""
    reason = not_utf8(value)
    if reason:
        raise argparse.ArgumentTypeError(reason)
    return value


FLAG_NAMES = {"corpus_files": "--input", "train_file": "--train", "eval_file": "--eval", "pairs_file": "--pairs",
              "valid_file": "--valid", "test_file": "--test", "items_file": "--items",
              "interactions_file": "--interactions"}


def flag_name(field_name: str) -> str:
    return FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def _base_type(annotation: Any) -> Any:
    """``Optional[int]`` -> int, ``Sequence[str]`` -> (list, str), ``bool`` -> bool."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return _base_type(next(a for a in args if a is not type(None)))
    if origin in (list, tuple, collections.abc.Sequence):
        return (list, args[0] if args else str)
    return annotation


def add_config_options(parser: argparse.ArgumentParser, config_class: type, exclude: Iterable[str] = (),
                       seen: Optional[set] = None) -> None:
    """Adds a flag per field of ``config_class`` (skipping ``exclude`` and names in ``seen``)."""
    hints = typing.get_type_hints(config_class)
    seen = set() if seen is None else seen
    for field in dataclasses.fields(config_class):
        if field.name in exclude or field.name in seen:
            continue
        seen.add(field.name)
        flag = flag_name(field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kind = _base_type(hints[field.name])
        help_text = f"default: {default}" if default not in (None, (), "") else None
        if kind is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif isinstance(kind, tuple):
            parser.add_argument(flag, dest=field.name, nargs="*", type=kind[1], default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, type=kind if kind in (int, float) else str, default=None,
                                help=help_text)


def set_values(args: argparse.Namespace, config_class: type) -> Dict[str, Any]:
    """The fields of ``config_class`` that were given on the command line."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
