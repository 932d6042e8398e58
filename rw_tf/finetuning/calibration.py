"""Temperature scaling (Guo et al., 2017): one scalar T fitted on held-out logits by minimizing NLL.

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


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = _softmax(logits / temperature)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Golden-section search of log T in [-3, 3] (NLL is unimodal in T for fixed logits)."""
    lo, hi = -3.0, 3.0
    ratio = (5 ** 0.5 - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(logits, labels, np.exp(a)) < nll(logits, labels, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                               bins: int = 10) -> float:
    probs = _softmax(logits / temperature)
    confidence, predicted = probs.max(axis=-1), probs.argmax(axis=-1)
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
