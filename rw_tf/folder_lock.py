"""One run at a time per output folder: an advisory lock held while a command writes the folder.

Two runs that write the same folder spoil each other without an error: a second training run takes
the first one's live backup for its own, resumes from it and trains alongside it (each deleting the
other's older weights files), a second refinement deletes the first one's shards as stale, and a
second pipeline run writes the same metadata store and serving folder. ``output_folder_lock`` takes
an exclusive ``flock`` on ``<folder>/.rw-tf.lock`` for as long as the run writes; a second run gets
a ``UserError`` naming the holder (process id, host, command, start time). The kernel releases the
lock when the holder's process ends however it ends (SIGKILL included), so a killed run never
leaves its folder locked; a run that ends normally also deletes the file.

The lock is re-entrant within one thread (a pipeline run holds its root, and so does each of its
pipelines). Object stores (``gs://``, ``s3://``) have no locks: there the folder is not locked,
and a file system that refuses ``flock`` (some network mounts) is written unlocked with a warning.

Example:
    >>> with output_folder_lock("/tmp/run"):      # doctest: +SKIP
    ...     train_into("/tmp/run")
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
from typing import Dict, Iterator, List, Optional

from rw_tf.errors import UserError

LOCK_FILE = ".rw-tf.lock"
_HOLDER_BYTES = 4096

# lock path -> [owning thread id, locked descriptor (None on a file system without locks), depth]
_held: Dict[str, List] = {}
_held_guard = threading.Lock()


def _holder_text(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8"))
        return f"process {holder['pid']} on {holder['host']} since {holder['started']} ({holder['command']})"
    except (OSError, ValueError, KeyError, TypeError):   # written by a holder that is just starting
        return "another process"


def _lock(path: str, folder: str) -> Optional[int]:
    """The descriptor of ``path``, locked; None where the file system has no locks."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise UserError(f"{folder} is in use by another run: {holder}",
                            hint="wait for that run to end, or write to another folder; a run frees its "
                                 "folder when its process ends, however it ends") from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            logging.getLogger("rw_tf").warning("%s: the file system has no locks (%s); writing it unlocked",
                                               folder, err.strerror)
            return None
        # A holder that just finished deleted the file between our open and flock: ours is then an
        # unlinked file nobody else will ever lock, so take the lock again on the file now there.
        try:
            here = os.stat(path)
        except FileNotFoundError:
            here = None
        mine = os.fstat(fd)
        if here is not None and (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)


def _command() -> str:
    argv = sys.argv or [""]
    return " ".join([os.path.basename(argv[0]), *argv[1:]])[:300]


@contextlib.contextmanager
def output_folder_lock(folder: str) -> Iterator[None]:
    """Holds ``folder``'s lock (creating the folder) while the body runs; see the module docstring.
    Raises ``UserError`` when another run, or another thread of this process, holds it."""
    if "://" in folder:
        yield
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{folder} is a file, not a folder", hint="give a folder to write the run into") from None
    except NotADirectoryError:
        raise UserError(f"cannot make the folder {folder}: a name on its path is a file",
                        hint="give a folder to write the run into") from None
    path = os.path.join(os.path.realpath(folder), LOCK_FILE)
    me = threading.get_ident()
    with _held_guard:
        entry = _held.get(path)
        if entry is not None and entry[0] != me:
            raise UserError(f"{folder} is in use by another thread of this process",
                            hint="write each run to its own folder")
        if entry is not None:
            entry[2] += 1
        else:
            fd = _lock(path, folder)
            if fd is not None:
                holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                          "started": datetime.datetime.now().isoformat(timespec="seconds")}
                with contextlib.suppress(OSError):   # only what a refused run shows (a full disk fails later)
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, json.dumps(holder).encode("ascii"), 0)
            entry = _held[path] = [me, fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            entry[2] -= 1
            if entry[2] == 0:
                del _held[path]
                if entry[1] is not None:
                    with contextlib.suppress(OSError):   # unlinked while locked: no one can meet a stale file
                        os.unlink(path)
                    os.close(entry[1])
