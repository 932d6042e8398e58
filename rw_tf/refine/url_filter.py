"""URL filtering (RefinedWeb's first stage): a domain blocklist and a weighted-word URL score.

- Blocklist: a file of domains, one per line (``#`` comments); a URL is blocked when its host is a
  listed domain or a subdomain of one (``ads.example.com`` is blocked by ``example.com``).
  RefinedWeb used a 4.6M-domain list (UT1); any such list in this format can be given.
  Internationalised names compare in their ASCII form (IDNA, UTS #46): a list's ``bücher.example``
  blocks ``http://xn--bcher-kva.example/``, the form a crawler records, and the other way round.
- Score: the URL is lower-cased, its percent-escapes decoded, and cut into words at every character
  that is not a letter or digit (in any script; an ``xn--`` host is read in Unicode too); each word
  found in the weighted-word list adds its weight. A URL containing a word whose own weight reaches
  ``hard_threshold`` is removed (``url_hard_word``); otherwise a URL whose total score reaches
  ``soft_threshold`` is removed (``url_soft_score``): several mildly suspicious words together.
  The word list is a TSV file ``word<TAB>weight``; a small default list ships with rw-tf.
- Malformed URLs (no host, a scheme other than http(s)/file) are removed as ``url_invalid``.

Example:
    >>> UrlFilter(blocked_domains={"spam.example"}).reject_reason("http://www.spam.example/page")
    'url_blocklisted_domain'
    >>> UrlFilter(word_weights={"casino": 1.0}).reject_reason("https://news.example/online-casino-bonus")
    'url_hard_word'
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import idna

from rw_tf.config import DictConfig
from rw_tf.data.lines import bounded_lines, open_input
from rw_tf.errors import CorruptFileError

DEFAULT_WORDS_FILE = os.path.join(os.path.dirname(__file__), "url_words.tsv")
_URL_WORDS = re.compile(r"[^\W_]+")   # letters and digits of any script
_DOMAIN = re.compile(r"[^\s/:*@#?\x00-\x1f\x7f]+")   # one name: no URL, wildcard, space or control character
# DNS's limits (RFC 1035) on a name in its ASCII form: a longer one is no host and never matches.
MAX_DOMAIN_CHARS, MAX_LABEL_CHARS = 253, 63
MAX_LIST_LINE_BYTES = 64 * 1024   # a blocklist or word-list line: a name or a word and a weight
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))


@dataclasses.dataclass(frozen=True)
class UrlFilterConfig(DictConfig):
    blocklist_file: Optional[str] = None       # domains, one per line
    words_file: Optional[str] = DEFAULT_WORDS_FILE
    hard_threshold: float = 1.0
    soft_threshold: float = 1.0


def _text_lines(path: str) -> Iterator[Tuple[int, str]]:
    """(number, line) of the lines of a UTF-8 text file (gzip, bzip2 or xz too) that are neither
    blank nor ``#`` comments, one at a time in bounded memory (RefinedWeb's blocklist has 4.6M
    lines); a line that is not UTF-8 or longer than ``MAX_LIST_LINE_BYTES`` is an error naming it."""
    with open_input(path, decompress=True) as stream:
        for number, (raw, too_long) in enumerate(bounded_lines(stream, MAX_LIST_LINE_BYTES, path), 1):
            if too_long:
                raise CorruptFileError(f"{path}:{number}: a line of more than {MAX_LIST_LINE_BYTES:,} bytes "
                                       "(a list holds one name or word per line)")
            try:
                line = raw.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as err:
                raise CorruptFileError(f"{path}:{number}: not UTF-8 text ({err.reason})") from None
            if line.strip() and not line.lstrip().startswith("#"):
                yield number, line


def read_domains(path: str) -> FrozenSet[str]:
    """The domains (or IP addresses) of a blocklist file, one per line. A URL, a wildcard or a
    hosts-file line ("0.0.0.0 ads.example") never equals a host: such a list blocked nothing, without
    a word, so a line that is not one name is an error naming it."""
    return frozenset(_blocklist_domain(path, number, line) for number, line in _text_lines(path))


def _blocklist_domain(path: str, number: int, line: str) -> str:
    domain = line.strip().lower().lstrip(".")
    if not _DOMAIN.fullmatch(domain) and not _is_ip_address(domain):
        raise ValueError(f"{path}:{number}: expected a domain such as 'example.com', got {line.strip()[:200]!r}")
    host = ascii_host(domain)
    if len(host.rstrip(".")) > MAX_DOMAIN_CHARS or any(len(label) > MAX_LABEL_CHARS for label in host.split(".")):
        shown = line.strip()
        shown = repr(shown) if len(shown) <= 80 else repr(shown[:80]) + "..."
        raise ValueError(f"{path}:{number}: {shown} is longer than a domain can be "
                         f"({MAX_DOMAIN_CHARS} characters, {MAX_LABEL_CHARS} between dots)")
    return host


def ascii_host(name: str) -> str:
    """``name`` lower-cased, an internationalised one in its ASCII (IDNA) form, as browsers map it
    (UTS #46: ``BÜCHER.example`` -> ``xn--bcher-kva.example``); a name IDNA refuses stays as it is."""
    name = name.lower()
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def read_word_weights(path: str) -> Dict[str, float]:
    """``word<TAB>weight`` lines; a word must be one word as URLs are cut (``casino-online`` never
    matched anything, without a word)."""
    weights = {}
    for number, line in _text_lines(path):
        parts = line.split("\t")
        try:
            weight = float(parts[1])
        except (IndexError, ValueError):
            weight = math.nan
        if not math.isfinite(weight):   # NaN: a URL holding the word was never refused, whatever else it held
            raise ValueError(f"{path}:{number}: expected 'word<TAB>weight' (a finite number), got {line.strip()!r}")
        word = parts[0].strip().lower()
        if not _URL_WORDS.fullmatch(word):
            raise ValueError(f"{path}:{number}: {parts[0].strip()!r} is not one word: URLs are cut into words at "
                             "every character that is not a letter or digit, so it would never match")
        weights[word] = weight
    return weights


def url_words(url: str, host: str) -> List[str]:
    """The words of ``url`` (lower case, percent-escapes decoded), with those of ``host`` read in
    Unicode when it is in its ASCII form (``xn--80akhbyknj4f.example`` holds ``испытание``)."""
    text = unquote(url).lower()
    if "xn--" in host:
        try:
            text += " " + idna.decode(host)
        except idna.IDNAError:
            pass
    return _URL_WORDS.findall(text)


def normalize_url(url: str) -> str:
    """The form two URLs of one page share (RFC 3986's normalisations): scheme and host lower-cased,
    the host in its ASCII form without ``www.`` or a trailing dot, default ports, the fragment and a
    trailing slash dropped, escapes of unreserved characters decoded and the others upper-cased,
    other characters escaped as UTF-8: ``HTTP://www.Bücher.example.:80/caf%c3%a9/%7Ex/#x`` ->
    ``http://xn--bcher-kva.example/caf%C3%A9/~x``, as ``https://bücher.example/café/~x`` but https."""
    try:
        parts = urlsplit(url.strip())
        port = f":{parts.port}" if parts.port and parts.port not in (80, 443) else ""
    except ValueError:       # an unparseable port: compare the URL as it is
        return url.strip()
    host = ascii_host((parts.hostname or "").rstrip("."))
    host = f"[{host}]" if ":" in host else host[4:] if host.startswith("www.") else host
    path = _normal_escapes(parts.path).rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), host + port, path, _normal_escapes(parts.query), ""))


