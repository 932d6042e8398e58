"""The embedded default corpus and the rule that splits text into documents and sentences.

The default corpus is real English prose that ships with every CPython, so it needs no download:
1. every topic of ``pydoc_data.topics`` (the language reference behind ``help()``) is a document;
2. every standard-library module's docstrings (module, classes, functions; read with ``ast``,
   never imported) form one document per module, in sorted path order.

Splitting rule (``split_sentences``), language-independent: text is cut into paragraphs at blank
lines; paragraphs that look like code (indented by 3+ spaces, ``>>>`` prompts, grammar rules with
``::=``) or like reStructuredText underlines are dropped; whitespace is collapsed; a paragraph is
cut into sentences
- after ``.``, ``!``, ``?``, ``…``, ``؟`` (Arabic), ``।`` (Devanagari) followed by whitespace and a
  sentence start: an upper-case letter of any script (``É``, ``Д``, ``Ω``), a letter of a script
  without case (Chinese, Japanese, Arabic, Hebrew, Devanagari, ...), a digit, or an opening quote
  or bracket (``"``, ``«``, ``„``, ``“``, ``¿``, ``¡``, ``(``, ...); a lower-case letter continues
  the sentence (abbreviations such as "e.g. the");
- after the full-width ``。``, ``！``, ``？`` (Chinese and Japanese write no space after them).
Sentences shorter than ``min_sentence_chars`` are dropped, counting East Asian wide characters
as two (a Chinese sentence says in 10 characters what an English one says in 20), and documents
with fewer than two sentences are dropped (they cannot form a sentence pair). Every drop is
counted by reason in ``counts`` when one is passed (``SplitCounts``): code or markup paragraphs,
short sentences, documents with fewer than two sentences, and (text files) invalid UTF-8 bytes.

Example:
    >>> from rw_tf.data.corpus import embedded_corpus
    >>> docs = embedded_corpus(max_documents=5)
    >>> len(docs), isinstance(docs[0][0], str)
    (5, True)
"""
from __future__ import annotations

import ast
import collections
import os
import re
import sysconfig
import unicodedata
from typing import Iterable, Iterator, List, Optional, Sequence

import tensorflow as tf

from rw_tf.data.lines import read_bounded
from rw_tf.path_checks import PATTERN_CHARACTERS, require_utf8_paths

Document = List[str]
MAX_CORPUS_BYTES = 1 << 30   # pretraining holds its documents, and the pairs made of them, in memory

_SENTENCE_END = re.compile(r"(?<=[.!?…؟।])\s+(?=\S)|(?<=[。！？])\s*(?=\S)")
_OPENERS = set("\"'([{«‹„“‘‚「『【《〈¿¡")
_UNDERLINE = re.compile(r"^\s*([*=\-~^#+])\1{2,}\s*$")
_CODE_MARKERS = (">>>", "...", "::=")


def _is_code_or_markup(paragraph: str) -> bool:
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if not lines:
        return True
    if all(line.startswith("   ") for line in lines):
        return True
    return any(line.lstrip().startswith(_CODE_MARKERS) or "::=" in line for line in lines)


SplitCounts = collections.Counter   # drops by reason: code_or_markup_paragraphs, short_sentences, ...


def describe_drops(counts: SplitCounts) -> str:
    """``"short_sentences 3, documents_with_fewer_than_two_sentences 1"`` (or ``"nothing dropped"``)."""
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()) if n) or "nothing dropped"


# Documents a corpus needs: whole documents are held out for evaluation, two or more on each side.
MIN_DOCUMENTS = 4


def check_enough_documents(docs: Sequence[Document], counts: SplitCounts, needed: int = MIN_DOCUMENTS) -> None:
    """Refuses a corpus of fewer than ``needed`` documents of two or more sentences, saying what
    reading dropped (an empty or binary file gives none: the count of invalid UTF-8 shows why)."""
    if len(docs) < needed:
        raise ValueError(f"the corpus has {len(docs)} usable documents (>= 2 sentences each); need at least "
                         f"{needed} (dropped: {describe_drops(counts)})")


def _starts_sentence(char: str) -> bool:
    """Upper-case letter of any script, a letter of a caseless script, a digit or an opener."""
    if char.isupper() or char.isdigit() or char in _OPENERS:
        return True
    return char.isalpha() and not char.islower()


