"""User inputs read in bounded memory: the one line reader of rw-tf's line-based inputs, and
whole files up to a size.

Iterating a file object yields whole lines however long they are, so one 10 GB line (a file with no
line ends, a dump concatenated without separators) is read into memory at once. ``bounded_lines``
reads fixed-size chunks and yields ``(line, too_long)``: lines of at most ``limit`` bytes whole
(without their ``\\n``), and a longer line as its first ``limit`` bytes with ``too_long=True``,
the rest passed over without being kept. Readers count such lines as rejects
(``line_too_long``) or refuse them by name, so memory stays at ``limit`` plus one chunk. A line
with no end in ``MAX_SCANNED_LINE_BYTES`` is an error naming the input instead: a device such as
``/dev/zero`` or binary data would otherwise be scanned forever. Works on any binary stream:
``open``, ``tf.io.gfile.GFile`` (``gs://`` ...), ``gzip`` and standard input (which is read with
``read1``, so lines reach the caller as they arrive).

``read_bounded`` reads a whole file (a config, a vocabulary, a corpus) and refuses it once it
passes a size, so a file larger than memory or an endless device fails with the file's name
instead of filling memory. ``open_input`` opens local paths with ``open``, so pipes, process
substitutions (``--input <(zcat corpus.gz)``) and ``/dev/stdin`` give their content, which
``tf.io.gfile`` cannot read (it seeks: "Illegal seek"); other URIs (``gs://`` ...) go through
``tf.io.gfile``.

Text inputs (corpora, JSON Lines, triples, aliases, items, texts to embed) are opened with
``decompress=True``: a gzip, bzip2 or xz file is read decompressed, whatever its name (the format
is told by its first bytes, where ``tf.data.TextLineDataset`` must be given it), a chunk at a time
(limits count decompressed bytes, so a small file that inflates to terabytes is refused like a
large one).
Damaged compressed data (cut short, or a trailer whose CRC or length does not match what it
holds) is a ``CorruptFileError`` naming the file, not a crash in the middle of a read or a file
read as binary text. Compression no standard module reads (zstd, zip) is refused by name with the
command that decompresses it.

Example:
    >>> import io
    >>> list(bounded_lines(io.BytesIO(b"ab\\n" + b"x" * 10 + b"\\ncd"), limit=4))
    [(b'ab', False), (b'xxxx', True), (b'cd', False)]
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import IO, Iterator, Optional, Tuple

import tensorflow as tf

from rw_tf.errors import CorruptFileError, UserError

BYTE_ORDER_MARK = b"\xef\xbb\xbf"   # UTF-8's, skipped at the start of an input
MAX_LINE_BYTES = 8 * 1024 * 1024  # far above any real row (a SQuAD context is < 30 KB), far below RAM
MAX_SCANNED_LINE_BYTES = 1 << 30  # a longer line is passed over up to here, then the input is refused
_CHUNK_BYTES = 256 * 1024


class EndlessLineError(ValueError):
    """A line with no end in ``MAX_SCANNED_LINE_BYTES``: the input is not text in lines."""


def bounded_lines(stream: IO[bytes], limit: Optional[int] = None, source: str = "the input"
                  ) -> Iterator[Tuple[bytes, bool]]:
    """``(line, too_long)`` for each line of ``stream`` (see the module docstring); ``limit``
    defaults to ``MAX_LINE_BYTES``; ``source`` names the input in the error of a line with no end."""
    limit = MAX_LINE_BYTES if limit is None else limit
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    read = getattr(stream, "read1", stream.read)
    pending = b""        # the start of the line being read, at most `limit` bytes
    overflow = False     # that line is already longer than `limit`
    scanned = 0          # bytes of that line so far
    first = True
    while True:
        chunk = read(_CHUNK_BYTES)
        if first:   # a byte order mark (Windows editors) is not text: it joined the first line's first field
            while chunk and len(chunk) < len(BYTE_ORDER_MARK) and BYTE_ORDER_MARK.startswith(chunk):
                more = read(_CHUNK_BYTES)   # a pipe may hand over the mark in pieces
                if not more:
                    break
                chunk += more
            first = False
            if chunk.startswith(BYTE_ORDER_MARK):
                chunk = chunk[len(BYTE_ORDER_MARK):]
                if not chunk:
                    continue   # the mark was all this read returned: not the end of the input
        if not chunk:
            break
        parts = chunk.split(b"\n")   # whole lines, except the first (continues `pending`) and the last
        tail = parts.pop()
        if parts:
            if overflow:
                yield pending, True
            else:
                line = pending + parts[0]
                yield (line[:limit], True) if len(line) > limit else (line, False)
            pending, overflow, scanned = b"", False, 0
            for i in range(1, len(parts)):
                part = parts[i]
                yield (part[:limit], True) if len(part) > limit else (part, False)
        scanned += len(tail)
        if scanned > MAX_SCANNED_LINE_BYTES:
            raise EndlessLineError(f"{source} has a line with no end in its first {MAX_SCANNED_LINE_BYTES:,} "
                                   "bytes: not text in lines (a device such as /dev/zero, or binary data)")
        if not overflow:
            pending += tail
            if len(pending) > limit:
                pending, overflow = pending[:limit], True
    if overflow or pending:
        yield pending, overflow


# The first bytes of each compression format (their specifications' magic numbers).
COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
                     (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"))
_DECOMPRESSORS = {"gzip": lambda f: gzip.GzipFile(fileobj=f), "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}
_UNREAD = {"zstd": "zstd -dc", "zip": "unzip -p"}


def compression(head: bytes) -> Optional[str]:
    """The compression format whose magic number starts ``head``, else None.

    >>> compression(gzip.compress(b"text")), compression(b"text")
    ('gzip', None)
    """
    return next((kind for magic, kind in COMPRESSION_MAGIC if head.startswith(magic)), None)


class _Decompressed(io.BufferedIOBase):
    """The decompressed bytes of a compressed stream (the standard module's reader, which buffers
    and inflates no more than a read asks for); damaged data is a ``CorruptFileError``."""

    def __init__(self, stream: IO[bytes], kind: str, source: str) -> None:
        super().__init__()
        self._stream, self._kind, self._source = stream, kind, source
        self._file = _DECOMPRESSORS[kind](stream)

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._checked(self._file.read, size)

    def read1(self, size: int = -1) -> bytes:
        return self._checked(self._file.read1, size)

    def _checked(self, read, size) -> bytes:
        try:
            return read(size)
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as err:
            raise CorruptFileError(f"{self._source}: its {self._kind} data cannot be decompressed ({err}): "
                                   "the file is damaged or was cut short") from None

    def close(self) -> None:
        try:
            self._file.close()
            self._stream.close()
        finally:
            super().close()


def decompressed(stream: IO[bytes], source: str) -> IO[bytes]:
    """``stream`` itself, or its decompressed bytes when it starts with a gzip, bzip2 or xz magic
    number (see the module docstring); ``source`` names it in errors."""
    head = stream.peek(6)[:6] if hasattr(stream, "peek") else stream.read(6)
    if not hasattr(stream, "peek") and head:
        stream.seek(0)
    kind = compression(head)
    if kind is None:
        return stream
    if kind in _UNREAD:
        stream.close()
        raise UserError(f"{source} is {kind}-compressed, which rw-tf does not decompress",
                        hint=f"decompress it first, or pass it through a pipe: <({_UNREAD[kind]} {source})")
    return _Decompressed(stream, kind, source)


def open_input(path: str, decompress: bool = False) -> IO[bytes]:
    """A binary stream of ``path``: a local path (a file, pipe or device) with ``open``, a URI with
    a scheme (``gs://``, ``s3://`` ...) with ``tf.io.gfile.GFile``; with ``decompress``, the
    decompressed bytes of a compressed file (see the module docstring)."""
    try:
        stream = tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb")
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder, not a file") from None
    return decompressed(stream, path) if decompress else stream


def read_bounded(path: str, limit: int, what: str = "file", hint: str = "", decompress: bool = False) -> bytes:
    """The bytes of ``path`` (see ``open_input``, and its ``decompress``); more than ``limit``
    bytes is a ``ValueError`` naming ``what`` and the file (followed by ``hint``), raised before
    more is read."""
    data = bytearray()
    with open_input(path, decompress) as stream:
        while True:
            chunk = stream.read(min(4 * _CHUNK_BYTES, limit + 1 - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > limit:
                raise ValueError(f"{what} {path} holds more than {limit:,} bytes{hint}")
