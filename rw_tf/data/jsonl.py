"""JSON Lines: writing corpora (the input format of the TFX pipelines' ExampleGen), reading them
strictly, and JSON objects as ``tf.train.Example`` (the ExampleGen's rows, TF Serving's REST
``:classify`` examples, the client's dicts).

Example:
    >>> write_jsonl([{"text": "a", "label": 1}], "/tmp/x.jsonl")
    1
    >>> example_from_json({"text": "a", "label": 0}).features.feature["label"].int64_list.value
    [0]
"""
from __future__ import annotations

import base64
import binascii
import collections
import json
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import tensorflow as tf

from rw_tf.atomic_write import atomic_write
from rw_tf.data.lines import BYTE_ORDER_MARK, bounded_lines, open_input


def write_jsonl(rows: Iterable[Dict], path: str) -> int:
    """Writes one JSON object per line (UTF-8) to a local path or a URI (gs://...); returns the count."""
    count = 0
    with atomic_write(path) as f:   # whole or not at all: readers take an existing file for done
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def columns_to_rows(columns: Dict[str, Sequence]) -> List[Dict]:
    """Column dict (as from ``segment_pair_candidates``) -> list of row dicts."""
    keys = list(columns)
    return [dict(zip(keys, values)) for values in zip(*(columns[k] for k in keys))]


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class LoneSurrogate(ValueError):
    """JSON whose string escapes a lone surrogate (``"\\ud800"``): Python decodes it, no UTF-8 encodes it."""


def loads_text(raw: bytes) -> Any:
    """``json.loads`` of UTF-8 bytes that also refuses lone surrogates (``LoneSurrogate``), which
    would otherwise fail later in TensorFlow or in any UTF-8 writer, far from the line that held them.
    Raises ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``ValueError`` for invalid JSON,
    including JSON nested deeper than Python's decoder can follow (``"[[[...]]]"``: its
    ``RecursionError`` is not a ``ValueError``, so every reader would crash on the line). A leading
    UTF-8 byte order mark (Windows editors write one at the start of a file) is skipped: it is not
    part of the JSON, and the first row of such a file was rejected."""
    raw = raw[len(BYTE_ORDER_MARK):] if raw.startswith(BYTE_ORDER_MARK) else raw
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to decode") from None
    # Only an escape in U+D800-U+DFFF can produce a surrogate from valid UTF-8; escaped text such as
    # "\\u00e9" (common in crawled JSON) skips the re-encoding.
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as err:
            raise LoneSurrogate(f"a string escapes the lone surrogate {err.object[err.start]!r}, "
                                "which is not valid Unicode text") from None
    return value


def read_jsonl_objects(path: str, rejects: "collections.Counter") -> Iterator[Dict]:
    """Yields the JSON object of each non-blank line; a line that is not UTF-8 is counted as
    ``rejects["invalid_utf8"]`` instead, one that is not JSON holding an object as
    ``rejects["invalid_json"]``, one whose strings escape a lone surrogate as
    ``rejects["lone_surrogate"]``, one longer than ``MAX_LINE_BYTES`` as ``rejects["line_too_long"]``
    (read no further than that)."""
    with open_input(path, decompress=True) as f:
        for raw, too_long in bounded_lines(f, source=path):
            if too_long:
                rejects["line_too_long"] += 1
                continue
            if not raw.strip():
                continue
            try:
                row = loads_text(raw)
            except LoneSurrogate:
                rejects["lone_surrogate"] += 1
                continue
            except UnicodeDecodeError:   # a ValueError too: caught first
                rejects["invalid_utf8"] += 1
                continue
            except ValueError:
                row = None
            if isinstance(row, dict):
                yield row
            else:
                rejects["invalid_json"] += 1


def _binary(value: Any) -> Optional[bytes]:
    """The bytes of ``bytes`` or of a ``{"b64": "..."}`` value (TF Serving's REST convention), else None."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise ValueError("a {\"b64\": ...} value is not valid base64") from None
    return None


def _feature(key: str, value: Any) -> tf.train.Feature:
    values = value if isinstance(value, (list, tuple)) else [value]
    if value is None or not values:
        return tf.train.Feature()
    binary = [_binary(v) for v in values]
    if all(b is not None for b in binary):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=binary))
    if all(isinstance(v, str) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
    if all(isinstance(v, (bool, int)) for v in values):
        if not all(-2 ** 63 <= v < 2 ** 63 for v in values):
            raise ValueError(f"feature {key!r}: an integer outside int64")
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (bool, int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    raise TypeError(f"feature {key!r}: unsupported or mixed value types {sorted({type(v).__name__ for v in values})}")


def example_from_json(record: Mapping[str, Any]) -> tf.train.Example:
    """A JSON object (or a dict of Python values) -> ``tf.train.Example``, a feature per key by the
    type of its value: str -> bytes (UTF-8), ``bytes`` or ``{"b64": "..."}`` -> the bytes (binary
    data such as images, TF Serving's REST convention), bool/int -> int64, float (or numbers mixed
    with floats) -> float, lists of one type likewise, ``null`` or ``[]`` -> an empty feature.
    Unlike ``tfx...utils.dict_to_example``, 0 and "" are values (that helper treats every falsy value
    as missing, which would erase label 0). Other values (objects, nested or mixed lists) are a
    ``TypeError``; invalid base64 and integers outside int64 a ``ValueError``."""
    return tf.train.Example(features=tf.train.Features(
        feature={str(k): _feature(k, v) for k, v in record.items()}))
