"""SQuAD answer metrics: exact match and token-level F1 after SQuAD's answer normalization
(lower-case, drop punctuation and the articles a/an/the, collapse whitespace), as in the official
SQuAD v1.1 evaluation script.

Example:
    >>> exact_match("The Cat.", "cat"), round(token_f1("a black cat", "the cat sat"), 3)
    (1.0, 0.5)
"""
from __future__ import annotations

import collections
import re
import string

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    predicted, true = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not predicted or not true:
        return float(predicted == true)
    common = sum((collections.Counter(predicted) & collections.Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)
