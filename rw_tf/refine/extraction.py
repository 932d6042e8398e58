"""Main-text extraction from HTML with trafilatura, as RefinedWeb does (favouring precision).

``extract_text(html, url)`` returns the page's main text with navigation, headers, footers and
comments left out by trafilatura (``favor_precision=True``, no comments, no tables), then applies
RefinedWeb's two corrections: URLs are removed, and runs of blank lines are cut to at most two
consecutive newlines. None when trafilatura finds no main text or the page is not parseable HTML.

Pages given as ``text`` (JSON Lines with a text field) skip extraction but get the same two
corrections, so every document reaching the filters has the same shape.

Example:
    >>> extract_text("<html><body><nav>Home | About</nav><article><p>" + "Real prose here. " * 20
    ...              + "</p></article></body></html>")[:16]
    'Real prose here.'
"""
from __future__ import annotations

import logging
import re
from typing import Optional

import trafilatura

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.[\w-]+\.\S+")
_BLANK_RUNS = re.compile(r"\n\s*\n(?:\s*\n)+")
_SPACES = re.compile(r"[ \t]+")

# trafilatura logs every page it cannot parse at WARNING; the stage counts them instead.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


def clean_text(text: str) -> str:
    """URLs removed, spaces collapsed within lines, at most two consecutive newlines."""
    text = _URL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_RUNS.sub("\n\n", text).strip()


def extract_text(html: str, url: Optional[str] = None) -> Optional[str]:
    """Main text of ``html`` (see the module docstring), or None."""
    try:
        text = trafilatura.extract(html, url=url, favor_precision=True, include_comments=False,
                                   include_tables=False, deduplicate=False, with_metadata=False)
    except (ValueError, TypeError, RecursionError):   # lxml on malformed or absurdly nested markup
        return None
    if not text:
        return None
    text = clean_text(text)
    return text or None
