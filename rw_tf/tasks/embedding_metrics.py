"""Sentence-embedding metrics: Spearman against human judgements, alignment and uniformity.

Alignment and uniformity are Wang and Isola (2020)'s: for unit vectors f,
alignment = E_{positive pairs} ||f(x) - f(y)||^2 (lower: positives closer) and
uniformity = log E_{all pairs} exp(-2 ||f(x) - f(y)||^2) (lower: spread more evenly).

Example:
    >>> import numpy as np
    >>> round(alignment(np.eye(3), np.eye(3)), 3)
    0.0
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import numpy as np
from scipy import stats

from rw_tf.data.similarity_judgements import lee_similarity_pairs


def alignment(anchors: np.ndarray, positives: np.ndarray) -> float:
    return float(np.mean(np.sum((anchors - positives) ** 2, axis=1)))


def uniformity(vectors: np.ndarray) -> float:
    squared = np.maximum(2.0 - 2.0 * vectors @ vectors.T, 0.0)   # ||x - y||^2 of unit vectors
    i, j = np.triu_indices(len(vectors), k=1)
    return float(np.log(np.mean(np.exp(-2.0 * squared[i, j]))))


def spearman_on_pairs(vectors: np.ndarray, pairs: np.ndarray, human: np.ndarray) -> float:
    """Spearman correlation between cosine similarities of the pairs and the human scores."""
    cosine = np.sum(vectors[pairs[:, 0]] * vectors[pairs[:, 1]], axis=1)
    return float(stats.spearmanr(cosine, human).correlation)


def lee_spearman(embed: Callable[[Sequence[str]], np.ndarray]) -> float:
    """Spearman on the Lee corpus's 1,225 pairs; ``embed`` maps texts to unit vectors."""
    documents, pairs, human = lee_similarity_pairs()
    return spearman_on_pairs(embed(documents), pairs, human)


def pair_metrics(queries: np.ndarray, items: np.ndarray) -> Dict[str, float]:
    """Alignment of held-out (query, item) pairs and uniformity of all their vectors."""
    return {"alignment": alignment(queries, items), "uniformity": uniformity(np.concatenate([queries, items]))}
