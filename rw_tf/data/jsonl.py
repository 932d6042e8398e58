"""Writing corpora as JSON Lines, the input format of the TFX pipelines' ExampleGen.

Example:
    >>> write_jsonl([{"text": "a", "label": 1}], "/tmp/x.jsonl")
    1
"""
from __future__ import annotations

import collections
import json
import os
from typing import Dict, Iterable, Iterator, List, Sequence

import tensorflow as tf


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


def read_jsonl_objects(path: str, rejects: "collections.Counter") -> Iterator[Dict]:
    """Yields the JSON object of each non-blank line; a line that is not valid UTF-8 JSON holding
    an object is counted as ``rejects["invalid_json"]`` instead."""
    with tf.io.gfile.GFile(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                row = None
            if isinstance(row, dict):
                yield row
            else:
                rejects["invalid_json"] += 1
