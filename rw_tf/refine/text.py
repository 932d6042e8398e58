"""Word splitting and normalisation shared by the refinement stages.

``split_words`` is the tokenizer of the Gopher filters. Gopher's rules count *words*, and the
reference implementation (datatrove 0.10) takes them from spaCy's English tokenizer, which splits
punctuation, quotes, brackets and contractions off words and splits hyphenated words. Those tokens
enter the ratios (a full stop is a "word" without a letter), so a whitespace split would move
documents across the thresholds. ``split_words`` follows the same rules with one compiled regex
per whitespace-separated chunk (prefix, infix and suffix punctuation; ``n't``, ``'s`` ...; URLs,
e-mail addresses, numbers and dotted abbreviations kept whole) instead of importing spaCy
(about 1 GB of dependencies for this one rule). ``benchmarks/refine_vs_datatrove.py`` measures
the agreement of the filters built on it.

``minhash_words`` is the normalisation of fuzzy deduplication (lower case, digits folded to 0,
punctuation removed, accents stripped, whitespace collapsed), so near-duplicates that differ in
case, numbers or punctuation share their shingles. ``token_spans`` gives exact-substring
deduplication its tokens with character offsets (words and punctuation marks), so removed token
ranges map back to the text.

Example:
    >>> split_words("Don't split e.g. U.S. twice--it's well-known (see http://a.b/c).")[:12]
    ['Do', "n't", 'split', 'e.g.', 'U.S.', 'twice', '--', 'it', "'s", 'well', '-', 'known']
    >>> minhash_words("Crème brûlée, 1999 edition!")
    ['creme', 'brulee', '0', 'edition']
"""
from __future__ import annotations

import re
import unicodedata
from typing import List, Tuple

# Characters spaCy's English prefix/suffix rules split off a chunk (quotes, brackets, punctuation).
# Not "+" (split only before/after digits, below), not a lone "." at the start (".arpa"), not "\\".
_EDGE = r"""[\"'`“”‘’«»‹›„‚()\[\]{}<>*!?,;:¿¡|/#$£€¥%&=~^@§°•·–—]"""
_CONTRACTION = re.compile(r"(?i)(?<=\w)(n't|'s|'re|'ll|'ve|'d|'m|’s|’re|’ll|’ve|’d|’m|n’t)$")
# Abbreviations spaCy keeps whole (a subset of its English tokenizer exceptions) and single letters.
_ABBREVIATIONS = frozenset(
    "a.m. p.m. e.g. i.e. vs. v.s. Adm. Bros. co. Co. Corp. D.C. Dr. E.g. Gen. Gov. I.e. Inc. Jr. Ltd. "
    "Md. Messrs. Mo. Mont. Mr. Mrs. Ms. Ph.D. Prof. Rep. Rev. Sen. St. Jan. Feb. Mar. Apr. Jun. Jul. Aug. "
    "Sep. Sept. Oct. Nov. Dec. Mt. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ill. Ind. Kan. Kans. Ky. La. "
    "Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Okla. Ore. Pa. Tenn. Va. Wash. "
    "Wis.".split())
# Whole-chunk special cases: emoticons spaCy lists as exceptions, and words it splits in two.
_SPECIALS = {**{e: [e] for e in ("):", "(:", ":)", ";)", "(;", ":(", ":-)", ":-(", ";-)", ":p", ":P", ":D", "=)",
                                 "(=", ":/", "<3", ":3", ":-P", "xD", "XD", "^_^", "-_-", "o.O", "O.o")},
             "cannot": ["can", "not"], "Cannot": ["Can", "not"], "and/or": ["and/or"], "gonna": ["gon", "na"],
             "gotta": ["got", "ta"]}
# Emoticons spaCy splits off the end of a longer chunk ("word:)").
_TRAILING_EMOTICONS = ("):", "(;", ":)", ";)")
_WHOLE = re.compile(
    r"""(?:(?:https?|ftp)://\S*[^\s.,;:!?)\]}'"”’]|www\.\S*[^\s.,;:!?)\]}'"”’]|"""   # URLs
    r"""[\w.+-]+@[\w-]+\.[\w-]+(?:\.[\w-]+)*|"""                           # e-mail addresses
    r"""[0-9]+(?:[.,:/][0-9]+)*|(?:[A-Za-z]\.){2,}|[A-Za-z]\.)$""")      # 3.14 1,000 10:30 U.S. c.
