"""Fuzzy deduplication with MinHash and banded LSH (RefinedWeb: 5-gram shingles, 9,000 hashes per
document in 450 bands of 20), clusters resolved so that exactly one document of each survives.

- Shingles: the 5-grams of ``minhash_words`` (normalised words), each hashed to 64 bits
  (BLAKE2b); a document shorter than 5 words is one shingle.
- Signature: ``bands x rows`` hash functions h(x) = ((a x + b) mod 2^64) >> 32 with odd random
  ``a`` (multiply-shift, a universal family), minimum over the shingles: P(two signatures agree on
  a function) = the Jaccard similarity J of the shingle sets.
- LSH: two documents are candidates when all ``rows`` values of some band agree:
  P = 1 - (1 - J^rows)^bands (450 x 20: 0.995 at J = 0.8, 0.30 at J = 0.7, ~1e-4 at J = 0.5).
- Clusters: candidate pairs are edges; connected components (union-find) are the clusters; the
  document with the smallest id survives, deterministically on every runner.

In Beam (``MinHashDeduplicate``): signatures per document (parallel), band keys grouped with
GroupByKey (each bucket yields a star of edges to its smallest id), edges deduplicated, then one
union-find over the edges. Memory of that step is O(duplicate documents), not O(corpus): only
documents that share a bucket with another appear in it.

Example:
    >>> hasher = MinHasher(MinHashConfig(bands=20, rows=5))
    >>> a = hasher.signature("the cat sat on the mat and looked at the dog for a while")
    >>> b = hasher.signature("the cat sat on the mat and looked at the dog for a long while")
    >>> 0.5 < float((a == b).mean()) < 1.0
    True
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from rw_tf.config import DictConfig
from rw_tf.refine.text import minhash_words

_CHUNK_ELEMENTS = 1 << 22   # shingles x hash functions per numpy step (32 MB of uint64)
# A signature holds one uint32 per hash function and every document keeps one until its bands are
# keyed: 100,000 x 100,000 asked NumPy for 74.5 GiB in each worker (exit 1, a Beam RuntimeError).
MAX_HASH_FUNCTIONS = 1 << 16


@dataclasses.dataclass(frozen=True)
class MinHashConfig(DictConfig):
    ngram: int = 5
    bands: int = 450
    rows: int = 20
    seed: int = 1

    def validate(self) -> None:
        if self.bands * self.rows > MAX_HASH_FUNCTIONS:
            raise ValueError(f"MinHashConfig.bands x rows must be at most {MAX_HASH_FUNCTIONS:,} hash functions "
                             f"(RefinedWeb: 450 bands x 20 rows = 9,000), got {self.bands:,} x {self.rows:,}")

    def candidate_probability(self, jaccard: float) -> float:
        return 1.0 - (1.0 - jaccard ** self.rows) ** self.bands


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """Distinct 64-bit hashes of the word n-grams of ``text`` (empty when there are no words)."""
    words = minhash_words(text)
    if not words:
        return np.zeros([0], np.uint64)
    grams = {" ".join(words[i:i + ngram]) for i in range(max(1, len(words) - ngram + 1))}
    return np.fromiter((int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=8).digest(), "little")
                        for g in grams), np.uint64, len(grams))


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard similarity of the two texts' shingle sets (the quantity MinHash estimates)."""
    x, y = set(shingle_hashes(a, ngram).tolist()), set(shingle_hashes(b, ngram).tolist())
    return len(x & y) / len(x | y) if x or y else 1.0


class MinHasher:
    """Signatures and LSH band keys of a ``MinHashConfig`` (see the module docstring)."""

    def __init__(self, config: MinHashConfig = MinHashConfig()) -> None:
        self.config = config
        rng = np.random.default_rng(config.seed)
        n = config.bands * config.rows
        self.a = rng.integers(1, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)   # odd
        self.b = rng.integers(0, 2 ** 63, n, dtype=np.uint64)

    def signature_of_shingles(self, shingles: np.ndarray) -> np.ndarray:
        """uint32 [bands * rows]: the minimum of each hash function over ``shingles``."""
        n = self.a.shape[0]
        if shingles.size == 0:
            return np.full([n], np.iinfo(np.uint32).max, np.uint32)
        out = np.empty([n], np.uint32)
        step = max(1, _CHUNK_ELEMENTS // shingles.size)
        x = shingles[:, None]
        with np.errstate(over="ignore"):   # multiply-shift hashing wraps modulo 2^64 on purpose
            for start in range(0, n, step):
                h = (x * self.a[None, start:start + step] + self.b[None, start:start + step]) >> np.uint64(32)
                out[start:start + step] = h.min(axis=0)
        return out

    def signature(self, text: str) -> np.ndarray:
        return self.signature_of_shingles(shingle_hashes(text, self.config.ngram))

    def band_keys(self, signature: np.ndarray) -> List[Tuple[int, bytes]]:
        """(band index, 12-byte digest of the band's rows): equal keys = a candidate pair."""
        rows = signature.reshape(self.config.bands, self.config.rows)
        return [(band, hashlib.blake2b(rows[band].tobytes(), digest_size=12).digest())
                for band in range(self.config.bands)]

    def text_band_keys(self, text: str) -> List[Tuple[int, bytes]]:
        shingles = shingle_hashes(text, self.config.ngram)
        return [] if shingles.size == 0 else self.band_keys(self.signature_of_shingles(shingles))


def star_edges(ids: Iterable[str]) -> List[Tuple[str, str]]:
    """The documents of one bucket as edges from its smallest id to every other one."""
    distinct = sorted(set(ids))
    return [(distinct[0], other) for other in distinct[1:]]


def cluster_roots(edges: Iterable[Tuple[str, str]]) -> Dict[str, str]:
    """Union-find over ``edges``: every document in a cluster -> the cluster's smallest id."""
    parent: Dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:      # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            low, high = (ra, rb) if ra < rb else (rb, ra)
            parent[high] = low
            parent.setdefault(low, low)
    return {x: find(x) for x in list(parent)}


def duplicates_in_memory(ids: Sequence[str], texts: Sequence[str], config: MinHashConfig = MinHashConfig()
                         ) -> Dict[str, str]:
    """The same decision without Beam: duplicate id -> its survivor (for tests and benchmarks)."""
    hasher, buckets = MinHasher(config), {}
    for doc_id, text in zip(ids, texts):
        for key in hasher.text_band_keys(text):
            buckets.setdefault(key, []).append(doc_id)
    edges = {e for members in buckets.values() if len(members) > 1 for e in star_edges(members)}
    return {doc: root for doc, root in cluster_roots(edges).items() if doc != root}
