"""Temperature scaling (Guo et al., 2017): one scalar T fitted on held-out logits by minimizing NLL.

Single-label logits use the softmax; with ``multi_label=True`` the logits are independent sigmoids
(labels are a 0/1 matrix) and NLL / ECE are taken over every (example, label) decision.

Example:
    >>> t = fit_temperature(np.array([[4.0, 0.0], [3.0, 0.0]]), np.array([1, 0]))
    >>> t > 1.0      # over-confident logits get a temperature above 1
    True
"""
from __future__ import annotations

import numpy as np


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float, multi_label: bool = False) -> float:
    logits = np.asarray(logits, np.float64)  # in float32, 1 - 1e-12 rounds to 1 and log(1 - p) to -inf
    if multi_label:
        probs = np.clip(_sigmoid(logits / temperature), 1e-12, 1 - 1e-12)
        return float(-np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs)))
    probs = _softmax(logits / temperature)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, multi_label: bool = False) -> float:
    """Golden-section search of log T in [-3, 3] (NLL is unimodal in T for fixed logits)."""
    lo, hi = -3.0, 3.0
    ratio = (5 ** 0.5 - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(logits, labels, np.exp(a), multi_label) < nll(logits, labels, np.exp(b), multi_label):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                               bins: int = 10, multi_label: bool = False) -> float:
    logits = np.asarray(logits, np.float64)
    if multi_label:
        probs = _sigmoid(logits / temperature).reshape(-1)
        confidence = np.maximum(probs, 1 - probs)
        correct = ((probs > 0.5) == (labels.reshape(-1) > 0.5)).astype(np.float64)
    else:
        probs = _softmax(logits / temperature)
        confidence, predicted = probs.max(axis=-1), probs.argmax(axis=-1)
        correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)  # binary confidences start at 0.5
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
