"""Gopher's document filters (Rae et al. 2021, appendix A.1.1 and table A1), as RefinedWeb applies
them: repetition removal, then the quality rules. Every threshold is a config field.

Quality (``GopherQualityConfig``), on the words of ``split_words`` (punctuation tokens count as
words without a letter, as in the reference implementation):
- 50 to 100,000 words that are not pure punctuation;
- mean length of those words 3 to 10 characters;
- ``#`` and ellipsis (``...``, ``…``) each at most 0.1 per word;
- at most 90% of lines start with a bullet (``•``, ``-``), at most 30% end with an ellipsis;
- at least 80% of words contain a letter;
- at least 2 of the stop words {the, be, to, of, and, that, have, with}.

Repetition (``GopherRepetitionConfig``): duplicate lines and paragraphs as a fraction of lines /
paragraphs (0.30) and of characters (0.20); the most frequent 2/3/4-gram's characters (its
length x its count) over the text's (0.20 / 0.18 / 0.16); the characters of words inside
duplicated 5- to 10-grams (0.15 down to 0.10), counting a repeated n-gram once and skipping past it.

Each filter returns None (keep) or the name of the first rule the document breaks.

Example:
    >>> gopher_quality_reason("too short")
    'gopher_short_doc'
    >>> gopher_repetition_reason("same line\\nsame line\\nsame line\\nother")
    'dup_line_frac'
"""
from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from rw_tf.config import DictConfig, is_integer, is_number
from rw_tf.refine.text import split_words

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
# A word made only of these characters is punctuation (quotes, dashes, brackets, control characters).
PUNCTUATION = frozenset("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
                        + "".join(map(chr, [*range(0, 9), *range(11, 32), *range(127, 160)])))
MAX_NGRAM_WORDS = 1_000   # longer n-grams than any rule of the paper (10) by far
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


@dataclasses.dataclass(frozen=True)
class GopherQualityConfig(DictConfig):
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: Tuple[str, ...] = STOP_WORDS

    may_be_zero = ("min_words", "min_mean_word_length", "min_stop_words")

    def validate(self) -> None:
        # Bounds that cross, or more distinct stop words than the list holds, drop every document.
        for low, high in (("min_words", "max_words"), ("min_mean_word_length", "max_mean_word_length")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"GopherQualityConfig.{low} ({getattr(self, low)}) is above {high} "
                                 f"({getattr(self, high)}): every document would be dropped")
        if self.min_stop_words > len(set(self.stop_words)):
            raise ValueError(f"GopherQualityConfig.min_stop_words ({self.min_stop_words}) is more than the "
                             f"{len(set(self.stop_words))} distinct stop_words: every document would be dropped")


@dataclasses.dataclass(frozen=True)
class GopherRepetitionConfig(DictConfig):
    max_duplicate_line_fraction: float = 0.3
    max_duplicate_paragraph_fraction: float = 0.3
    max_duplicate_line_char_fraction: float = 0.2
    max_duplicate_paragraph_char_fraction: float = 0.2
    # (n, largest fraction of characters in the most frequent n-gram)
    top_ngram_char_fractions: Tuple[Tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    # (n, largest fraction of characters inside duplicated n-grams)
    duplicate_ngram_char_fractions: Tuple[Tuple[int, float], ...] = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))

    def validate(self) -> None:
        # n of 0 or less made duplicate_ngram_chars loop forever (it steps past a repeat by n words).
        for name in ("top_ngram_char_fractions", "duplicate_ngram_char_fractions"):
            pairs = getattr(self, name)
            valid = all(isinstance(pair, (tuple, list)) and len(pair) == 2 and is_integer(pair[0])
                        and 1 <= pair[0] <= MAX_NGRAM_WORDS and is_number(pair[1]) and 0 <= pair[1] <= 1
                        for pair in pairs)
            if not valid or len({pair[0] for pair in pairs}) != len(pairs):
                raise ValueError(f"GopherRepetitionConfig.{name} must be (n, fraction) pairs, each n once and "
                                 f"1 to {MAX_NGRAM_WORDS} words, each fraction in [0, 1]; got {pairs}"[:300])

    @classmethod
    def from_dict(cls, values, source: str = "config"):
        if not isinstance(values, dict):
            return super().from_dict(values, source)   # the error for a non-object
        values = dict(values)
        for key in ("top_ngram_char_fractions", "duplicate_ngram_char_fractions"):
            if key in values:
                try:
                    values[key] = tuple((int(n), float(f)) for n, f in values[key])
                except (TypeError, ValueError):
                    raise ValueError(f"{cls.__name__}.{key} in {source} must be [n, fraction] pairs, "
                                     f"got {str(values[key])[:60]}") from None
        return super().from_dict(values, source)


