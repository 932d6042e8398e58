"""Train/eval splits that keep related rows on one side, and never share text between the sides.

``split_by_group`` keeps a group (a module, a source) on one side; ``drop_eval_rows_seen_in_training``
then removes the evaluation rows that repeat a training text anyway (the same row under two groups,
or given in both of a user's ``--train`` and ``--eval`` files: counted as ``eval_text_in_train``);
``split_documents`` removes repeated sentences before it holds out whole documents, so nothing built
from the held-out documents (segment pairs) contains a sentence seen in training. "The same text"
is ``text_key``: what the uncased WordPiece tokenizer would read, whatever the case, accents,
spacing or invisible characters of the copy.

Example:
    >>> rows = [{"group": g, "i": i} for i, g in enumerate("aabbccddee")]
    >>> train, evaluation = split_by_group(rows)
    >>> sorted({r["group"] for r in evaluation})
    ['a']
"""
from __future__ import annotations

import random
import unicodedata
from typing import Callable, Dict, Iterable, List, MutableMapping, Optional, Sequence, Tuple

from rw_tf.data.corpus import MIN_DOCUMENTS, Document


class _UnreadCharacters(dict):
    """``str.translate`` table that deletes what ``text_key`` ignores, filled on first sight of each
    character: white space, the combining marks that accent stripping removes, and the control,
    format and private-use characters the tokenizer drops."""

    def __missing__(self, code: int) -> Optional[int]:
        char = chr(code)
        category = unicodedata.category(char)
        self[code] = None if category == "Mn" or category[0] == "C" or char.isspace() else code
        return self[code]


_UNREAD = _UnreadCharacters()


def text_key(text: str) -> str:
    """What two texts must share to count as the same text across splits: the characters the
    uncased tokenizer reads (``WordPieceTokenizer(lower_case=True)``, the default), white space
    aside. A copy that differs only in case, accents, spacing (of punctuation, or in Chinese and
    Japanese, which need none), zero-width or other invisible characters, or Unicode compatibility
    forms (full-width letters, ligatures, NFC/NFD) is the same text; punctuation itself counts:
    "the cat sat." is not "the cat sat"."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    return text.translate(_UNREAD)


def deduplicate_sentences(docs: Sequence[Document], seen: Optional[set] = None
                          ) -> Tuple[List[Document], Dict[str, int]]:
    """Removes every repeat of a sentence, by ``text_key`` (the first occurrence stays; ``seen``
    holds the keys of the sentences already kept elsewhere and is added to), then documents left
    with fewer than two sentences; returns the documents and the counts removed by reason."""
    seen = set() if seen is None else seen
    kept: List[Document] = []
    counts = {"duplicate_sentences": 0, "documents_without_two_sentences": 0}
    for doc in docs:
        unique = []
        for sentence in doc:
            key = text_key(sentence)
            if key not in seen:
                seen.add(key)
                unique.append(sentence)
        counts["duplicate_sentences"] += len(doc) - len(unique)
        if len(unique) >= 2:
            kept.append(unique)
        else:
            counts["documents_without_two_sentences"] += 1
    return kept, counts


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


def drop_eval_rows_seen_in_training(train: Sequence[Dict], evaluation: Sequence[Dict], fields: Iterable[str],
                                    rejects: MutableMapping[str, int], reason: str = "eval_text_in_train"
                                    ) -> List[Dict]:
    """The evaluation rows none of whose text ``fields`` repeats a training text (in any of those
    fields, compared by ``text_key``); the others are counted in ``rejects[reason]``."""
    fields = tuple(fields)
    seen = {text_key(row[f]) for row in train for f in fields if isinstance(row.get(f), str)}
    kept = [row for row in evaluation
            if not any(isinstance(row.get(f), str) and text_key(row[f]) in seen for f in fields)]
    if len(kept) < len(evaluation):
        rejects[reason] = rejects.get(reason, 0) + len(evaluation) - len(kept)
    return kept


def split_documents(docs: Sequence[Document], eval_fraction: float, seed: int, seen: Optional[set] = None,
                    usable: Callable[[Document], bool] = lambda doc: True
                    ) -> Tuple[List[Document], List[Document], Dict[str, int]]:
    """Removes repeated sentences (``deduplicate_sentences``; ``seen`` carries the sentences of
    earlier calls, e.g. other languages), then holds out whole documents for evaluation, chosen
    with ``seed``: ``eval_fraction`` of them, and more if needed for two that are ``usable`` (e.g.
    long enough for a segment pair once shortened by the removal). Returns train, eval and the
    counts removed."""
    docs, removed = deduplicate_sentences(docs, seen)
    if len(docs) < MIN_DOCUMENTS:
        raise ValueError(f"{len(docs)} documents keep two sentences once repeated sentences are removed "
                         f"({removed}); need at least {MIN_DOCUMENTS} to hold out whole documents")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    wanted, eval_ids, usable_held_out = max(2, int(round(len(docs) * eval_fraction))), set(), 0
    for i in order[:-2]:   # two documents stay in training whatever they are
        if len(eval_ids) >= wanted and usable_held_out >= 2:
            break
        eval_ids.add(i)
        usable_held_out += bool(usable(docs[i]))
    train = [d for i, d in enumerate(docs) if i not in eval_ids]
    return train, [d for i, d in enumerate(docs) if i in eval_ids], removed
