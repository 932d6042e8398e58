"""RefinedWeb's line-wise corrections (Penedo et al. 2023, appendix G.2), and its rule that a
document whose corrections remove more than 5% of it (in characters) is dropped whole.

A line is removed when it is
- mainly upper case (more than ``uppercase_fraction`` of its letters; e.g. "SUBSCRIBE NOW"),
- only numbers and punctuation ("12 / 300"),
- a counter ("3 likes", "1.2k shares", "Comments (12)"),
- a single word,
- a navigation bar: three or more short items between separators ("Home | News | Sport"),
- a banner: it contains one of ``banner_phrases`` ("we use cookies", "share this article", ...);
and a short line (at most ``max_short_line_words`` words) is *edited*: a pattern at its start
("Sign in", "Share"), at its end ("Read more...") or anywhere ("items in cart") is cut out, and the
line is removed if nothing with a letter is left.

``correct_lines(text)`` returns ``(corrected_text, removed_fraction)``; ``line_corrections_reason``
applies the 5% rule.

Example:
    >>> text = "A real sentence that says something useful here.\\n3 likes\\nAnother real sentence ends it."
    >>> correct_lines(text)[0]
    'A real sentence that says something useful here.\\nAnother real sentence ends it.'
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional, Tuple

from rw_tf.config import DictConfig

COUNTER_WORDS = ("likes?", "comments?", "shares?", "views?", "retweets?", "tweets?", "followers?", "following",
                 "repl(?:y|ies)", "votes?", "points?", "reviews?", "reactions?", "subscribers?", "downloads?",
                 "pins?", "favou?rites?", "stars?", "forks?")


@dataclasses.dataclass(frozen=True)
class LineCorrectionConfig(DictConfig):
    max_removed_fraction: float = 0.05
    max_short_line_words: int = 10
    uppercase_fraction: float = 0.5
    counter_words: Tuple[str, ...] = COUNTER_WORDS
    navigation_separators: str = "|•·»›/>"
    short_line_prefixes: Tuple[str, ...] = (
        "sign in", "sign up", "log in", "login", "register", "share", "tweet", "pin it", "email", "print",
        "advertisement", "sponsored", "skip to content", "skip to main content", "jump to", "menu", "search")
    short_line_suffixes: Tuple[str, ...] = (
        "read more", "read more...", "read more…", "continue reading", "see more", "show more", "load more",
        "view more", "learn more", "more »", "click to expand...", "(opens in new window)")
    short_line_anywhere: Tuple[str, ...] = (
        "items in cart", "item in cart", "add to cart", "back to top", "click here", "all rights reserved",
        "privacy policy", "terms of use", "terms of service", "cookie settings", "leave a comment",
        "posted by", "share on facebook", "share on twitter", "follow us")
    banner_phrases: Tuple[str, ...] = (
        "we use cookies", "use of cookies", "uses cookies", "accept cookies", "accept all cookies", "cookie policy",
        "share this article", "share this story", "share this page", "subscribe to our newsletter",
        "sign up for our newsletter", "enable javascript", "javascript is disabled")


class LineCorrector:
    """Compiled rules of a ``LineCorrectionConfig``; ``correct(text)`` and ``reject_reason(text)``."""

    def __init__(self, config: LineCorrectionConfig = LineCorrectionConfig()) -> None:
        self.config = config
        words = "|".join(config.counter_words)
        self._counter = re.compile(
            rf"^\W*(?:\d[\d,.]*\s*[km]?\+?\s*(?:{words})|(?:{words})\W*\d[\d,.]*\s*[km]?\+?)\W*$", re.I)
        self._numbers = re.compile(r"^[\W\d_]+$")
        separators = re.escape(config.navigation_separators)
        self._separators = re.compile(rf"\s+[{separators}]\s+")
        self._banner = _phrases(config.banner_phrases)
        self._prefix = re.compile(rf"^\W*(?:{_alternatives(config.short_line_prefixes)})\b\W*", re.I)
        self._suffix = re.compile(rf"\s*(?:{_alternatives(config.short_line_suffixes)})\W*$", re.I)
        self._anywhere = re.compile(rf"\b(?:{_alternatives(config.short_line_anywhere)})\b", re.I)

    def _line(self, line: str) -> str:
        """The corrected line ('' to remove it)."""
        stripped = line.strip()
        if not stripped:
            return line
        letters = [c for c in stripped if c.isalpha()]
        words = stripped.split()
        if (not letters or self._numbers.match(stripped) or self._counter.match(stripped) or len(words) == 1
                or sum(c.isupper() for c in letters) / len(letters) > self.config.uppercase_fraction
                or self._banner.search(stripped)):
            return ""
        items = self._separators.split(stripped)
        if len(items) >= 3 and all(len(item.split()) <= 3 for item in items):
            return ""
        if len(words) <= self.config.max_short_line_words:
            edited = self._anywhere.sub("", self._suffix.sub("", self._prefix.sub("", stripped))).strip()
            if edited != stripped:
                return edited if any(c.isalpha() for c in edited) else ""
        return line

    def correct(self, text: str) -> Tuple[str, float]:
        """``(corrected text, fraction of characters removed)``."""
        if not text:
            return text, 0.0
        lines = [self._line(line) for line in text.split("\n")]
        kept = "\n".join(line for line, original in zip(lines, text.split("\n")) if line or not original.strip())
        kept = re.sub(r"\n{3,}", "\n\n", kept).strip()
        return kept, max(0, len(text) - len(kept)) / len(text)

    def reject_reason(self, text: str) -> Tuple[Optional[str], str]:
        """``(None, corrected text)`` or ``("line_corrections_removed_too_much", text)``."""
        corrected, removed = self.correct(text)
        if removed > self.config.max_removed_fraction:
            return "line_corrections_removed_too_much", text
        if not corrected:
            return "empty_after_line_corrections", text
        return None, corrected


def _alternatives(phrases) -> str:
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len, reverse=True))


def _phrases(phrases) -> re.Pattern:
    return re.compile(rf"\b(?:{_alternatives(phrases)})\b", re.I)


def correct_lines(text: str, config: LineCorrectionConfig = LineCorrectionConfig()) -> Tuple[str, float]:
    """``LineCorrector(config).correct(text)``."""
    return LineCorrector(config).correct(text)
