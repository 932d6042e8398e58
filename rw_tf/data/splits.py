"""Train/eval splits that keep related rows on one side.

Example:
    >>> rows = [{"group": g, "i": i} for i, g in enumerate("aabbccddee")]
    >>> train, evaluation = split_by_group(rows)
    >>> sorted({r["group"] for r in evaluation})
    ['a']
"""
from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple, TypeVar

T = TypeVar("T")


def split_by_group(rows: List[Dict], eval_fraction: float = 0.2) -> Tuple[List[Dict], List[Dict]]:
    """Every ``round(1 / eval_fraction)``-th group (sorted by name) goes to eval, the rest to train.
    With a single group (e.g. rows without one) the last ``eval_fraction`` of the rows is the eval set."""
    groups = sorted({r.get("group", "") for r in rows})
    if len(groups) < 2:
        cut = len(rows) - max(1, int(round(eval_fraction * len(rows)))) if len(rows) > 1 else len(rows)
        return rows[:cut], rows[cut:]
    eval_groups = set(groups[::max(1, int(round(1 / eval_fraction)))])
    train = [r for r in rows if r.get("group", "") not in eval_groups]
    evaluation = [r for r in rows if r.get("group", "") in eval_groups]
    return train, evaluation


def split_documents(docs: Sequence[T], eval_fraction: float, seed: int) -> Tuple[List[T], List[T]]:
    """Holds out whole documents (at least two) for evaluation, chosen with ``seed``: anything built
    from them later (segment pairs) never shares a document with training."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    eval_ids = set(order[:max(2, int(round(len(docs) * eval_fraction)))])
    return ([d for i, d in enumerate(docs) if i not in eval_ids], [d for i, d in enumerate(docs) if i in eval_ids])