def _normal_escapes(part: str) -> str:
    def unescape_unreserved(match: re.Match) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else "%" + match[1].upper()
    return quote(_ESCAPE.sub(unescape_unreserved, part), safe=_PRINTABLE_ASCII)


class UrlFilter:
    """``reject_reason(url)``: None to keep, else the reason (see the module docstring)."""

    def __init__(self, blocked_domains=frozenset(), word_weights: Optional[Dict[str, float]] = None,
                 hard_threshold: float = 1.0, soft_threshold: float = 1.0) -> None:
        self.blocked_domains = frozenset(ascii_host(d) for d in blocked_domains)
        self.word_weights = {word.lower(): weight for word, weight in (word_weights or {}).items()}  # as URLs are
        self.hard_threshold, self.soft_threshold = hard_threshold, soft_threshold

    @classmethod
    def from_config(cls, config: UrlFilterConfig) -> "UrlFilter":
        return cls(read_domains(config.blocklist_file) if config.blocklist_file else frozenset(),
                   read_word_weights(config.words_file) if config.words_file else {},
                   config.hard_threshold, config.soft_threshold)

    def _blocked(self, host: str) -> bool:
        parts = host.split(".")
        return any(".".join(parts[i:]) in self.blocked_domains for i in range(len(parts)))

    def reject_reason(self, url: str) -> Optional[str]:
        try:
            parts = urlsplit(url.strip())
        except ValueError:
            return "url_invalid"
        if parts.scheme == "file":
            return None
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme not in ("http", "https") or not host:
            return "url_invalid"
        if self.blocked_domains and self._blocked(ascii_host(host)):
            return "url_blocklisted_domain"
        words = url_words(url, host)
        if any(self.word_weights.get(w, 0.0) >= self.hard_threshold for w in words):
            return "url_hard_word"
        if sum(self.word_weights.get(w, 0.0) for w in words) >= self.soft_threshold:
            return "url_soft_score"
        return None
