"""Web pages in: WARC archives, HTML files and JSON Lines, each record a page or a counted reject.

A *page* is a dict ``{"id", "url", "source", "html" | "text"}``: ``id`` is ``<path>#<record>`` (stable
for the same inputs on every runner, so deduplication keeps the same survivor everywhere). A
*reject* is ``{"id", "source", "stage": "read", "reason", "detail"}``; nothing is dropped without one.

- WARC (``.warc``, ``.warc.gz``, ``.arc``, ``.arc.gz``, read with warcio): ``response`` records with
  an HTML content type become pages, with the URL of ``WARC-Target-URI``; other record types and
  non-HTML responses are rejects by reason (``not_a_response``, ``not_html``, ``http_status``); a
  record whose block is shorter than its declared ``Content-Length``, longer (no blank line follows
  the declared end: warcio read the page cut there), or whose ``Content-Length`` is not a size is
  ``declared_size_mismatch``; a
  record cut off by the end of the file is ``truncated_record``. A corrupt archive (bad gzip member,
  unparseable header, a header block over ``MAX_HEADER_BYTES``) is one ``corrupt_archive`` reject;
  the records before it are kept.
- HTML files (``.html``, ``.htm``, and either with ``.gz``, ``.bz2`` or ``.xz``): the URL is the
  page's ``<link rel="canonical">`` if it has one, else ``file://<path>``.
- JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.jsonl.bz2``, ``.jsonl.xz``): objects ``{"url", "html"}``
  or ``{"url", "text"}`` (optional ``"id"``: the page id is then ``<path>#<id>``); invalid JSON,
  missing fields and wrong types are rejects.
- HTML and JSON Lines files that are gzip, bzip2 or xz data are decompressed a read at a time
  whatever their names (``rw_tf.data.lines.decompressed``); damaged compressed data is a
  ``corrupt_file`` reject, compression it does not read (zstd, zip) ``unsupported_file``.

Bounded memory: a record, file or line larger than ``max_page_bytes`` is a ``too_large`` reject,
read no further than the limit (a chunked or compressed HTTP body too: ``content_stream``). Bytes
are decoded with the HTTP or ``<meta>`` charset, else UTF-8; bytes that do not decode (or decode to
lone surrogates, as utf-7 can) are an ``undecodable`` reject (never silently replaced).

Example:
    >>> for kind, item in iter_records("pages/iana.warc.gz"):     # doctest: +SKIP
    ...     print(kind, item["id"], item.get("url") or item["reason"])
"""
from __future__ import annotations

import codecs
import os
import re
import zlib
from typing import IO, Callable, Dict, Iterator, Optional, Tuple

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import BufferedReader
from warcio.statusandheaders import StatusAndHeadersParser

from rw_tf.data.jsonl import LoneSurrogate, loads_text
from rw_tf.data.lines import MAX_LINE_BYTES, EndlessLineError, bounded_lines, decompressed
from rw_tf.errors import CorruptFileError, UserError

Record = Tuple[str, Dict]  # ("page", page) or ("reject", reject)

DEFAULT_MAX_PAGE_BYTES = 8 * 1024 * 1024
# warcio keeps every line of a record's WARC and HTTP header blocks, as Python objects 25 times their
# size (16 MB of short header lines: 400 MB and 11 s), however many there are. Servers refuse HTTP
# headers past 8 to 64 KB; WARC headers are a few hundred bytes.
MAX_HEADER_BYTES = 1 << 20
HTML_TYPES = ("text/html", "application/xhtml+xml")
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
# HTML and JSON Lines files may be compressed (read by content: rw_tf.data.lines.decompressed).
HTML_SUFFIXES = tuple(f"{name}{packed}" for name in (".html", ".htm") for packed in ("", ".gz", ".bz2", ".xz"))
JSONL_SUFFIXES = tuple(f".jsonl{packed}" for packed in ("", ".gz", ".bz2", ".xz"))

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.I)
_CANONICAL = re.compile(r"""<link\s[^>]*rel\s*=\s*["']?canonical["']?[^>]*>""", re.I)
_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.I)
_SURROGATE = re.compile("[\ud800-\udfff]")


