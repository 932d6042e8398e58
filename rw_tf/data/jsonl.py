"""Writing corpora as JSON Lines, the input format of the TFX pipelines' ExampleGen.

Example:
    >>> write_jsonl([{"text": "a", "label": 1}], "/tmp/x.jsonl")
    1
"""
from __future__ import annotations

import collections
import json
import os
import re
from typing import Any, Dict, Iterable, Iterator, List, Sequence

import tensorflow as tf

from rw_tf.data.lines import bounded_lines, open_input


def write_jsonl(rows: Iterable[Dict], path: str) -> int:
    """Writes one JSON object per line (UTF-8) to a local path or a URI (gs://...); returns the count."""
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    count = 0
    with tf.io.gfile.GFile(path, "w") as f:
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
    Raises ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``ValueError`` for invalid JSON."""
    value = json.loads(raw.decode("utf-8"))
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
    """Yields the JSON object of each non-blank line; a line that is not valid UTF-8 JSON holding
    an object is counted as ``rejects["invalid_json"]`` instead, one whose strings escape a lone
    surrogate as ``rejects["lone_surrogate"]``, one longer than ``MAX_LINE_BYTES`` as
    ``rejects["line_too_long"]`` (read no further than that)."""
    with open_input(path) as f:
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
            except (UnicodeDecodeError, ValueError):
                row = None
            if isinstance(row, dict):
                yield row
            else:
                rejects["invalid_json"] += 1