def display_width(text: str) -> int:
    """Characters, with East Asian wide and full-width characters counting two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(flat: str) -> Iterator[str]:
    start = 0
    for match in _SENTENCE_END.finditer(flat):
        after = flat[match.end():match.end() + 1]
        full_width_stop = flat[match.start() - 1] in "。！？" if match.start() > 0 else False
        if full_width_stop or _starts_sentence(after):
            yield flat[start:match.start()].strip()
            start = match.end()
    yield flat[start:].strip()


def split_sentences(text: str, min_sentence_chars: int = 20, counts: Optional[SplitCounts] = None) -> List[str]:
    """Splits ``text`` into sentences by the module's documented rule (drops counted in ``counts``)."""
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects str, got {type(text).__name__}")
    counts = counts if counts is not None else SplitCounts()
    sentences: List[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.splitlines() if not _UNDERLINE.match(line)]
        paragraph = "\n".join(lines)
        if _is_code_or_markup(paragraph):
            counts["code_or_markup_paragraphs"] += bool(paragraph.strip())
            continue
        for sentence in _cut(" ".join(paragraph.split())):
            if display_width(sentence) >= min_sentence_chars:
                sentences.append(sentence)
            elif sentence:
                counts["short_sentences"] += 1
    return sentences


def documents_from_texts(texts: Iterable[str], min_sentence_chars: int = 20,
                         counts: Optional[SplitCounts] = None) -> List[Document]:
    """Turns raw texts (one document each) into sentence lists, dropping (and counting) those with
    fewer than two sentences."""
    counts = counts if counts is not None else SplitCounts()
    docs = []
    for text in texts:
        sentences = split_sentences(text, min_sentence_chars, counts)
        if len(sentences) >= 2:
            docs.append(sentences)
        else:
            counts["documents_with_fewer_than_two_sentences"] += 1
    return docs


def _pydoc_topic_texts() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name]


def _stdlib_docstring_texts() -> Iterator[str]:
    stdlib = sysconfig.get_paths()["stdlib"]
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}
    paths = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    for path in sorted(paths):
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few stdlib files are deliberately invalid (test data); not prose anyway
        parts = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    parts.append(doc)
        if parts:
            yield "\n\n".join(parts)


def embedded_corpus(max_documents: Optional[int] = None, min_sentence_chars: int = 20,
                    include_stdlib_docstrings: bool = True, counts: Optional[SplitCounts] = None) -> List[Document]:
    """Returns the embedded default corpus as a list of documents (lists of sentences)."""
    texts: Iterable[str] = _pydoc_topic_texts()
    docs = documents_from_texts(texts, min_sentence_chars, counts)
    if include_stdlib_docstrings and (max_documents is None or len(docs) < max_documents):
        docs.extend(documents_from_texts(_stdlib_docstring_texts(), min_sentence_chars, counts))
    return docs[:max_documents] if max_documents is not None else docs


def text_files(paths: Sequence[str]) -> List[str]:
    """The files that ``paths`` (file names or glob patterns) name, in order; a name or pattern that
    names no file is an error. A file whose name only looks like a pattern (``notes[1].txt``) is
    that file when it exists."""
    files = []
    for pattern in paths:
        is_pattern = any(c in pattern for c in PATTERN_CHARACTERS) and not tf.io.gfile.exists(pattern)
        try:
            matches = sorted(tf.io.gfile.glob(pattern)) if is_pattern else [pattern]
        except UnicodeDecodeError as err:   # TensorFlow decodes each name it matches as UTF-8
            require_utf8_paths([err.object], pattern)
            raise
        if not matches or not all(tf.io.gfile.exists(path) for path in matches):
            raise FileNotFoundError(f"corpus file not found: {pattern}")
        files += matches
    return files


def read_text_files(paths: Sequence[str], min_sentence_chars: int = 20,
                    counts: Optional[SplitCounts] = None, max_bytes: int = MAX_CORPUS_BYTES) -> List[Document]:
    """Reads documents from text files (local paths or pipes, URIs such as gs://..., or glob
    patterns): each file is split into documents at lines of ``---`` or at two blank lines in a row
    (three newlines); invalid UTF-8 bytes become U+FFFD (counted as ``invalid_utf8_sequences``).
    The documents are held in memory, so files of more than ``max_bytes`` together are refused."""
    counts = counts if counts is not None else SplitCounts()
    texts, total = [], 0
    for path in text_files(paths):
        if tf.io.gfile.isdir(path):
            raise ValueError(f"corpus file {path} is a folder")
        raw = read_bounded(path, max_bytes - total, "corpus file",
                           f" ({total:,} before it): the corpus is held in memory, at most {max_bytes:,} "
                           "bytes in all; refine or sample it first", decompress=True)
        total += len(raw)
        content = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")   # a byte order mark is not text
        if "\ufffd" in content:   # count only what replacement added, not U+FFFD the file spelled
            counts["invalid_utf8_sequences"] += content.count("\ufffd") - raw.count("\ufffd".encode())
        texts.extend(t for t in re.split(r"\n---+\n|\n\s*\n\s*\n", content) if t.strip())
    return documents_from_texts(texts, min_sentence_chars, counts)
