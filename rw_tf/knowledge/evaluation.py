"""Link prediction with *filtered* ranks: MRR and Hits@k, for heads and tails.

For a test triple (h, r, t) every entity e is scored as (h, r, e); candidates e != t that form a
known true triple (in any split given as ``known``) are removed, and the rank of t is
1 + #{better} + #{ties}/2 (the "realistic" rank PyKEEN reports). Heads likewise.

Example:
    >>> ranks = filtered_ranks(model.distance_matrix_fn, test, known=[train, valid, test])  # doctest: +SKIP
    >>> rank_metrics(ranks)                                                                # doctest: +SKIP
    {'mrr': 0.61, 'hits@1': 0.47, 'hits@3': 0.7, 'hits@10': 0.9}
"""
from __future__ import annotations

import collections
from typing import Callable, Dict, Iterable, Sequence

import numpy as np

from rw_tf.config import checks_number_arguments

ScoreFn = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


def transe_scores(model) -> ScoreFn:
    """Distances of every entity as the missing ``side`` ("tail" or "head") for (anchor, relation)."""
    if not model.built:
        model.build()
    entities = np.asarray(model.entity_embedding.embeddings)
    relations = np.asarray(model.relation_embedding.embeddings)

    def score(anchors: np.ndarray, rels: np.ndarray, side: str) -> np.ndarray:
        target = entities[anchors] + relations[rels] if side == "tail" else entities[anchors] - relations[rels]
        diff = target[:, None, :] - entities[None, :, :]
        return np.linalg.norm(diff, ord=model.norm, axis=-1)   # [batch, num_entities], lower = better
    return score


@checks_number_arguments()
def filtered_ranks(score_fn: ScoreFn, test: np.ndarray, known: Iterable[np.ndarray],
                   batch_size: int = 256) -> np.ndarray:
    """Ranks ``[n, 2]`` (head rank, tail rank) of each test triple, filtered by ``known`` triples."""
    tails, heads = collections.defaultdict(set), collections.defaultdict(set)
    for triples in known:
        for h, r, t in np.asarray(triples):
            tails[(h, r)].add(t)
            heads[(r, t)].add(h)
    test = np.asarray(test)
    ranks = np.zeros((len(test), 2), dtype=np.float64)
    for start in range(0, len(test), batch_size):
        chunk = test[start:start + batch_size]
        for column, side in ((1, "tail"), (0, "head")):
            anchors = chunk[:, 0] if side == "tail" else chunk[:, 2]
            truth = chunk[:, 2] if side == "tail" else chunk[:, 0]
            scores = score_fn(anchors, chunk[:, 1], side).astype(np.float64)
            for i, (h, r, t) in enumerate(chunk):
                others = tails[(h, r)] if side == "tail" else heads[(r, t)]
                filtered = [e for e in others if e != truth[i]]
                row = scores[i].copy()
                row[filtered] = np.inf
                true_score = row[truth[i]]
                better = np.sum(row < true_score)
                ties = np.sum(row == true_score) - 1
                ranks[start + i, column] = 1 + better + ties / 2
    return ranks


@checks_number_arguments()
def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 3, 10)) -> Dict[str, float]:
    flat = np.asarray(ranks, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        raise ValueError("no ranks to summarize")
    metrics = {"mrr": float(np.mean(1.0 / flat))}
    metrics.update({f"hits@{k}": float(np.mean(flat <= k)) for k in ks})
    return metrics
