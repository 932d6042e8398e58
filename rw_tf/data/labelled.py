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

import ast
import os
import random
import sysconfig
import unicodedata
from typing import Dict, Iterator, List, Optional, Tuple

from rw_tf.data.corpus import _pydoc_topic_texts, _stdlib_docstring_texts, documents_from_texts, split_sentences
from rw_tf.data.segment_pairs import pack_segments

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def documentation_source_examples(max_per_class: Optional[int] = None, target_words: int = 25,
                                  seed: int = 12345) -> List[Dict]:
    """Returns ``[{"text": str, "label": int}, ...]``, balanced, shuffled, every text distinct."""
    classes = {1: documents_from_texts(_pydoc_topic_texts()), 0: documents_from_texts(_stdlib_docstring_texts())}
    rng = random.Random(seed)
    per_class = {}
    for label, docs in classes.items():
        # Exact duplicates (the same paragraph documented twice) would put one text on both sides
        # of a split; only the first occurrence is kept.
        segments = list(dict.fromkeys(seg for doc in docs for seg in pack_segments(doc, target_words)
                                      if len(seg.split()) >= target_words // 2))
        rng.shuffle(segments)
        per_class[label] = segments
    n = min(len(v) for v in per_class.values())
    if max_per_class is not None:
        n = min(n, max_per_class)
    rows = [{"text": text, "label": label} for label, segs in per_class.items() for text in segs[:n]]
    rng.shuffle(rows)
    return rows


# Labels of ``unicode_property_examples``, in label-id order.
UNICODE_PROPERTY_LABELS = ("letter", "mark", "number", "punctuation", "symbol", "uppercase", "right_to_left",
                           "wide", "mirrored", "decomposable")
# Name families that are numbered rather than described ("CJK UNIFIED IDEOGRAPH-4E00").
_SERIAL_NAMES = ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL SYLLABLE", "TANGUT", "KHITAN", "NUSHU",
                 "EGYPTIAN HIEROGLYPH", "CUNEIFORM", "ANATOLIAN", "BAMUM", "SIGNWRITING", "LINEAR B", "YI SYLLABLE")


def _unicode_properties(ch: str) -> List[int]:
    category = unicodedata.category(ch)
    flags = (category[0] == "L", category[0] == "M", category[0] == "N", category[0] == "P", category[0] == "S",
             category in ("Lu", "Lt"), unicodedata.bidirectional(ch) in ("R", "AL"),
             unicodedata.east_asian_width(ch) in ("W", "F"), bool(unicodedata.mirrored(ch)),
             unicodedata.decomposition(ch) != "")
    return [i for i, flag in enumerate(flags) if flag]


def unicode_property_examples(max_examples: Optional[int] = 3000, seed: int = 12345) -> List[Dict]:
    """A real multi-label set from the Unicode Character Database in Python's ``unicodedata``: a
    character's name ("ARABIC LETTER ALEF", "FULLWIDTH DIGIT ONE") labelled with its properties
    (``UNICODE_PROPERTY_LABELS``: general category class, upper case, right-to-left, East Asian
    wide, mirrored, has a decomposition). Most names have 1-3 labels. Serially numbered names are
    left out; ``max_examples`` characters are sampled with ``seed``. Rows: ``{"text", "labels"}``."""
    chars = [chr(cp) for cp in range(0x20, 0x30000)
             if unicodedata.name(chr(cp), "") and not unicodedata.name(chr(cp)).startswith(_SERIAL_NAMES)]
    rng = random.Random(seed)
    if max_examples is not None and max_examples < len(chars):
        chars = rng.sample(chars, max_examples)
    else:
        rng.shuffle(chars)
    return [{"text": unicodedata.name(ch), "labels": _unicode_properties(ch)} for ch in chars]


def stdlib_definitions() -> Iterator[Tuple[str, str, ast.AST]]:
    """``(module, qualified name, node)`` for every function and class of the standard library's
    top-level modules, in ``ast.walk`` order; files that do not parse are skipped."""
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(stdlib)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(stdlib, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        names, prefixes = {}, {tree: ""}
        for node in ast.walk(tree):  # breadth first: a parent's prefix is known before its children
            if isinstance(node, _DEFINITIONS):
                yield name[:-3], names[node], node
            for child in ast.iter_child_nodes(node):
                if isinstance(child, _DEFINITIONS):
                    names[child] = prefixes[node] + child.name
                    prefixes[child] = names[child] + "."
                else:
                    prefixes[child] = prefixes[node]


def docstring_summary_pairs(max_pairs: Optional[int] = None, max_item_words: int = 60,
                            seed: int = 12345) -> List[Dict]:
    """Retrieval pairs from standard-library docstrings: ``query`` = a function's or class's first
    sentence, ``item`` = the rest of its docstring (at most ``max_item_words`` words), ``group`` = the
    module (split train/eval by group so no module is on both sides). Duplicate queries are dropped."""
    pairs, seen = [], set()
    for module, _, node in stdlib_definitions():
        sentences = split_sentences(ast.get_docstring(node) or "")
        if len(sentences) < 2 or sentences[0] in seen:
            continue
        seen.add(sentences[0])
        item = " ".join(" ".join(sentences[1:]).split()[:max_item_words])
        pairs.append({"query": sentences[0], "item": item, "group": module})
    random.Random(seed).shuffle(pairs)
    return pairs[:max_pairs] if max_pairs else pairs
