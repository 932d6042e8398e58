"""Extractive QA examples: an offline set built from the standard library's docstrings, and a reader
for user files.

The offline set ("docstring glossary"): a context is a module's glossary, one entry per public
function or class, ``"<name>: <first docstring sentence> <second sentence>"``, entries in seeded
order; the question asks what one name does (several phrasings) and the answer is that entry's
first sentence, an exact span of the context. The second sentence is there so the model must
find where the answer ends. Contexts hold ``entries_per_context`` entries and are usually longer
than one window, so sliding windows are exercised. ``group`` is the module: split by group so no
module is on both sides. This measures span extraction on real text with templated questions,
not open reading comprehension.

Row format (also of user JSON Lines): ``question``, ``context``, ``answer`` and ``answer_start``
(character offset of the answer in the context; found by search when absent).

Example:
    >>> rows = docstring_qa_examples(max_examples=5)
    >>> r = rows[0]; r["context"][r["answer_start"]:r["answer_start"] + len(r["answer"])] == r["answer"]
    True
"""
from __future__ import annotations

import ast
import collections
import random
from typing import Dict, List, Optional, Tuple

from rw_tf.data.corpus import split_sentences
from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.labelled import stdlib_definitions
from rw_tf.data.splits import text_key

QUESTION_TEMPLATES = ("What does {name} do?", "What is {name} for?", "What is the purpose of {name}?",
                      "Describe {name}.", "Explain what {name} does in {module}.")


def docstring_qa_examples(entries_per_context: int = 8, max_answer_words: int = 30,
                          max_examples: Optional[int] = None, seed: int = 12345) -> List[Dict]:
    """Returns rows ``{question, context, answer, answer_start, group}``, shuffled with ``seed``."""
    rng = random.Random(seed)
    entries: Dict[str, List[Tuple[str, List[str]]]] = collections.defaultdict(list)
    for module, name, node in stdlib_definitions():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        sentences = split_sentences(ast.get_docstring(node) or "")
        if sentences and 4 <= len(sentences[0].split()) <= max_answer_words:
            entries[module].append((name, sentences[:2]))
    rows = []
    for module in sorted(entries):
        items = entries[module]
        rng.shuffle(items)
        for lo in range(0, len(items) - 1, entries_per_context):
            chunk = items[lo:lo + entries_per_context]
            if len(chunk) < 2:
                continue
            parts, starts, offset = [], [], 0
            for name, sentences in chunk:
                head = f"{name}: "
                starts.append(offset + len(head))
                parts.append(head + " ".join(sentences))
                offset += len(parts[-1]) + 1
            context = " ".join(parts)
            for (name, sentences), start in zip(chunk, starts):
                question = rng.choice(QUESTION_TEMPLATES).format(name=name, module=module)
                rows.append({"question": question, "context": context, "answer": sentences[0],
                             "answer_start": start, "group": module})
    rng.shuffle(rows)
    return rows[:max_examples] if max_examples else rows


def read_qa_jsonl(path: str) -> Tuple[List[Dict], collections.Counter]:
    """Reads user QA rows; rejects are counted by reason (invalid JSON; a missing field, or one the
    tokenizer reads nothing of, such as an answer of NUL characters, which would train as "no
    answer"; answer not in context; ``answer_start`` that is not a character offset of the answer:
    negative offsets, which Python slicing would count from the end, and ``true`` are refused)."""
    rows, rejects = [], collections.Counter()
    for row in read_jsonl_objects(path, rejects):
        if not all(isinstance(row.get(k), str) and text_key(row[k]) for k in ("question", "context", "answer")):
            rejects["missing_field"] += 1
            continue
        start = row.get("answer_start")
        if start is None:
            start = row["context"].find(row["answer"])
            if start < 0:
                rejects["answer_not_in_context"] += 1
                continue
        elif (not isinstance(start, int) or isinstance(start, bool) or start < 0
              or row["context"][start:start + len(row["answer"])] != row["answer"]):
            rejects["answer_start_mismatch"] += 1
            continue
        rows.append({"question": row["question"], "context": row["context"], "answer": row["answer"],
                     "answer_start": start, "group": str(row.get("group", ""))})
    return rows, rejects
