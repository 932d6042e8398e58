"""Exact substring deduplication: every span of more than ``max_shared_tokens`` (RefinedWeb: 50)
consecutive tokens that occurs earlier in the corpus is cut out, so one copy survives.

Tokens are ``token_spans`` (runs of word characters and runs of punctuation). A span longer than
``k = max_shared_tokens`` tokens repeats iff one of its windows of ``k + 1`` tokens does, so the
method is exact over windows: every window is keyed by a 128-bit BLAKE2b digest of its token
hashes (a collision between different windows has probability about 2^-128 per pair), occurrences
are grouped by key (a GroupByKey: it shards across workers like the suffix-array method's
partitions), the first occurrence in (document id, position) order is kept and every later one is
marked. The tokens covered by marked windows are removed from their documents; documents left with
no text are dropped. This equals the suffix-array method of Lee et al. (2022) when that method
keeps one copy of each repeated span (their tool strikes every copy; the first is kept here, so
no text disappears from the corpus entirely).

Example:
    >>> shared = " ".join(f"w{i}" for i in range(60))
    >>> docs = {"a": "intro " + shared, "b": shared + " outro"}
    >>> marks = marked_windows_in_memory(docs, max_shared_tokens=50)
    >>> remove_marked(docs["b"], marks["b"], 51)
    'outro'
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Dict, Iterable, Iterator, List, Set, Tuple

import numpy as np

from rw_tf.config import DictConfig
from rw_tf.refine.text import token_spans

_SPACES = re.compile(r"[ \t]{2,}")
_LINE_EDGES = re.compile(r"[ \t]*\n[ \t]*")


@dataclasses.dataclass(frozen=True)
class ExactSubstringConfig(DictConfig):
    max_shared_tokens: int = 50    # spans longer than this that occur earlier are removed

    @property
    def window(self) -> int:
        return self.max_shared_tokens + 1


def _token_ids(text: str, spans: List[Tuple[int, int]]) -> np.ndarray:
    cache: Dict[str, int] = {}
    ids = np.empty([len(spans)], np.uint64)
    for i, (start, end) in enumerate(spans):
        token = text[start:end]
        value = cache.get(token)
        if value is None:
            value = cache[token] = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(),
                                                  "little")
        ids[i] = value
    return ids


def window_keys(text: str, window: int) -> Iterator[Tuple[bytes, int]]:
    """(128-bit key, start token index) of every window of ``window`` tokens."""
    ids = _token_ids(text, token_spans(text))
    raw = ids.tobytes()
    for start in range(len(ids) - window + 1):
        yield hashlib.blake2b(raw[8 * start:8 * (start + window)], digest_size=16).digest(), start


def later_occurrences(occurrences: Iterable[Tuple[str, int]]) -> Iterator[Tuple[str, int]]:
    """Every occurrence but the first in (document id, position) order. Two passes over a
    re-iterable (Beam's grouped values), so memory stays O(1) however common the window is."""
    first = min(occurrences)
    for occurrence in occurrences:
        if occurrence != first:
            yield occurrence


def remove_marked(text: str, starts: Iterable[int], window: int) -> str:
    """``text`` without the tokens of the windows starting at ``starts``. A removed run that was a
    whole line disappears with its line; otherwise it becomes one space, or one newline if it
    spanned a line break."""
    spans = token_spans(text)
    removed = np.zeros([len(spans)], bool)
    for start in starts:
        removed[start:start + window] = True
    pieces, cursor, i = [], 0, 0
    while i < len(spans):
        if not removed[i]:
            i += 1
            continue
        j = i
        while j < len(spans) and removed[j]:
            j += 1
        run_start, run_end = spans[i][0], spans[j - 1][1]
        left, right = text[cursor:run_start], text[run_end:]
        line_starts = not left.rstrip(" \t") or left.rstrip(" \t").endswith("\n")
        line_ends = not right.strip(" \t") or right.lstrip(" \t").startswith("\n")
        if line_starts and line_ends:
            pieces.append(left)
            run_end += len(right) - len(right.lstrip(" \t")) + (1 if right.lstrip(" \t") else 0)
        else:
            pieces += [left, "\n" if "\n" in text[run_start:run_end] else " "]
        cursor, i = run_end, j
    pieces.append(text[cursor:])
    return _SPACES.sub(" ", _LINE_EDGES.sub("\n", "".join(pieces))).strip()


def marked_windows_in_memory(texts: Dict[str, str], max_shared_tokens: int = 50) -> Dict[str, Set[int]]:
    """The same marking without Beam (tests, benchmarks): document id -> marked window starts."""
    window = max_shared_tokens + 1
    groups: Dict[bytes, List[Tuple[str, int]]] = {}
    for doc_id, text in texts.items():
        for key, start in window_keys(text, window):
            groups.setdefault(key, []).append((doc_id, start))
    marks: Dict[str, Set[int]] = {}
    for occurrences in groups.values():
        if len(occurrences) > 1:
            for doc_id, start in later_occurrences(occurrences):
                marks.setdefault(doc_id, set()).add(start)
    return marks
