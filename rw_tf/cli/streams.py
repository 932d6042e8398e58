"""The command line's standard streams in the states users and schedulers leave them in.

- Closed (``rw-tf ... >&-``, ``<&-``, a daemon started without them): ``/dev/null`` is opened on the
  descriptor and the Python stream, so the next file the run opens (a log, a checkpoint) cannot
  take descriptor 1 and receive prints or C++ logs, and Keras' progress bar has somewhere to write.
  A command whose product is its standard output (``embed`` without ``--output``, ``predict``)
  refuses to run instead of writing into nothing (``require_standard_output``).
- A reader that went away (``rw-tf embed ... | head``): the command stops quietly with exit code
  141 (128 + SIGPIPE), as Unix tools do, instead of reporting a ``BrokenPipeError``.
- An encoding that cannot write every character (``PYTHONIOENCODING=ascii``, a Latin-1 locale):
  what it lacks is written as a backslash escape instead of failing the command after its work
  is done, and JSON goes out with ``\\u`` escapes, so it stays JSON (``print_json``).

Example:
    >>> print_json({"score": 0.5})
    {"score": 0.5}
"""
from __future__ import annotations

import codecs
import io
import itertools
import json
import os
import select
import sys
from typing import Any, Set

from rw_tf.errors import UserError, escape_unprintable, terminal_text

READER_GONE_EXIT = 141   # what a shell reports for a process that SIGPIPE ended
_closed_at_start: Set[str] = set()


def prepare_standard_streams() -> None:
    """Gives a standard stream closed at the start ``/dev/null`` and makes output encodings unable
    to fail; called once, before a command runs. (Importing ``rw_tf`` already put ``/dev/null`` on
    the closed descriptors: ``rw_tf._startup.reserve_standard_descriptors``.)"""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:   # Python's stream of a descriptor closed at its start
            _closed_at_start.add(name)
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
            stream.reconfigure(errors="backslashreplace")


def require_standard_output(alternative: str) -> None:
    """Refuses a command that would write its result to a standard output closed at its start."""
    if "stdout" in _closed_at_start:
        raise UserError("standard output is closed: the result would be lost", hint=alternative)


def require_standard_input() -> None:
    if "stdin" in _closed_at_start:
        raise UserError("standard input is closed: there is nothing to read from '-'",
                        hint="pipe the texts in, or give a file")


def stdout_writes_utf8() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def print_json(value: Any, **kwargs: Any) -> None:
    """Prints ``value`` as JSON (``json.dumps``'s ``kwargs``), with the characters as they are where
    the terminal takes UTF-8, else escaped, and written piece by piece: a server's answer may be
    64 MiB, and made ``rw-tf predict`` peak at 3.3 GB as one indented string, 1.1 GB in pieces.

    Characters a terminal would act on stay escaped either way (JSON escapes only C0 controls; C1
    controls such as U+009B, a CSI, and bidirectional overrides are kept by ``ensure_ascii=False``):
    the values may come from a server or a model, and the JSON means the same.

    >>> print_json(["\\u009b2J\\u202e"])
    ["\\u009b2J\\u202e"]
    """
    escape = lambda c: json.dumps(c)[1:-1]
    pieces = json.JSONEncoder(ensure_ascii=not stdout_writes_utf8(), **kwargs).iterencode(value)
    while True:   # 8,192 pieces a write: one write a piece took 2.6x longer than one string
        block = "".join(itertools.islice(pieces, 8192))
        if not block:
            break
        sys.stdout.write(escape_unprintable(block, escape))
    sys.stdout.write("\n")


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe or socket whose reading end has been closed."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False


def discard_standard_output() -> None:
    """Points standard output at ``/dev/null``: the interpreter's last flush would fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def say(line: str) -> None:
    """Writes a line to standard error; an error message must not fail on a closed terminal."""
    try:
        print(terminal_text(line), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