_PREFIX = re.compile(rf"(?:\.\.+|…|--+|\+(?![0-9])|{_EDGE})")   # matched at a position, so no ^
_SUFFIX = re.compile(rf"(?:\.\.+|…|--+|(?<=[0-9])\+|\.|{_EDGE})$")
# Infixes (spaCy's English rules): ellipses; + - * ^ between digits; a full stop between a lower-
# and an upper-case letter; a comma between letters; hyphens and dashes after a letter or digit and
# before a letter; : < > = / after a letter or digit and before a letter.
_INFIX = re.compile(r"\.\.+|…|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[a-z])\.(?=[A-Z])|(?<=[^\W\d_]),(?=[^\W\d_])|"
                    r"(?<=[^\W_])(?:---|--|-|–|—|——|~)(?=[^\W\d_])|(?<=[^\W_])[:<>=/](?=[^\W\d_])")

_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NON_WORD = re.compile(r"[\W_]+")
_TOKEN = re.compile(r"\w+|[^\w\s]+")


# A chunk is cut from both ends one token at a time. It is tracked as [start, end) of the original
# chunk, and the end-anchored rules are searched in its last _TAIL characters (a contraction is at
# most 3; a run of dots or dashes that reaches the window's start is searched whole): slicing and
# searching the whole chunk at every step made 40,000 "!" after a word take 51 s (quadratic).
# _SHORT: the longest abbreviation or special chunk.
_SHORT = max(map(len, list(_ABBREVIATIONS) + list(_SPECIALS)))
_TAIL = 8


def _split_chunk(chunk: str, out: List[str]) -> None:
    suffixes: List[str] = []
    whole = False
    start, end = 0, len(chunk)
    while start < end:
        if end - start <= _SHORT:
            piece = chunk if end - start == len(chunk) else chunk[start:end]
            if piece in _ABBREVIATIONS or piece in _SPECIALS:
                whole = True
                break
        if _WHOLE.match(chunk, start, end):
            whole = True
            break
        special = next((e for e in _TRAILING_EMOTICONS if chunk.endswith(e, start, end) and end - start > len(e)),
                       None)
        if special:
            suffixes.append(special)
            end -= len(special)
            continue
        prefix = _PREFIX.match(chunk, start, end)
        if prefix and end > prefix.end():
            out.append(prefix.group())
            start = prefix.end()
            continue
        window = end - _TAIL if end - start > _TAIL else start
        contraction = _CONTRACTION.search(chunk, window, end)
        if contraction and contraction.start() > start:
            suffixes.append(contraction.group())
            end = contraction.start()
            continue
        suffix = _SUFFIX.search(chunk, window, end)
        if suffix and suffix.start() == window > start:
            suffix = _SUFFIX.search(chunk, start, end)
        if suffix and suffix.start() > start:
            suffixes.append(suffix.group())
            end = suffix.start()
            continue
        break
    chunk = chunk[start:end]
    if whole:
        out.extend(_SPECIALS.get(chunk, [chunk]))
    elif chunk:
        start = 0
        for match in _INFIX.finditer(chunk):
            if match.start() > start:
                out.append(chunk[start:match.start()])
            out.append(match.group())
            start = match.end()
        out.append(chunk[start:])
    out.extend(reversed(suffixes))


def split_words(text: str) -> List[str]:
    """Words and punctuation tokens of ``text`` by spaCy's English rules (see the module docstring)."""
    out: List[str] = []
    for chunk in text.split():
        _split_chunk(chunk, out)
    return [w for w in out if w]


def minhash_words(text: str) -> List[str]:
    """Normalised words for shingling: lower case, numbers -> ``0``, punctuation and symbols removed,
    accents stripped (NFKD without combining marks), whitespace collapsed."""
    text = _DIGITS.sub("0", text.lower())
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", text).split()


def token_spans(text: str) -> List[Tuple[int, int]]:
    """Character spans of the tokens of exact-substring deduplication: runs of word characters and
    runs of punctuation, whitespace excluded."""
    return [m.span() for m in _TOKEN.finditer(text)]


def count_words(text: str) -> int:
    """Whitespace-separated words (the report's token counts)."""
    return len(text.split())
