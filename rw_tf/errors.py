"""Errors a user can act on, and turning TensorFlow op errors into the sentence a user should see.

``UserError`` marks failures the user causes and can fix (a bad option, a missing file, workers or
a server that cannot be reached); the CLI prints them on one line with their hint and exits 2.
``CorruptFileError`` is the one for files that exist but are not what they should be.
Everything else is a bug or an unexpected fault: the CLI writes its traceback to a log file.

Example:
    >>> class Err(Exception):
    ...     message = "Graph execution error:\\n\\nassertion failed: [context is empty]\\n\\t [[{{node A}}]]"
    >>> error_reason(Err())
    'context is empty'
    >>> str(UserError("no TPU at grpc://10.0.0.2:8470", hint="check --tpu"))
    'no TPU at grpc://10.0.0.2:8470 (hint: check --tpu)'
"""
from __future__ import annotations

import errno
import os
import re
import sys
from typing import Callable, Optional

# Graph mode: "assertion failed: [<message>]", followed by "[Condition x > y did not hold ...] [x ...]"
# for tf.debugging.assert_* (a message may hold brackets itself: "[MASK]"); eager mode:
# "Summarized data: b'<message>'".
_ASSERT_MESSAGE = re.compile(r"assertion failed: \[(.*?)\](?: \[Condition |\s*(?:\n|$))|Summarized data: b'(.*?)'")
# TensorFlow's decorations around a kernel's message: function and node names, the failing op.
_NOISE = re.compile(r"\{\{function_node [^}]*\}\}|\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]")


class UserError(Exception):
    """A failure the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class CorruptFileError(UserError, ValueError):
    """A file the user pointed at exists but cannot be read as what it should be (truncated,
    overwritten, hand-edited, or written by something else); the message names the file."""


def error_reason(err: Exception) -> str:
    """The message given to a failed ``tf.debugging.Assert``, else the first line that says what
    went wrong (not TensorFlow's "Graph execution error:" header, node names or stack frames)."""
    text = getattr(err, "message", None) or str(err)
    found = _ASSERT_MESSAGE.search(text)
    if found:
        return (found.group(1) or found.group(2))[:500]
    for line in text.splitlines():
        line = _NOISE.sub("", line).strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "File ", "<stack traces")):
            return line[:500]
    return type(err).__name__


def out_of_memory(err: BaseException) -> Optional[UserError]:
    """A ``UserError`` for an allocation that failed (``MemoryError``, TensorFlow's
    ``ResourceExhaustedError``: "OOM when allocating tensor with shape[384,1000000001]"), else None.
    Such a failure comes from sizes the user chose (batch, sequence length, model, or classes and
    vocabularies their data imply), so it is theirs to fix, not a bug to send a traceback for."""
    tf = sys.modules.get("tensorflow")   # a TensorFlow error needs TensorFlow to have been imported
    if isinstance(err, MemoryError) or (tf is not None and isinstance(err, tf.errors.ResourceExhaustedError)):
        reason = error_reason(err) if str(err) else type(err).__name__
    else:
        wrapped = _WRAPPED_MEMORY_ERROR.search(str(err)) if isinstance(err, RuntimeError) else None
        if wrapped is None:
            return None
        reason = (wrapped.group(1) or "MemoryError").strip()
    return UserError(f"out of memory: {reason}",
                     hint="lower --batch-size, the sequence length or the model preset, or check the "
                          "sizes the data imply (number of classes, vocabulary) and the settings' sizes")


# Beam re-raises a worker's exception as a RuntimeError holding the worker's traceback (NumPy's
# "Unable to allocate 74.5 GiB ..." is an _ArrayMemoryError, a MemoryError).
_WRAPPED_MEMORY_ERROR = re.compile(r"^(?:[\w.]+\.)?_?\w*MemoryError\b(?:: ([^\n\[]*))?", re.MULTILINE)


# TensorFlow's file system layer (tf.io.gfile, and the readers and writers built on it) reports a
# full disk, a missing folder, a URI scheme it has no file system for and a cloud store it cannot
# reach as op errors; only their messages tell them apart.
FULL_DISK_HINT = "free disk space or write the output to another device"
READ_ONLY_HINT = "the file system is mounted read-only: write the output to another device"
_UNKNOWN_SCHEME = re.compile(r"File system scheme '([^']*)' not implemented(?: \(file: '([^']*)'\))?")
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_NO_ROOM = re.compile("|".join(os.strerror(code) for code in _NO_ROOM_ERRNOS))
# Beam re-raises a worker's OSError as a RuntimeError holding the worker's traceback.
_WRAPPED_NO_ROOM = re.compile(rf"OSError: \[Errno (?:{'|'.join(map(str, _NO_ROOM_ERRNOS))})\] [^\n\[]*")
# SQLite's SQLITE_FULL, as ML Metadata's store (and sqlite3) report it: the disk under its file is full.
_SQLITE_FULL = "database or disk is full"
# Paths no file system takes: a name over 255 bytes or a path over 4,095, a loop of symbolic links.
_BAD_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP)
_BAD_PATH = re.compile("|".join(os.strerror(code) for code in _BAD_PATH_ERRNOS))
BAD_PATH_HINT = ("a file or folder name holds at most 255 bytes and a path 4,095; a symbolic link must not lead "
                 "back to itself")
