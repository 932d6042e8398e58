"""Quiet terminal output for long commands: library logs go to a file, the user sees the steps.

``quiet_output(log_path)`` sends everything libraries print (TensorFlow's C++ logs, absl INFO,
Beam worker output) to ``log_path`` at the file-descriptor level, so subprocesses are included,
and yields a stream to the real terminal. ``None`` redirects nothing (``--verbose``).

Example:
    >>> with quiet_output("/tmp/run.log") as terminal:        # doctest: +SKIP
    ...     terminal.write("step 1 done\\n")
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional, TextIO


@contextlib.contextmanager
def quiet_output(log_path: Optional[str]) -> Iterator[TextIO]:
    """Redirects fd 1 and 2 to ``log_path`` (None: nothing is redirected); yields the terminal."""
    if log_path is None:
        yield sys.stdout
        return
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()
