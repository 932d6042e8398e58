"""Lines of a byte stream in bounded memory: the one line reader of rw-tf's line-based inputs.

Iterating a file object yields whole lines however long they are, so one 10 GB line (a file with no
line ends, a dump concatenated without separators) is read into memory at once. ``bounded_lines``
reads fixed-size chunks and yields ``(line, too_long)``: lines of at most ``limit`` bytes whole
(without their ``\\n``), and a longer line as its first ``limit`` bytes with ``too_long=True``,
the rest passed over without being kept. Readers count such lines as rejects
(``line_too_long``) or refuse them by name, so memory stays at ``limit`` plus one chunk. Works on any
binary stream: ``open``, ``tf.io.gfile.GFile`` (``gs://`` ...), ``gzip`` and standard input (which is
read with ``read1``, so lines reach the caller as they arrive).

Example:
    >>> import io
    >>> list(bounded_lines(io.BytesIO(b"ab\\n" + b"x" * 10 + b"\\ncd"), limit=4))
    [(b'ab', False), (b'xxxx', True), (b'cd', False)]
"""
from __future__ import annotations

from typing import IO, Iterator, Optional, Tuple

MAX_LINE_BYTES = 8 * 1024 * 1024  # far above any real row (a SQuAD context is < 30 KB), far below RAM
_CHUNK_BYTES = 256 * 1024


def bounded_lines(stream: IO[bytes], limit: Optional[int] = None) -> Iterator[Tuple[bytes, bool]]:
    """``(line, too_long)`` for each line of ``stream`` (see the module docstring); ``limit``
    defaults to ``MAX_LINE_BYTES``."""
    limit = MAX_LINE_BYTES if limit is None else limit
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    read = getattr(stream, "read1", stream.read)
    pending = b""        # the start of the line being read, at most `limit` bytes
    overflow = False     # that line is already longer than `limit`
    while True:
        chunk = read(_CHUNK_BYTES)
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
            pending, overflow = b"", False
            for i in range(1, len(parts)):
                part = parts[i]
                yield (part[:limit], True) if len(part) > limit else (part, False)
        if not overflow:
            pending += tail
            if len(pending) > limit:
                pending, overflow = pending[:limit], True
    if overflow or pending:
        yield pending, overflow
