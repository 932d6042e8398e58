"""Documents -> candidate segment pairs (plain Python, run once per corpus, before TF).

A *segment* is a run of consecutive sentences of one document holding at least
``target_words`` words (the last one of a document may be shorter); words are whitespace words,
and in scripts written without spaces (Chinese, Japanese) each character counts as one, as the
tokenizer splits them. Every two
consecutive segments of a document form a candidate ``(text_a, text_b)``; ``text_random`` is a
segment drawn (seeded) from a *different* document. Which of ``text_b``/``text_random`` becomes
the second segment, and whether the two are swapped, is decided later, per example, by TF ops
(``rw_tf.data.masking``), so the same decision is made in tf.data and in tf.Transform.

Example:
    >>> docs = [["A b c.", "D e f."], ["G h i.", "J k l."]]
    >>> pairs = segment_pair_candidates(docs, target_words=1, seed=0)
    >>> pairs["text_a"], pairs["text_b"]
    (['A b c.', 'G h i.'], ['D e f.', 'J k l.'])
"""
from __future__ import annotations

import random
import re
from typing import Dict, List, Sequence

# CJK ideographs (and extension A, compatibility), hiragana and katakana: written without spaces.
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def word_count(text: str) -> int:
    """Whitespace words, with every character of an unspaced script (Chinese, Japanese) as one word."""
    return len(_UNSPACED.sub(" ", text).split()) + len(_UNSPACED.findall(text))


def pack_segments(sentences: Sequence[str], target_words: int) -> List[str]:
    """Greedily joins consecutive sentences until each segment has >= ``target_words`` words."""
    segments, current, words = [], [], 0
    for sentence in sentences:
        current.append(sentence)
        words += word_count(sentence)
        if words >= target_words:
            segments.append(" ".join(current))
            current, words = [], 0
    if current:
        segments.append(" ".join(current))
    return segments


def yields_pairs(sentences: Sequence[str], target_words: int) -> bool:
    """Whether a document has the two segments of ``target_words`` that a pair needs."""
    return len(pack_segments(sentences, target_words)) >= 2


def segment_pair_candidates(documents: Sequence[Sequence[str]], target_words: int = 40,
                            seed: int = 12345) -> Dict[str, List]:
    """Builds the columns ``text_a``, ``text_b``, ``text_random`` and ``doc_id`` (lists)."""
    if target_words < 1:
        raise ValueError("target_words must be >= 1")
    segmented = [pack_segments(doc, target_words) for doc in documents]
    usable = [i for i, segs in enumerate(segmented) if len(segs) >= 2]
    if len(usable) < 2:
        raise ValueError(
            f"need at least two documents with two or more segments to build sentence pairs, "
            f"got {len(usable)} (of {len(documents)} documents; lower target_words?)")
    rng = random.Random(seed)
    columns: Dict[str, List] = {"text_a": [], "text_b": [], "text_random": [], "doc_id": []}
    for doc_id in usable:
        segs = segmented[doc_id]
        for i in range(len(segs) - 1):
            other = doc_id
            while other == doc_id:
                other = rng.choice(usable)
            columns["text_a"].append(segs[i])
            columns["text_b"].append(segs[i + 1])
            columns["text_random"].append(rng.choice(segmented[other]))
            columns["doc_id"].append(doc_id)
    return columns
