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
import threading
from typing import Iterator, Optional, TextIO


@contextlib.contextmanager
def quiet_output(log_path: Optional[str]) -> Iterator[TextIO]:
    """Redirects fd 1 and 2 to ``log_path`` (None: nothing is redirected); yields the terminal.

    The descriptors point at a pipe that a thread copies into the log, not at the log itself: a
    write to a full disk fails, and a library thread that fails to write its log line can die
    holding the run (Beam's DirectRunner then waited for ever on a full output disk). What the
    log cannot take is dropped and its size written at the end, when the disk allows."""
    if log_path is None:
        yield sys.stdout
        return
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding=getattr(sys.stdout, "encoding", None) or "utf-8",
                         errors="backslashreplace")
    log = open(log_path, "ab", buffering=0)
    read_end, write_end = os.pipe()
    copier = threading.Thread(target=_copy_to_log, args=(read_end, log), daemon=True)
    copier.start()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
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
        # Subprocesses that outlive the block may still hold the pipe: the copier keeps draining
        # it (a daemon thread), so they never block on a full pipe.
        copier.join(timeout=5)


def _copy_to_log(read_end: int, log) -> None:
    dropped = 0
    while True:
        chunk = memoryview(os.read(read_end, 65536))
        if not chunk:
            break
        try:
            while chunk:   # an unbuffered write may take part of the chunk
                chunk = chunk[log.write(chunk):]
        except OSError:
            dropped += len(chunk)
    os.close(read_end)
    try:
        if dropped:
            log.write(f"[rw-tf: {dropped:,} bytes of library output were lost: the disk refused them]\n".encode())
        log.close()
    except OSError:
        pass   # the disk is still full: the count cannot be written either
