"""A real labelled text set that ships with Python: which part of the documentation a passage is from.

Label 1: the passage is from the language reference (``pydoc_data.topics``); label 0: from a
standard-library module's docstrings. Passages are segments of about ``target_words`` words
(``pack_segments``), classes are balanced by down-sampling the larger one, order is seeded.

Example:
    >>> rows = documentation_source_examples(max_per_class=50)
    >>> sorted({r["label"] for r in rows}), len(rows)
    ([0, 1], 100)
"""
from __future__ import annotations

import random
from typing import Dict, List, Optional

from rw_tf.data.corpus import documents_from_texts, _pydoc_topic_texts, _stdlib_docstring_texts
from rw_tf.data.segment_pairs import pack_segments


def documentation_source_examples(max_per_class: Optional[int] = None, target_words: int = 25,
                                  seed: int = 12345) -> List[Dict]:
    """Returns ``[{"text": str, "label": int}, ...]``, balanced and shuffled."""
    classes = {1: documents_from_texts(_pydoc_topic_texts()), 0: documents_from_texts(_stdlib_docstring_texts())}
    rng = random.Random(seed)
    per_class = {}
    for label, docs in classes.items():
        segments = [seg for doc in docs for seg in pack_segments(doc, target_words)
                    if len(seg.split()) >= target_words // 2]
        rng.shuffle(segments)
        per_class[label] = segments
    n = min(len(v) for v in per_class.values())
    if max_per_class is not None:
        n = min(n, max_per_class)
    rows = [{"text": text, "label": label} for label, segs in per_class.items() for text in segs[:n]]
    rng.shuffle(rows)
    return rows


def docstring_summary_pairs(max_pairs: Optional[int] = None, max_item_words: int = 60,
                            seed: int = 12345) -> List[Dict]:
    """Retrieval pairs from standard-library docstrings: ``query`` = a function's or class's first
    sentence, ``item`` = the rest of its docstring (at most ``max_item_words`` words), ``group`` = the
    module (split train/eval by group so no module is on both sides). Duplicate queries are dropped."""
    import ast
    import os
    import sysconfig

    from rw_tf.data.corpus import split_sentences

    stdlib = sysconfig.get_paths()["stdlib"]
    pairs, seen = [], set()
    for name in sorted(os.listdir(stdlib)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(stdlib, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                sentences = split_sentences(ast.get_docstring(node) or "")
                if len(sentences) < 2 or sentences[0] in seen:
                    continue
                seen.add(sentences[0])
                item = " ".join(" ".join(sentences[1:]).split()[:max_item_words])
                pairs.append({"query": sentences[0], "item": item, "group": name[:-3]})
    random.Random(seed).shuffle(pairs)
    return pairs[:max_pairs] if max_pairs else pairs