def file_kind(path: str) -> Optional[str]:
    name = path.lower()
    for kind, suffixes in (("warc", WARC_SUFFIXES), ("html", HTML_SUFFIXES), ("jsonl", JSONL_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def reject(record_id: str, source: str, reason: str, detail: str = "") -> Record:
    return "reject", {"id": record_id, "source": source, "stage": "read", "reason": reason, "detail": detail[:300]}


def decode_html(data: bytes, declared: Optional[str] = None) -> Optional[str]:
    """``data`` decoded with the declared charset (HTTP header), else the ``<meta>`` charset, else
    UTF-8 (a UTF-8 byte-order mark wins); None when the bytes are not valid in that encoding."""
    if data.startswith(codecs.BOM_UTF8):
        declared, data = "utf-8", data[len(codecs.BOM_UTF8):]
    if not declared:
        found = _META_CHARSET.search(data[:4096])
        declared = found.group(1).decode("ascii", "ignore") if found else None
    for encoding in ([declared] if declared else []) + ["utf-8"]:
        try:
            text = data.decode(encoding)
        except (ValueError, LookupError):   # codecs such as "undefined" and "punycode" raise a bare UnicodeError
            continue
        if not has_lone_surrogate(text):
            return text
    return None


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a UTF-16 surrogate, which no UTF-8 writer (Beam's coders included)
    can encode: a page declared as utf-7 or unicode_escape decodes ``+2AA-`` or ``\\ud800`` to one."""
    return _SURROGATE.search(text) is not None


def canonical_url(html: str) -> Optional[str]:
    tag = _CANONICAL.search(html[:65536])
    href = _HREF.search(tag.group()) if tag else None
    return href.group(1) if href else None


def _read_bounded(stream: IO[bytes], limit: int) -> Tuple[bytes, bool]:
    """At most ``limit`` bytes of ``stream`` and whether there was more."""
    data = stream.read(limit + 1)
    return data[:limit], len(data) > limit


def _charset(content_type: str) -> Optional[str]:
    found = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.I)
    return found.group(1) if found else None


class _CountingReader:
    """Counts the bytes read from a stream (to tell a clean end of an archive from a truncated one),
    and refuses a run of ``MAX_LINE_BYTES`` bytes without a line end: warcio reads a record header line
    whole however long it is (a zero-filled tail left by an interrupted copy: 16 MB took 12 s and
    250 MB of memory, 300 MB did not finish in 5 minutes). Payloads, compressed members included,
    hold a line-end byte every few hundred bytes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.count, self.max_run, self.run = stream, 0, MAX_LINE_BYTES, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        end = data.rfind(b"\n")
        self.run = len(data) - end - 1 if end >= 0 else self.run + len(data)
        if self.run > self.max_run:
            raise EndlessLineError(f"no line end in {self.run:,} bytes (at byte {self.count:,})")
        return data

    def rest(self) -> int:
        """Reads the stream to its end in chunks; returns how many bytes that was."""
        return sum(len(chunk) for chunk in iter(lambda: self.stream.read(1 << 20), b""))


class HeaderBlockTooLarge(ValueError):
    pass


class _BoundedHeaderParser(StatusAndHeadersParser):
    """warcio's header parser, refusing a header block of more than ``MAX_HEADER_BYTES``."""

    def parse(self, stream, full_statusline=None):
        return super().parse(_LimitedLines(stream, MAX_HEADER_BYTES - len(full_statusline or b"")), full_statusline)


class _LimitedLines:
    """``readline()`` of ``stream`` until ``limit`` bytes in all, then ``HeaderBlockTooLarge``."""

    def __init__(self, stream, limit: int) -> None:
        if limit < 0:   # a status line read before the parser (at most MAX_LINE_BYTES) already is too long
            raise HeaderBlockTooLarge(f"a header block of more than {MAX_HEADER_BYTES:,} bytes")
        self.stream, self.left = stream, limit

    def readline(self) -> bytes:
        parts, size = [], 0
        while not parts or not parts[-1].endswith(b"\n"):   # warcio returns less than asked at its buffer's end
            part = self.stream.readline(self.left + 1 - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
            if size > self.left:
                raise HeaderBlockTooLarge(f"a header block of more than {MAX_HEADER_BYTES:,} bytes")
        self.left -= size
        return b"".join(parts)


def content_stream(record) -> IO[bytes]:
    """``record.content_stream()`` (the HTTP body, de-chunked and decompressed as its headers say),
    de-chunked a read at a time: warcio's ``ChunkedDataReader`` holds a whole chunk (up to 2 GiB)
    and inflates it at once, so a 2 MB record of one gzip chunk took 4.9 GB. warcio's
    ``BufferedReader`` then inflates 4 KiB of input at a time (at most 4 MiB out: deflate's ratio
    stops near 1,000)."""
    headers = record.http_headers
    if not headers or not (headers.get_header("transfer-encoding") or "").strip().lower().endswith("chunked"):
        return record.content_stream()
    encoding = (headers.get_header("content-encoding") or "").strip().lower()
    stream = _Dechunked(record.raw_stream)
    if encoding not in BufferedReader.DECOMPRESSORS:
        return stream
    return BufferedReader(stream, block_size=4096, decomp_type=encoding)


class _Dechunked:
    """HTTP's chunked transfer coding removed, at most ``size`` bytes a read. From a size line that is
    not one (or a chunk not followed by CRLF) the data is passed on as it is, as warcio does: servers
    declare chunks they do not send."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.left, self.pending, self.raw, self.ended = stream, 0, b"", False, False

    def read(self, size: int = -1) -> bytes:
        want = size if size is not None and size >= 0 else 1 << 62
        out = []
        while want > 0 and not self.ended:
            if self.pending:
                piece, self.pending = self.pending[:want], self.pending[want:]
            elif self.raw or self.left:
                piece = self.stream.read(min(want, self.left) if self.left else want)
                if not piece:
                    self.ended = True
                    break
                if self.left:
                    self.left -= len(piece)
                    if not self.left:   # the CRLF that ends a chunk
                        end = self.stream.read(2)
                        self.raw, self.pending = end != b"\r\n", b"" if end == b"\r\n" else end
            else:
                line = self.stream.readline(64)
                size_field = line[:-2].split(b";")[0].strip()
                if line.endswith(b"\r\n") and re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_field):
                    self.left = int(size_field, 16)
                    self.ended = self.left == 0
                else:
                    self.raw, self.pending, self.ended = True, line, not line
                continue
            out.append(piece)
            want -= len(piece)
        return b"".join(out)


def iter_warc(stream: IO[bytes], source: str, max_page_bytes: int) -> Iterator[Record]:
    name = source
    index = -1
    counting = _CountingReader(stream)
    records = ArchiveIterator(counting, arc2warc=True)
    for attribute in ("warc_parser", "http_parser", "http_req_parser"):
        parser = getattr(records.loader, attribute)
        setattr(records.loader, attribute, _BoundedHeaderParser(parser.statuslist, parser.verify))
    # A page is yielded once warcio has read past its record: a record not followed by its blank
    # lines (err_count) ended before or after its block, and its Content-Length cut the page.
    pending: Optional[Tuple[Dict, str]] = None   # (page, its declared Content-Length)
    checked = 0
    try:
        for index, record in enumerate(records):
            if pending is not None:
                yield _settled(pending, records.err_count > checked)
                pending = None
            checked = records.err_count
            record_id = f"{name}#{index}"
            declared = (record.rec_headers.get_header("Content-Length") or "").strip()
            if not re.fullmatch(r"[0-9]{1,20}", declared):   # warcio reads "-5", "+5", "٥" or "0x20" as a length
                yield reject(record_id, source, "declared_size_mismatch", f"Content-Length {declared!r} is not a size")
                continue
            if record.rec_type != "response":
                yield reject(record_id, source, "not_a_response", record.rec_type)
                continue
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            status = record.http_headers.get_statuscode() if record.http_headers else None
            content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else "") or ""
            if status and status != "200":
                yield reject(record_id, source, "http_status", f"{status} {url}")
                continue
            if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
                yield reject(record_id, source, "not_html", f"{content_type.split(';')[0]} {url}")
                continue
            data, truncated = _read_bounded(content_stream(record), max_page_bytes)
            if truncated:
                yield reject(record_id, source, "too_large", f"more than {max_page_bytes} bytes: {url}")
                continue
            missing = getattr(record.raw_stream, "limit", 0)
            if missing > 0:   # the archive ended before the record's declared Content-Length
                yield reject(record_id, source, "declared_size_mismatch",
                             f"Content-Length {record.length}, {missing} bytes missing: {url}")
                continue
            html = decode_html(data, _charset(content_type))
            if html is None:
                yield reject(record_id, source, "undecodable", url)
                continue
            pending = {"id": record_id, "url": url, "source": source, "html": html}, declared
    except Exception as err:  # noqa: BLE001 - untrusted bytes: warcio raises many types on malformed input
        if pending is not None:
            yield _settled(pending, records.err_count > checked)
        # warcio cannot resynchronise: the rest of the file is unreadable, the records before stay.
        yield reject(f"{name}#{index + 1}", source, "corrupt_archive",
                     f"{type(err).__name__} at record {index + 1}: {' '.join(str(err).split())[:200]}")
        return
    if pending is not None:
        yield _settled(pending, records.err_count > checked)
    if index < 0 and counting.count == 0:
        yield reject(f"{name}#0", source, "empty")
        return
    # warcio ends quietly at a record cut short by the end of the file: bytes left after the last
    # complete record are that record.
    left = counting.count + counting.rest() - records.offset
    if left > 4:
        yield reject(f"{name}#{index + 1}", source, "truncated_record",
                     f"{left} bytes at record {index + 1} do not form a complete record")


def _settled(pending: Tuple[Dict, str], ended_elsewhere: bool) -> Record:
    page, length = pending
    if ended_elsewhere:
        return reject(page["id"], page["source"], "declared_size_mismatch",
                      f"Content-Length {length} does not end the record (no blank line follows): {page['url']}")
    return "page", page


def iter_html_file(stream: IO[bytes], source: str, max_page_bytes: int) -> Iterator[Record]:
    record_id = f"{source}#0"
    data, truncated = _read_bounded(stream, max_page_bytes)
    if truncated:
        yield reject(record_id, source, "too_large", f"more than {max_page_bytes} bytes")
        return
    if not data.strip():
        yield reject(record_id, source, "empty")
        return
    html = decode_html(data)
    if html is None:
        yield reject(record_id, source, "undecodable")
        return
    url = canonical_url(html) or (source if "://" in source else "file://" + os.path.abspath(source))
    yield "page", {"id": record_id, "url": url, "source": source, "html": html}


def iter_jsonl(stream: IO[bytes], source: str, max_page_bytes: int) -> Iterator[Record]:
    name = source
    rows = 0
    for number, (line, truncated) in enumerate(bounded_lines(stream, max_page_bytes, source)):
        if not truncated and not line.strip():
            continue
        rows += 1
        record_id = f"{name}#{number}"
        if truncated:
            yield reject(record_id, source, "too_large", f"line longer than {max_page_bytes} bytes")
            continue
        try:
            row = loads_text(line)
        except UnicodeDecodeError:
            yield reject(record_id, source, "undecodable")
            continue
        except LoneSurrogate as err:
            yield reject(record_id, source, "undecodable", str(err))
            continue
        except ValueError as err:
            yield reject(record_id, source, "invalid_json", str(err))
            continue
        if not isinstance(row, dict):
            yield reject(record_id, source, "invalid_json", f"a {type(row).__name__}, not an object")
            continue
        url, body = row.get("url"), row.get("html", row.get("text"))
        field = "html" if "html" in row else "text"
        if not isinstance(url, str) or not url:
            yield reject(record_id, source, "missing_field", "url")
        elif not isinstance(body, str):
            yield reject(record_id, source, "missing_field", "html or text (a string)")
        else:
            # A row's own id is kept after the file's path, so ids stay unique across input files.
            page_id = f"{source}#{row['id']}" if isinstance(row.get("id"), (str, int)) else record_id
            yield "page", {"id": page_id, "url": url, "source": source, field: body}
    if rows == 0:   # like an empty archive or page: the user named a file that holds nothing
        yield reject(f"{name}#0", source, "empty")


_READERS: Dict[str, Callable[[IO[bytes], str, int], Iterator[Record]]] = {
    "warc": iter_warc, "html": iter_html_file, "jsonl": iter_jsonl}


def iter_stream(stream: IO[bytes], source: str, max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES) -> Iterator[Record]:
    """Pages and rejects of one open file (its kind from ``source``'s name). WARC members are
    decompressed by warcio, compressed HTML and JSON Lines files here (see the module docstring):
    Python's decompressors inflate no more than each read asks for, where Beam's
    ``CompressionTypes.GZIP`` inflates 16 MiB of input at once (up to 16 GiB for a file of zeros)."""
    kind = file_kind(source)
    if kind is None:
        yield reject(f"{source}#0", source, "unsupported_file",
                     f"not one of {WARC_SUFFIXES + HTML_SUFFIXES + JSONL_SUFFIXES}")
        return
    try:
        yield from _READERS[kind](stream if kind == "warc" else decompressed(stream, source), source, max_page_bytes)
    except UserError as err:   # damaged compressed data, or compression not read (zstd, zip)
        yield reject(f"{source}#?", source, "corrupt_file" if isinstance(err, CorruptFileError) else "unsupported_file",
                     str(err))
    except (OSError, EOFError, zlib.error, EndlessLineError) as err:
        name = "zlib.error" if isinstance(err, zlib.error) else type(err).__name__   # its __name__ is "error"
        yield reject(f"{source}#?", source, "corrupt_file", f"{name}: {err}")


def iter_records(path: str, max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES) -> Iterator[Record]:
    """Pages and rejects of a local file (see the module docstring)."""
    with open(path, "rb") as raw:
        yield from iter_stream(raw, path, max_page_bytes)
