"""Multi-label scores (scikit-learn) and the per-label majority baseline.

Example:
    >>> truth = np.array([[1, 0], [1, 1], [0, 0]])
    >>> multi_label_scores(np.array([[1, 0], [1, 0], [0, 0]]), truth)["subset_accuracy"]
    0.6666666666666666
    >>> majority_label_sets(truth, 2).tolist()
    [[1, 0], [1, 0]]
"""
from __future__ import annotations

from typing import Dict, List, Union

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def multi_label_scores(predicted: np.ndarray, truth: np.ndarray) -> Dict[str, Union[float, List[float]]]:
    """Micro/macro F1, per-label F1 and subset (exact set) accuracy of 0/1 label matrices."""
    predicted, truth = np.asarray(predicted).astype(int), np.asarray(truth).astype(int)
    return {"micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
            "per_label_f1": [float(v) for v in f1_score(truth, predicted, average=None, zero_division=0)],
            "subset_accuracy": float(accuracy_score(truth, predicted))}


def majority_label_sets(train_targets: np.ndarray, rows: int) -> np.ndarray:
    """Predicts every label that is on in more than half of the training rows, for ``rows`` rows."""
    majority = (np.asarray(train_targets).mean(axis=0) > 0.5).astype(int)
    return np.tile(majority, (rows, 1))