_UNREACHABLE_STORE = re.compile(r"Error executing an HTTP request|libcurl code|Could not resolve host|"
                                r"Couldn't resolve host|Timeout was reached|Failed to connect to")


def _shortened(text: object, keep: int = 120) -> str:
    """A path or message cut in its middle to ``keep`` characters (a name of 300 'a's says little more)."""
    text = str(text)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


def _no_room_hint(message: str) -> str:
    return READ_ONLY_HINT if os.strerror(errno.EROFS) in message else FULL_DISK_HINT


def storage_error(err: BaseException) -> Optional[UserError]:
    """A ``UserError`` for a path that cannot be read or written: an unknown scheme such as
    ``http://``, a cloud store that cannot be reached or refuses the credentials, a full or
    read-only disk, a folder that cannot be made; else None."""
    if isinstance(err, OSError) and err.errno in _NO_ROOM_ERRNOS:
        return UserError(f"cannot write {err.filename or 'the output'}: {err.strerror}",
                         hint=READ_ONLY_HINT if err.errno == errno.EROFS else FULL_DISK_HINT)
    if isinstance(err, OSError) and err.errno in _BAD_PATH_ERRNOS:
        return UserError(f"cannot use the path {_shortened(err.filename)}: {err.strerror}", hint=BAD_PATH_HINT)
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(err, tf.errors.OpError):
        message = str(err)
        wrapped = _WRAPPED_NO_ROOM.search(message)
        if wrapped:
            reason = wrapped.group(0).strip()
            return UserError(f"cannot write the output: {reason}", hint=_no_room_hint(reason))
        if _SQLITE_FULL in message:
            return UserError(f"cannot write the metadata store: {_SQLITE_FULL}", hint=FULL_DISK_HINT)
        return None
    text = getattr(err, "message", None) or str(err)
    if _NO_ROOM.search(text):   # TensorFlow reports ENOSPC as ResourceExhausted: not memory
        return UserError(f"cannot write: {error_reason(err)}", hint=_no_room_hint(text))
    if _BAD_PATH.search(text):
        return UserError(f"cannot use a path: {_shortened(error_reason(err))}", hint=BAD_PATH_HINT)
    if isinstance(err, tf.errors.NotFoundError) and "No such file or directory" in text:
        return UserError(error_reason(err), hint="check the path: a folder on it is missing or cannot be made there")
    scheme = _UNKNOWN_SCHEME.search(text)
    if scheme:
        return UserError(f"TensorFlow has no file system for {scheme.group(1)}:// paths"
                         f"{f' ({scheme.group(2)})' if scheme.group(2) else ''}",
                         hint="give a local path or a gs:// URI (s3:// and hdfs:// need the tensorflow-io "
                              "package); download web files first")
    if _UNREACHABLE_STORE.search(text) or isinstance(err, tf.errors.PermissionDeniedError):
        return UserError(f"cannot read or write the storage: {error_reason(err)}",
                         hint="check the network and the credentials (gcloud auth application-default login, "
                              "or GOOGLE_APPLICATION_CREDENTIALS) and that the bucket exists")
    return None


def runtime_user_error(err: BaseException) -> Optional[UserError]:
    """The ``UserError`` of a runtime failure the user caused (storage, memory), else None."""
    return storage_error(err) or out_of_memory(err)


def terminal_text(text: str) -> str:
    """``text`` with the characters a terminal would act on (escape sequences, C1 controls,
    bidirectional overrides) shown as Python escapes; line breaks and tabs stay. For messages that
    quote paths, names and answers that came from outside.

    >>> print(terminal_text("output '\\x1b[2Jy'"))
    output '\\x1b[2Jy'
    """
    return escape_unprintable(text, lambda c: c.encode("unicode_escape").decode("ascii"))


def escape_unprintable(text: str, escape: Callable[[str], str]) -> str:
    """``text`` with ``escape(c)`` for each character a terminal would act on (not printable;
    line breaks and tabs stay)."""
    if text.replace("\n", "").replace("\t", "").isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else escape(c) for c in text)
