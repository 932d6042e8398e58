"""Files that appear whole or not at all.

Much of the project takes a file's existence to mean that it is done: the recipe and the data
preparation skip what exists, a training run resumes with the vocabulary it finds, TF Serving
re-reads ``models.config`` while it runs. A file written in place and cut short (a kill, a full
disk, an exception in the rows being written) is then taken for complete. ``atomic_write`` writes
``<path>.<random>.partial`` and renames it over ``path`` only when the block ends without an error
(a rename inside a folder is atomic on local disks; object stores copy, and readers never see a
partial object either); on an error the partial file is removed and ``path`` is left as it was.
Devices, pipes and symbolic links are written through in place: a rename would replace them.

Example:
    >>> with atomic_write("/tmp/rw-tf-atomic-example.txt") as f:
    ...     _ = f.write("whole\\n")
    >>> open("/tmp/rw-tf-atomic-example.txt").read()
    'whole\\n'
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from typing import IO, Iterator

import tensorflow as tf


def _replaceable(path: str) -> bool:
    """Whether a rename may put a new file at ``path``: a URI, a missing path or a regular file. A
    device (``--output /dev/full``), a pipe or a symbolic link (``/dev/stdout``) is written through
    in place, as before: a rename would replace the device node or the link itself."""
    if "://" in path or not os.path.lexists(path):
        return True
    return os.path.isfile(path) and not os.path.islink(path)


NAME_MAX = 255   # bytes in one file name on Linux and macOS file systems


def partial_path(path: str) -> str:
    """A name of its own, beside ``path``, to write into before the rename: ``<path>.<random>.partial``,
    or ``<folder>/.<random>.partial`` where that name would be longer than a file system takes (a
    legal output name of 240 bytes must not fail for the suffix: ``File name too long``)."""
    def too_long(name: str) -> bool:   # local file systems; object stores take names of 1,024 bytes
        return "://" not in path and len(name.encode("utf-8", "surrogateescape")) > NAME_MAX

    if too_long(os.path.basename(path)):   # before any work: the rename at the end would refuse it
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
    token = secrets.token_hex(6)
    name = f"{os.path.basename(path)}.{token}.partial"
    if too_long(name):
        name = f".{token}.partial"
    return os.path.join(os.path.dirname(path), name)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w") -> Iterator[IO]:
    """A ``tf.io.gfile.GFile`` (local paths and URIs) whose content replaces ``path`` at the end;
    paths that are not regular files are written in place (see ``_replaceable``)."""
    if not _replaceable(path):
        with tf.io.gfile.GFile(path, mode) as f:
            yield f
        return
    folder = os.path.dirname(path)
    if folder:
        tf.io.gfile.makedirs(folder)
    partial = partial_path(path)
    try:
        with tf.io.gfile.GFile(partial, mode) as f:
            yield f
        tf.io.gfile.rename(partial, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(tf.errors.OpError, OSError):
            tf.io.gfile.remove(partial)
        raise