def gopher_quality_reason(text: str, config: GopherQualityConfig = GopherQualityConfig(),
                          words: Optional[List[str]] = None) -> Optional[str]:
    """None if ``text`` passes Gopher's quality rules, else the rule it breaks (see the module docstring)."""
    words = split_words(text) if words is None else words
    content_words = [w for w in words if any(c not in PUNCTUATION for c in w)]
    if len(content_words) < config.min_words:
        return "gopher_short_doc"
    if len(content_words) > config.max_words:
        return "gopher_long_doc"
    mean_length = sum(len(w) for w in content_words) / len(content_words)
    if mean_length < config.min_mean_word_length:
        return "gopher_below_avg_word_length"
    if mean_length > config.max_mean_word_length:
        return "gopher_above_avg_word_length"
    if text.count("#") / len(words) > config.max_symbol_word_ratio:
        return "gopher_too_many_hashes"
    if (text.count("...") + text.count("…")) / len(words) > config.max_symbol_word_ratio:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines()
    if sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines) > config.max_bullet_lines_ratio:
        return "gopher_too_many_bullets"
    if sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines) > config.max_ellipsis_lines_ratio:
        return "gopher_too_many_end_ellipsis"
    if sum(any(c.isalpha() for c in w) for w in words) / len(words) < config.min_alpha_words_ratio:
        return "gopher_below_alpha_threshold"
    if len(set(config.stop_words).intersection(words)) < config.min_stop_words:
        return "gopher_few_stop_words"
    return None


def _duplicates(elements: Iterable[str]) -> Tuple[int, int]:
    """(elements seen before, their characters), in order: the first copy is not a duplicate."""
    seen, count, chars = set(), 0, 0
    for element in elements:
        if element in seen:
            count, chars = count + 1, chars + len(element)
        else:
            seen.add(element)
    return count, chars


def top_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters of the most frequent n-gram (words joined by spaces) times its count."""
    counts = collections.Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return len(gram) * count


def duplicate_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters of the n-grams that repeat an earlier one, scanning left to right and jumping
    past each repeat (so overlapping repeats are not counted twice)."""
    seen, chars, i = set(), 0, 0
    while i <= len(words) - n:
        gram = "".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_repetition_reason(text: str, config: GopherRepetitionConfig = GopherRepetitionConfig(),
                             words: Optional[List[str]] = None) -> Optional[str]:
    """None if ``text`` passes Gopher's repetition rules, else the rule it breaks."""
    if not text:
        return "empty"
    paragraphs = _PARAGRAPHS.split(text.strip())
    count, chars = _duplicates(paragraphs)
    if count / len(paragraphs) > config.max_duplicate_paragraph_fraction:
        return "dup_para_frac"
    if chars / len(text) > config.max_duplicate_paragraph_char_fraction:
        return "dup_para_char_frac"
    lines = _LINES.split(text)
    count, chars = _duplicates(lines)
    if count / len(lines) > config.max_duplicate_line_fraction:
        return "dup_line_frac"
    if chars / len(text) > config.max_duplicate_line_char_fraction:
        return "dup_line_char_frac"
    words = split_words(text) if words is None else words
    for n, fraction in config.top_ngram_char_fractions:
        if top_ngram_chars(words, n) / len(text) > fraction:
            return f"top_{n}_gram"
    for n, fraction in config.duplicate_ngram_char_fractions:
        if duplicate_ngram_chars(words, n) / len(text) > fraction:
            return f"duplicated_{n}_n_grams"
    return None
