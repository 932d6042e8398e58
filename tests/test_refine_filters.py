"""Every refinement filter on documents crafted to sit just inside and just outside its threshold,
and the readers on hostile inputs (corrupt archives, wrong sizes, bad encodings)."""
import gzip
import io
import json
import os
import pickle
import random
import re
import signal
import threading
import time
import tracemalloc
import zlib

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

import rw_tf.refine.readers as readers
from rw_tf.errors import CorruptFileError
from rw_tf.refine import extraction
from rw_tf.refine.extraction import BoundedExtractor, extract_text, resident_bytes
from rw_tf.refine.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    duplicate_ngram_chars,
    gopher_quality_reason,
    gopher_repetition_reason,
    top_ngram_chars,
)
from rw_tf.refine.language import DEFAULT_MODEL, LanguageIdentifier
from rw_tf.refine.line_corrections import LineCorrector
from rw_tf.refine.readers import iter_records, iter_stream
from rw_tf.refine.stages import DocumentRefiner, RefineConfig
from rw_tf.refine.text import minhash_words, split_words
from rw_tf.refine.url_filter import UrlFilter, UrlFilterConfig, normalize_url, read_domains, read_word_weights

RNG = random.Random(7)
VOCABULARY = sorted({"".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(RNG.randint(4, 8)))
                     for _ in range(3000)})


def prose(words: int, seed: int = 0) -> str:
    """Distinct random words with two stop words: passes every quality and repetition rule."""
    rng = random.Random(seed)
    return " ".join(["the", "and"] + rng.sample(VOCABULARY, words - 2))


# ---------------------------------------------------------------------------------------------- Gopher quality
def test_word_count_bounds():
    assert gopher_quality_reason(prose(50)) is None
    assert gopher_quality_reason(prose(49)) == "gopher_short_doc"
    small = GopherQualityConfig(max_words=60)
    assert gopher_quality_reason(prose(60), small) is None
    assert gopher_quality_reason(prose(61), small) == "gopher_long_doc"
    # Punctuation tokens are not words for the count: 49 words and 20 full stops are still short.
    assert gopher_quality_reason(prose(49) + " ." * 20) == "gopher_short_doc"


def test_mean_word_length_bounds():
    three = " ".join(["the", "and"] + ["cat"] * 58)                      # mean exactly 3.0
    assert gopher_quality_reason(three) is None
    assert gopher_quality_reason(three.replace("cat", "ox", 1)) == "gopher_below_avg_word_length"
    ten = " ".join(["the", "and"] + ["abcdefghij"] * 44 + ["abcdefghijk"] * 14)   # (6 + 440 + 154) / 60 = 10
    assert gopher_quality_reason(ten) is None
    assert gopher_quality_reason(ten.replace("abcdefghij ", "abcdefghijk ", 1)) == "gopher_above_avg_word_length"


@pytest.mark.parametrize("symbol,reason", [("#", "gopher_too_many_hashes"), ("...", "gopher_too_many_ellipsis"),
                                           ("…", "gopher_too_many_ellipsis")])
def test_symbol_to_word_ratio(symbol, reason):
    words = prose(90).split()
    def with_symbols(k):   # k standalone symbols among 90 words: ratio k / (90 + k) tokens
        return " ".join(words[:45] + [symbol] * k + words[45:])
    assert len(split_words(with_symbols(10))) == 100
    assert gopher_quality_reason(with_symbols(10)) is None          # 10 / 100 = 0.1
    assert gopher_quality_reason(with_symbols(11)) == reason          # 11 / 101 > 0.1


def test_bullet_and_end_ellipsis_lines():
    lines = [prose(12, seed=i) for i in range(10)]
    bullets = lambda k: "\n".join(("• " if i < k else "") + line for i, line in enumerate(lines))  # noqa: E731
    assert gopher_quality_reason(bullets(9)) is None                 # 9 of 10 lines = 0.9
    assert gopher_quality_reason(bullets(10)) == "gopher_too_many_bullets"
    dashes = "\n".join("- " + line for line in lines)
    assert gopher_quality_reason(dashes) == "gopher_too_many_bullets"
    ellipsis = lambda k: "\n".join(line + (" ..." if i < k else "") for i, line in enumerate(lines))  # noqa: E731
    assert gopher_quality_reason(ellipsis(3)) is None                # 3 of 10 lines = 0.3
    assert gopher_quality_reason(ellipsis(4)) == "gopher_too_many_end_ellipsis"


def test_words_are_split_in_linear_time_from_both_ends():
    """A chunk was cut one token at a time by slicing and searching all of it: 40,000 "!" after a
    word took 51 s, so a 2 MiB run of punctuation about a quarter of an hour in one Beam worker."""
    cases = {"a" + "!" * 40_000: ["a"] + ["!"] * 40_000, "(" * 40_000 + "a": ["("] * 40_000 + ["a"],
             "(!" * 20_000 + "a's" + ".!" * 10_000: ["(", "!"] * 20_000 + ["a", "'s"] + [".", "!"] * 10_000,
             "a" + "." * 40_000: ["a", "." * 40_000], "x-" * 20_000 + "y!": ["x", "-"] * 20_000 + ["y", "!"]}
    for text, words in cases.items():
        started = time.monotonic()
        assert split_words(text) == words, text[:20]
        assert time.monotonic() - started < 3, text[:20]
    # Short chunks as before (the output of the code before, on the rules' own cases).
    assert split_words("(U.S.)... don't!! :) e.g. 3.14--x") == [
        "(", "U.S.", ")", "...", "do", "n't", "!", "!", ":)", "e.g.", "3.14", "-", "-x"]


def test_alphabetic_words_and_stop_words():
    words = prose(80).split()
    numbers = lambda k: " ".join(words + ["123"] * k)  # noqa: E731 (k of 80 + k words without a letter)
    assert gopher_quality_reason(numbers(20)) is None                 # 80 / 100 = 0.8
    assert gopher_quality_reason(numbers(21)) == "gopher_below_alpha_threshold"
    assert gopher_quality_reason(prose(80).replace("and ", "xyz ", 1)) == "gopher_few_stop_words"
    assert gopher_quality_reason(prose(80).replace("and ", "xyz ", 1), GopherQualityConfig(min_stop_words=1)) is None


# ---------------------------------------------------------------------------------------------- Gopher repetition
def paragraphs(n: int, words: int = 40, seed: int = 0):
    return [prose(words, seed=seed + i) for i in range(n)]


def test_duplicate_paragraph_and_line_fractions():
    short = "Short note here."
    doc = lambda dups: "\n\n".join(paragraphs(6) + [short] + [short] * dups)  # noqa: E731
    assert gopher_repetition_reason(doc(3)) is None                    # 3 duplicates of 10 paragraphs
    assert gopher_repetition_reason(doc(4)) == "dup_para_frac"          # 4 of 11
    lines = lambda dups: "\n".join(paragraphs(6) + [short] + [short] * dups)  # noqa: E731 (lines, no paragraphs)
    assert gopher_repetition_reason(lines(3)) is None
    assert gopher_repetition_reason(lines(4)) == "dup_line_frac"


def test_duplicate_character_fractions():
    # One paragraph repeated once: its characters over the text's, just under / over 0.2.
    def doc(repeated_words: int, separator: str):
        parts = paragraphs(8, words=40, seed=100)
        repeated = prose(repeated_words, seed=99)
        text = separator.join(parts + [repeated, repeated])
        return text, len(repeated) / len(text)
    lines_only = GopherRepetitionConfig(top_ngram_char_fractions=(), duplicate_ngram_char_fractions=())
    for separator, reason in (("\n\n", "dup_para_char_frac"), ("\n", "dup_line_char_frac")):
        inside = max((doc(n, separator) for n in range(40, 200)), key=lambda t: t[1] if t[1] <= 0.2 else -1)
        outside = min((doc(n, separator) for n in range(40, 200)), key=lambda t: t[1] if t[1] > 0.2 else 2)
        assert 0.18 < inside[1] <= 0.2 < outside[1] < 0.22
        assert gopher_repetition_reason(inside[0], lines_only) is None
        assert gopher_repetition_reason(outside[0], lines_only) == reason


def test_top_ngram_rule_just_inside_and_outside():
    base = prose(300, seed=5).split()
    fillers = prose(300, seed=6).split()[2:]
    no_duplicate_rules = GopherRepetitionConfig(duplicate_ngram_char_fractions=())
    for n, limit in GopherRepetitionConfig().top_ngram_char_fractions:
        gram = ["alpha", "beta", "gamma", "delta"][:n]
        # The n-gram k times, each followed by a different word: only it (and its parts) repeat.
        text = lambda k, g=gram: " ".join(base + [w for i in range(k) for w in g + [fillers[i]]])  # noqa: E731
        # Reference: its characters x its count over the text's (its parts are shorter and no more frequent).
        k = next(k for k in range(1, 290) if len(" ".join(gram)) * k / len(text(k)) > limit)
        assert top_ngram_chars(split_words(text(k)), n) == len(" ".join(gram)) * k
        assert gopher_repetition_reason(text(k - 1), no_duplicate_rules) is None
        assert gopher_repetition_reason(text(k), no_duplicate_rules) == f"top_{n}_gram"


def test_duplicate_ngram_characters_by_hand():
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    # The first five words again at the end: one repeated 5-gram, counted once (3+3+5+4+4 characters).
    assert duplicate_ngram_chars(words + words[:5], 5) == 19
    assert duplicate_ngram_chars(words + words[:4], 5) == 0
    # Ten words repeated: the scan counts the first repeated 5-gram, jumps past it, counts the next.
    assert duplicate_ngram_chars(words + words, 5) == sum(map(len, words))


def test_duplicate_ngram_rule_just_inside_and_outside():
    base = prose(400, seed=21).split()
    text_of = lambda m: " ".join(base + base[:m])  # noqa: E731 (the first m words repeated at the end)
    config = GopherRepetitionConfig(top_ngram_char_fractions=(), duplicate_ngram_char_fractions=((10, 0.10),))
    fractions = [(m, duplicate_ngram_chars(split_words(text_of(m)), 10) / len(text_of(m))) for m in range(10, 200)]
    inside = max((f for f in fractions if f[1] <= 0.10), key=lambda f: f[1])
    outside = min((f for f in fractions if f[1] > 0.10), key=lambda f: f[1])
    assert gopher_repetition_reason(text_of(inside[0]), config) is None
    assert gopher_repetition_reason(text_of(outside[0]), config) == "duplicated_10_n_grams"


# ---------------------------------------------------------------------------------------------- line corrections
def test_each_line_rule():
    corrector = LineCorrector()
    keep = "A real sentence about the weather that says something useful today."
    for bad in ("3 likes", "1.2k shares", "Comments (12)", "SUBSCRIBE TO OUR NEWSLETTER NOW", "12 / 300 2024",
                "Home", "Home | News | Sport | Weather", "We use cookies to improve your experience on this site.",
                "Share this article with your friends and family today"):
        assert corrector._line(bad) == "", bad
    assert corrector._line(keep) == keep
    assert corrector._line("Sign in to read the whole story") == "to read the whole story"
    assert corrector._line("The long article goes on. Read more...") == "The long article goes on."
    assert corrector._line("Read more") == ""


def test_five_percent_rule_just_inside_and_outside():
    corrector = LineCorrector()
    counter = "3 likes"        # removed with its line break: 8 characters
    for body_chars, dropped in ((152, False), (151, True)):   # 8 / 160 = 0.05; 8 / 159 > 0.05
        body = ("x" * 20 + " ") * 20
        body = body[:body_chars - 1].rstrip() + "y"
        body = body + "z" * (body_chars - len(body))
        text = body + "\n" + counter
        corrected, removed = corrector.correct(text)
        assert len(text) == body_chars + 8 and removed == pytest.approx(8 / len(text))
        reason, out = corrector.reject_reason(text)
        assert (reason == "line_corrections_removed_too_much") == dropped
        if not dropped:
            assert out == body


# ---------------------------------------------------------------------------------------------- URL filter
def test_url_filter_blocklist_and_scores():
    weights = {"casino": 0.5, "bonus": 0.5, "porn": 1.0, "cheap": 0.4}
    f = UrlFilter(blocked_domains={"bad.example"}, word_weights=weights, hard_threshold=1.0, soft_threshold=1.0)
    assert f.reject_reason("https://bad.example/page") == "url_blocklisted_domain"
    assert f.reject_reason("https://www.sub.bad.example/page") == "url_blocklisted_domain"
    assert f.reject_reason("https://notbad.example/page") is None          # a suffix, not a subdomain
    assert f.reject_reason("https://news.example/porn-story") == "url_hard_word"
    assert f.reject_reason("https://news.example/casino") is None           # 0.5 < 1.0
    assert f.reject_reason("https://news.example/casino-bonus") == "url_soft_score"   # 1.0 >= 1.0
    assert f.reject_reason("https://news.example/casino-cheap") is None     # 0.9 < 1.0
    assert f.reject_reason("https://news.example/casinos") is None          # whole words only
    assert f.reject_reason("mailto:x@y.z") == "url_invalid"
    assert f.reject_reason("http://") == "url_invalid"
    assert f.reject_reason("http://[::1") == "url_invalid"


def test_internationalised_domains_are_blocked_in_either_form(tmp_path):
    """A crawl records hosts in their ASCII form (xn--...); a list written in Unicode blocked none of
    them, and a punycode list missed hosts written in Unicode (JSON Lines inputs)."""
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("Bücher.example\nxn--mnchen-3ya.de\nstraße.example\n", encoding="utf-8")
    f = UrlFilter.from_config(UrlFilterConfig(blocklist_file=str(blocklist), words_file=None))
    for url in ("http://xn--bcher-kva.example/x", "http://www.BÜCHER.example/", "https://münchen.de/a",
                "https://shop.MÜNCHEN.DE./a", "http://münchen\u3002de/", "https://xn--strae-oqa.example/"):
        assert f.reject_reason(url) == "url_blocklisted_domain", url
    for url in ("https://buecher.example/", "https://strasse.example/", "https://xn--zz.example/"):
        assert f.reject_reason(url) is None, url   # UTS #46 keeps ß (IDNA 2003 mapped it to ss)
    assert UrlFilter(blocked_domains={"☃.example"}).reject_reason("http://☃.example/") == "url_blocklisted_domain"
    assert UrlFilter(word_weights={"CASINO": 1.0}).reject_reason("https://x.example/Casino") == "url_hard_word"
    # URL words: any script, percent-escapes decoded, an xn-- host read in Unicode. Before, the words
    # were [a-z0-9]+ of the raw URL, so a word list's "казино" matched no URL.
    words = tmp_path / "words.tsv"
    words.write_text("казино\t1.0\ncasino\t0.5\nbonus\t0.5\n", encoding="utf-8")
    f = UrlFilter.from_config(UrlFilterConfig(words_file=str(words)))
    for url, reason in (("https://example.ru/%D0%BA%D0%B0%D0%B7%D0%B8%D0%BD%D0%BE", "url_hard_word"),
                        ("https://xn--80aodfsg.example/", "url_hard_word"),
                        ("https://КАЗИНО.example/", "url_hard_word"),
                        ("https://news.example/%63asino-bonus", "url_soft_score"),
                        ("https://news.example/casino_bonus", "url_soft_score"),
                        ("https://news.example/casinobonus", None), ("https://xn--zz.example/casino", None)):
        assert f.reject_reason(url) == reason, url


def test_urls_of_one_page_in_other_forms_normalise_equal():
    """URL deduplication keys: before, a host in Unicode and its xn-- form, or %7e and ~, were two pages."""
    same = [("HTTP://www.Bücher.example.:80/caf%c3%a9/%7Ex/#top", "http://xn--bcher-kva.example/café/~x/"),
            ("https://news.example/a?q=%e2%82%ac&r=a%20b", "https://NEWS.example:443/a?q=€&r=a b"),
            ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x/"),
            ("https://münchen\u3002de/%41", "https://xn--mnchen-3ya.de/A")]
    for a, b in same:
        assert normalize_url(a) == normalize_url(b), (a, b)
    assert normalize_url(same[0][0]) == "http://xn--bcher-kva.example/caf%C3%A9/~x"
    different = [("https://x.example/a%2Fb", "https://x.example/a/b"),      # an escaped slash is not a slash
                 ("https://x.example/a", "http://x.example/a"), ("https://x.example/A", "https://x.example/a"),
                 ("https://x.example/?a=1&b=2", "https://x.example/?b=2&a=1"), ("https://x.example:8080/", "https://x.example/"),
                 ("https://straße.example/", "https://strasse.example/")]
    for a, b in different:
        assert normalize_url(a) != normalize_url(b), (a, b)


def test_url_word_file_errors_name_the_line(tmp_path):
    path = tmp_path / "words.tsv"
    path.write_text("# comment\nporn\t1.0\ncasino 0.5\n")
    with pytest.raises(ValueError, match=r"words.tsv:3: expected 'word<TAB>weight'"):
        read_word_weights(str(path))
    path.write_text("porn\t1.0\ncasino\tnan\n")     # NaN: no URL holding "casino" was ever refused
    with pytest.raises(ValueError, match=r"words.tsv:2: expected 'word<TAB>weight' \(a finite number\)"):
        read_word_weights(str(path))
    for word in ("casino-online", "free money", "ads_", "www.casino"):   # URLs are cut at these: never matched
        path.write_text(f"porn\t1.0\n{word}\t0.5\n")
        with pytest.raises(ValueError, match=rf"words.tsv:2: {re.escape(repr(word))} is not one word"):
            read_word_weights(str(path))
    # Lines that never equal a host blocked nothing: a URL, a wildcard, a hosts-file line.
    blocklist = tmp_path / "blocklist.txt"
    for line in ("https://casino.example/", "*.casino.example", "0.0.0.0 casino.example", "casino.example:80"):
        blocklist.write_text(f"# domains\nbad.example\n{line}\n")
        with pytest.raises(ValueError, match=rf"blocklist.txt:3: expected a domain such as 'example.com', got "
                                             rf"{re.escape(repr(line))}"):
            read_domains(str(blocklist))
    blocklist.write_text("Bad.Example\n.sub.example\n192.0.2.1\n2001:db8::1\nxn--bcher-kva.example\nok_host.example\n")
    assert read_domains(str(blocklist)) == {"bad.example", "sub.example", "192.0.2.1", "2001:db8::1",
                                            "xn--bcher-kva.example", "ok_host.example"}
    for read, name, first in ((read_word_weights, "words.tsv", b"casino\t0.5"),
                              (read_domains, "blocklist.txt", b"a.b")):
        (tmp_path / name).write_bytes(first + b"\nbad\xff\t1\n")   # before: no file named
        with pytest.raises(CorruptFileError, match=rf"{name}:2: not UTF-8 text \(invalid start byte\)"):
            read(str(tmp_path / name))
    # A line that is no host: control characters, longer than DNS allows (a 20 MB line was read whole
    # and kept, and blocked nothing), a line past the line limit (read no further than the limit).
    import rw_tf.refine.url_filter as url_filter
    for line, words in (("bad\x00.example", "expected a domain"),
                        ("a" * 64 + ".example", "longer than a domain can be"),
                        (".".join(["abc"] * 64), "longer than a domain can be (253 characters, 63 between dots)"),
                        ("a" * 70_000, "a line of more than 65,536 bytes")):
        blocklist.write_text(f"bad.example\n{line}\n")
        with pytest.raises(ValueError, match=rf"blocklist.txt:2: .*{re.escape(words)}"):
            read_domains(str(blocklist))
    blocklist.write_text(f"{'a' * 63}.example\n{'.'.join(['abc'] * 63)}\n")   # at the limits: kept
    assert len(read_domains(str(blocklist))) == 2
    (tmp_path / "long.txt").write_bytes(b"x" * (64 << 20))   # one line, no end
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="a line of more than"):
            read_domains(str(tmp_path / "long.txt"))
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()
    # Lists may be compressed, as RefinedWeb's blocklist is distributed.
    (tmp_path / "blocklist.txt.gz").write_bytes(gzip.compress(b"Bad.Example\n192.0.2.1\n"))
    assert read_domains(str(tmp_path / "blocklist.txt.gz")) == {"bad.example", "192.0.2.1"}
    assert url_filter.MAX_LIST_LINE_BYTES == 64 * 1024


def test_a_language_model_that_cannot_load_is_refused_naming_it_in_bounded_time(tmp_path):
    """fastText read a truncated model for ever, growing without end (1.1 GB after 20 s)."""
    with open(DEFAULT_MODEL, "rb") as f:
        model = f.read()
    cases = {"truncated.ftz": (model[:1000], "more memory than a model of its size needs"),
             "truncated_more.ftz": (model[:100_000], "more memory than a model of its size needs"),
             "noise.bin": (bytes(random.Random(0).getrandbits(8) for _ in range(5000)), "wrong file format"),
             "empty.bin": (b"", "")}
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        started = time.monotonic()
        with pytest.raises(CorruptFileError, match=f"cannot load the language-ID model .*{name} .*{why}"):
            LanguageIdentifier(model_path=str(tmp_path / name)).identify("some words")
        assert time.monotonic() - started < 60
    for path in (tmp_path / "missing.ftz", tmp_path):
        with pytest.raises(FileNotFoundError, match="no fastText language-ID model at"):
            LanguageIdentifier(model_path=str(path)).identify("some words")
    (tmp_path / "copy.ftz").write_bytes(model)                       # a whole model loads as before
    assert LanguageIdentifier(model_path=str(tmp_path / "copy.ftz")).identify("The cat sat on the mat.")[0] == "en"


# ---------------------------------------------------------------------------------------------- extraction
# libxml2's HTML parser and jusText are quadratic in a tag's attributes: trafilatura took 60 s on this
# 1.1 MB page (so about an hour on one of the 8 MiB pages a refinement reads).
SLOW_PAGE = "<html><body><p " + " ".join(f"a{i}='x'" for i in range(100_000)) + ">hi</p></body></html>"
PROSE_PAGE = "<html><body><article><p>" + "Real prose here. " * 30 + "</p></article></body></html>"


def test_extraction_is_bounded_in_time_and_outlives_its_child():
    extractor = BoundedExtractor(timeout_seconds=3)
    assert extractor.extract(PROSE_PAGE, "https://x.org") == (extract_text(PROSE_PAGE, "https://x.org"), "kept")
    started = time.monotonic()
    assert extractor.extract(SLOW_PAGE) == (None, "extraction_timeout")
    assert time.monotonic() - started < 3 + 5
    assert extractor.extract(PROSE_PAGE)[1] == "kept"                   # a fresh child takes the next page
    threading.Timer(0.5, os.kill, (extractor.pid, signal.SIGKILL)).start()  # a child that dies mid-page
    assert extractor.extract(SLOW_PAGE) == (None, "extraction_failed")
    assert extractor.extract("<html><body></body></html>") == (None, "no_main_text")
    shipped = pickle.loads(pickle.dumps(extractor))                     # as Beam ships it: its own child
    assert shipped.pid is None and shipped.extract(PROSE_PAGE)[1] == "kept" and shipped.pid != extractor.pid
    extractor.close()
    shipped.close()
    refiner = DocumentRefiner(RefineConfig(extraction_timeout_seconds=2))
    doc, events, dropped = refiner.refine({"id": "slow#0", "url": "https://x.org/slow", "html": SLOW_PAGE})
    assert doc is None and dropped["reason"] == "extraction_timeout"
    assert events[-1][:2] == ("extraction", "extraction_timeout")


# libxml2 and jusText hold this 0.3 MB page in about 300 MB at their peak (an 8 MiB one: 3 GB).
LINE_BREAK_PAGE = "<html><body><article>" + "w<br>" * 60_000 + "</article></body></html>"


def test_extraction_is_bounded_in_memory(monkeypatch):
    small = BoundedExtractor(memory_mb=128)
    assert small.extract(PROSE_PAGE)[1] == "kept"
    pid, started = small.pid, time.monotonic()
    assert small.extract(LINE_BREAK_PAGE) == (None, "extraction_memory")
    assert time.monotonic() - started < 5 and resident_bytes(pid) == 0    # killed at the limit, not at the end
    assert small.extract(PROSE_PAGE)[1] == "kept" and small.pid != pid
    # Under a larger limit the same page gives the text trafilatura gives in-process.
    large = BoundedExtractor(memory_mb=1024)
    assert large.extract(LINE_BREAK_PAGE) == (extract_text(LINE_BREAK_PAGE), "kept")
    large.close()
    # A page kept but leaving the child above half the limit (memory freed stays with a process)
    # gets the next page a fresh child; one below it does not. What a page leaves depends on the C
    # library's trimming, so the child's memory is read as 100 MB, then 50 MB (limit 128 MB).
    for left_mb, replaced in ((50, False), (100, True)):
        pid = small.pid
        monkeypatch.setattr(extraction, "resident_bytes", lambda _pid, mb=left_mb: mb << 20)
        assert small.extract(PROSE_PAGE)[1] == "kept"
        monkeypatch.undo()
        assert (small.pid != pid) == replaced and (resident_bytes(pid) == 0) == replaced
        small.extract(PROSE_PAGE)
    small.close()
    refiner = DocumentRefiner(RefineConfig(extraction_memory_mb=128))
    doc, events, dropped = refiner.refine({"id": "big#0", "url": "https://x.org/big", "html": LINE_BREAK_PAGE})
    assert doc is None and dropped["reason"] == "extraction_memory"
    assert events[-1][:2] == ("extraction", "extraction_memory")
    refiner.extractor.close()
    with pytest.raises(ValueError, match="extraction_memory_mb must be at least 128"):
        RefineConfig(extraction_memory_mb=100)
    with pytest.raises(ValueError, match="extraction_memory_mb"):
        RefineConfig.from_dict({"extraction_memory_mb": 2**21})


# ---------------------------------------------------------------------------------------------- language ID
def test_language_threshold_just_inside_and_outside():
    text = "The committee met on Tuesday and agreed to publish the report next month."
    language, score = LanguageIdentifier().identify(text)
    assert language == "en" and 0.5 < score < 1.0
    assert LanguageIdentifier(threshold=score - 1e-4).reject_reason(text) is None
    assert LanguageIdentifier(threshold=score + 1e-4).reject_reason(text) == "language_score"
    french = "Le comité s'est réuni mardi et a accepté de publier le rapport le mois prochain."
    assert LanguageIdentifier().reject_reason(french) == "language_fr"
    assert LanguageIdentifier(languages=("en", "fr")).reject_reason(french) is None
    # Newlines do not change the decision (fastText reads one line): the text is scored whole.
    assert LanguageIdentifier().identify(text.replace(" ", "\n", 3)) == pytest.approx((language, score), abs=1e-6)


def test_languages_the_model_does_not_know_are_refused():
    """A code lid.176 never predicts ("english", "EN") removed every document without an error."""
    with pytest.raises(ValueError, match="lid.176.ftz has no languages 'EN', 'english'; it knows 176 codes"):
        LanguageIdentifier(languages=("en", "english", "EN")).identify("text")
    assert LanguageIdentifier(languages=("en", "zh", "als")).identify("The cat sat on the mat.")[0] == "en"


def test_a_missing_language_model_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no fastText language-ID model at /nope"):
        LanguageIdentifier(model_path="/nope/lid.ftz").identify("text")


# ---------------------------------------------------------------------------------------------- text utilities
def test_word_splitting_follows_spacy_rules_on_punctuation():
    assert split_words('He said: "It\'s well-known (really)."') == [
        "He", "said", ":", '"', "It", "'s", "well", "-", "known", "(", "really", ")", ".", '"']
    assert split_words("Visit https://example.org/a?b=1, or e-mail a.b@c.org.") == [
        "Visit", "https://example.org/a?b=1", ",", "or", "e", "-", "mail", "a.b@c.org", "."]
    assert split_words("U.S. prices rose 3.5% to $1,200.") == ["U.S.", "prices", "rose", "3.5", "%", "to", "$",
                                                               "1,200", "."]
    assert minhash_words("The 2nd Café, on 12 May!") == ["the", "0nd", "cafe", "on", "0", "may"]


# ---------------------------------------------------------------------------------------------- readers
def warc_bytes(records) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, content_type, body, status in records:
        headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                                      http_headers=headers))
    return out.getvalue()


def read_all(path, limit=10_000):
    pages, rejects = [], []
    for kind, item in iter_records(str(path), max_page_bytes=limit):
        (pages if kind == "page" else rejects).append(item)
    return pages, rejects


def test_warc_pages_and_counted_rejects(tmp_path):
    html = "<html><body><p>Hello there.</p></body></html>".encode("utf-8")
    data = warc_bytes([("http://a.example/", "text/html; charset=utf-8", html, "200 OK"),
                       ("http://a.example/logo.png", "image/png", b"\x89PNG....", "200 OK"),
                       ("http://a.example/gone", "text/html", html, "404 Not Found"),
                       ("http://a.example/latin", "text/html; charset=iso-8859-1", "café".encode("latin-1"), "200 OK"),
                       ("http://a.example/bad", "text/html", b"\xff\xfe\xfa bad utf-8", "200 OK"),
                       ("http://a.example/huge", "text/html", b"<p>" + b"x" * 20_000 + b"</p>", "200 OK")])
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(data)
    pages, rejects = read_all(path)
    assert [p["url"] for p in pages] == ["http://a.example/", "http://a.example/latin"]
    assert pages[1]["html"] == "café" and pages[0]["id"] == f"{path}#0"
    assert [r["reason"] for r in rejects] == ["not_html", "http_status", "undecodable", "too_large"]
    # An archive cut inside a record keeps the records before the cut and reports the cut record.
    whole = read_all(path)
    (tmp_path / "cut.warc.gz").write_bytes(data[:-40])
    pages, rejects = read_all(tmp_path / "cut.warc.gz")
    renamed = lambda items: [{**r, "id": r["id"].replace("crawl", "cut"),  # noqa: E731
                              "source": r["source"].replace("crawl", "cut")} for r in items]
    assert pages == renamed(whole[0]) and rejects[:-1] == renamed(whole[1][:-1])
    assert rejects[-1]["reason"] == "declared_size_mismatch" and rejects[-1]["id"].endswith("#5")
    (tmp_path / "noise.warc.gz").write_bytes(bytes(random.Random(3).randrange(256) for _ in range(300)))
    pages, rejects = read_all(tmp_path / "noise.warc.gz")
    assert pages == [] and [r["reason"] for r in rejects] == ["corrupt_archive"]
    assert "at record 0: Unknown archive format" in rejects[0]["detail"]
    (tmp_path / "empty.warc").write_bytes(b"")
    assert [r["reason"] for r in read_all(tmp_path / "empty.warc")[1]] == ["empty"]


def test_declared_charsets_that_raise_or_decode_to_lone_surrogates(tmp_path):
    """A page's charset names any Python codec: "undefined" and "punycode" raised a bare
    UnicodeError (a WARC lost its remaining records, an HTML file ended the refinement), and utf-7
    or unicode_escape decoded to lone surrogates that Beam's coder could not encode (exit 1)."""
    import encodings
    import encodings.aliases
    import pkgutil

    codec_names = (set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                   | {module.name for module in pkgutil.iter_modules(encodings.__path__)})
    rng = random.Random(5)
    samples = [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 3, 64)] + [
        b"a-9999999999999", b"+2AA-", b"\\ud800 caf\xe9", b"<p>plain ascii</p>"]
    for name in sorted(codec_names):
        for data in samples:
            text = readers.decode_html(data, name)
            assert text is None or isinstance(text.encode("utf-8"), bytes), (name, data)   # a UTF-8 writer takes it
    html = b"<html><body><p>Hello there.</p></body></html>"
    data = warc_bytes([("http://a.example/undefined", "text/html; charset=undefined", html, "200 OK"),
                       ("http://a.example/puny", "text/html; charset=punycode", b"a-9999999999999", "200 OK"),
                       ("http://a.example/utf7", "text/html; charset=utf-7", b"<p>+2AA-</p>", "200 OK"),
                       ("http://a.example/escape", "text/html; charset=unicode_escape", b"\\ud800 \xe9", "200 OK"),
                       ("http://a.example/last", "text/html", html, "200 OK")])
    (tmp_path / "charsets.warc.gz").write_bytes(data)
    pages, rejects = read_all(tmp_path / "charsets.warc.gz")
    # ASCII bytes are read as UTF-8 when the declared codec fails; the unicode_escape page's \xe9 is not UTF-8.
    assert [p["url"].rsplit("/", 1)[1] for p in pages] == ["undefined", "puny", "utf7", "last"]
    assert pages[2]["html"] == "<p>+2AA-</p>" and [r["reason"] for r in rejects] == ["undecodable"]
    (tmp_path / "meta.html").write_bytes(b'<html><head><meta charset="undefined"></head><body>x</body></html>')
    assert len(read_all(tmp_path / "meta.html")[0]) == 1
    # The Python API's own pages: a clear error, not fastText's TypeError at the language stage.
    with pytest.raises(ValueError, match="'api#0': its text holds a lone surrogate"):
        DocumentRefiner().refine({"id": "api#0", "url": "https://x.org", "text": "decoded with surrogateescape \udcff"})


def test_an_uncompressed_archive_cut_inside_a_header_is_corrupt(tmp_path):
    html = b"<html><body><p>Hello there.</p></body></html>"
    data = b""
    for _ in range(4):
        out = io.BytesIO()
        writer = WARCWriter(out, gzip=False)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record("http://a.example/", "response", payload=io.BytesIO(html),
                                                      http_headers=headers))
        data += out.getvalue()
    record = len(data) // 4
    (tmp_path / "cut.warc").write_bytes(data[:2 * record + 30])          # 30 bytes into the third header
    pages, rejects = read_all(tmp_path / "cut.warc")
    assert len(pages) == 2 and [r["reason"] for r in rejects] == ["corrupt_archive"]
    (tmp_path / "cut2.warc").write_bytes(data[:3 * record - 20])          # inside the third record's body
    pages, rejects = read_all(tmp_path / "cut2.warc")
    assert len(pages) == 2 and [r["reason"] for r in rejects] in (["truncated_record"], ["declared_size_mismatch"])


def test_an_archive_with_a_zero_filled_tail_keeps_its_records_and_ends_quickly(tmp_path, monkeypatch):
    """A copy interrupted after preallocating leaves zeros: warcio read them as one header line,
    whole (16 MB of zeros took 12 s; 300 MB did not end in 5 minutes)."""
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1 << 20)   # the run limit: 8 MiB in use
    html = b"<html><body><p>Hello there.</p></body></html>"
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    for i in range(3):
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(f"http://a.example/{i}", "response",
                                                      payload=io.BytesIO(html), http_headers=headers))
    for name, tail in (("zeros.warc", bytes(4 << 20)), ("zeros.warc.gz", bytes(4 << 20))):
        data = out.getvalue() if name.endswith(".warc") else warc_bytes([("http://a.example/0", "text/html", html,
                                                                          "200 OK")] * 3)
        (tmp_path / name).write_bytes(data + tail)
        started = time.monotonic()
        pages, rejects = read_all(tmp_path / name)
        assert time.monotonic() - started < 5
        assert len(pages) == 3 and [r["reason"] for r in rejects] == ["corrupt_archive"], rejects
        assert rejects[0]["id"].endswith("#3")
        assert name.endswith(".gz") or "EndlessLineError at record 3: no line end in" in rejects[0]["detail"]
    (tmp_path / "all_zeros.warc").write_bytes(bytes(4 << 20))
    pages, rejects = read_all(tmp_path / "all_zeros.warc")
    assert pages == [] and "EndlessLineError at record 0: no line end in" in rejects[0]["detail"]


def test_header_blocks_are_bounded(tmp_path, monkeypatch):
    """warcio kept every header line of a record as Python objects 25 times their size (16 MB of
    short lines: 400 MB and 11 s), however many there were."""
    body = b"<html><body><p>" + b"Some words here. " * 20 + b"</p></body></html>"

    def record(url: bytes, warc_lines: int = 0, http_lines: int = 0) -> bytes:
        payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + b"X-H: v\r\n" * http_lines + b"\r\n" + body
        return (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + url + b"\r\n" + b"X-W: v\r\n" * warc_lines
                + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload + b"\r\n\r\n")

    path = tmp_path / "big.warc"     # at the limit in use: 3 MB of header lines in one record
    path.write_bytes(record(b"http://a.example/0") + record(b"http://a.example/1", http_lines=3 << 17))
    tracemalloc.start()
    started = time.monotonic()
    pages, rejects = read_all(path, limit=1 << 20)
    seconds, peak = time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(pages) == 1 and [r["reason"] for r in rejects] == ["corrupt_archive"]
    assert "HeaderBlockTooLarge at record 1: a header block of more than 1,048,576 bytes" in rejects[0]["detail"]
    assert peak < 40 << 20 and seconds < 10, (peak, seconds)   # before: 67 MB held, 4.5 s, the page read
    path.write_bytes(record(b"http://a.example/0") + b"W" * (2 << 20) + b"\r\n")   # a status line of 2 MiB
    pages, rejects = read_all(path, limit=1 << 20)
    assert len(pages) == 1 and "HeaderBlockTooLarge at record 1" in rejects[0]["detail"]
    monkeypatch.setattr(readers, "MAX_HEADER_BYTES", 1 << 14)
    lines = (1 << 14) // 8     # header lines of 8 bytes
    for where in ("warc_lines", "http_lines"):
        records = [record(b"http://a.example/0"), record(b"http://a.example/1", **{where: lines - 50}),
                   record(b"http://a.example/2", **{where: lines + 1}), record(b"http://a.example/3")]
        for suffix, pack in ((".warc", bytes), (".warc.gz", gzip.compress)):   # a gzip member per record
            path = tmp_path / f"{where}{suffix}"
            path.write_bytes(b"".join(map(pack, records)))
            pages, rejects = read_all(path, limit=1 << 20)
            assert [p["url"] for p in pages] == ["http://a.example/0", "http://a.example/1"], (where, suffix)
            assert [r["reason"] for r in rejects] == ["corrupt_archive"] and rejects[0]["id"].endswith("#2")
            assert "HeaderBlockTooLarge at record 2: a header block of more than 16,384 bytes" in rejects[0]["detail"]


def http_record(url: bytes, http_headers: bytes, body: bytes) -> bytes:
    payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + http_headers + b"\r\n" + body
    return (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + url + b"\r\nContent-Length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload + b"\r\n\r\n")


def chunks(data: bytes, size: int, extension: bytes = b"") -> bytes:
    return b"".join(b"%X%s\r\n%s\r\n" % (len(data[i:i + size]), extension, data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def test_chunked_and_compressed_bodies_are_read_as_warcio_reads_them_in_bounded_memory(tmp_path):
    """warcio's ChunkedDataReader held a whole chunk (up to 2 GiB) and inflated it at once: a 2 MB
    record of one gzip chunk took 4.9 GB."""
    page = b"<html><body><p>" + b"Some words here, and more. " * 400 + b"</p></body></html>"
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    bodies = {"chunks": (b"Transfer-Encoding: chunked\r\n", chunks(page, 1000)),
              "extensions": (b"Transfer-Encoding: chunked\r\n", chunks(page, 777, b";name=value")),
              "gzip_chunks": (b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n",
                              chunks(gzip.compress(page), 50)),
              "raw_deflate": (b"Transfer-Encoding: chunked\r\nContent-Encoding: deflate\r\n",
                              chunks(deflate.compress(page) + deflate.flush(), 300)),
              "gzip": (b"Content-Encoding: gzip\r\n", gzip.compress(page)),
              "not_chunked": (b"Transfer-Encoding: chunked\r\n", page),          # the header lied
              "cut": (b"Transfer-Encoding: chunked\r\n", chunks(page, 5000)[:3000]),
              "plain": (b"", page)}
    for name, (headers, body) in bodies.items():
        path = tmp_path / f"{name}.warc"
        path.write_bytes(http_record(b"http://a.example/" + name.encode(), headers, body))
        with open(path, "rb") as f:
            record = next(iter(ArchiveIterator(f)))
            ours = readers._read_bounded(readers.content_stream(record), 1 << 20)
        with open(path, "rb") as f:
            record = next(iter(ArchiveIterator(f)))
            theirs = readers._read_bounded(record.content_stream(), 1 << 20)
        assert ours == theirs, name
        assert name in ("cut", "not_chunked") or ours[0] == page, name
    # A chunk not followed by CRLF: the rest is passed on as it is (warcio also kept its size line).
    path.write_bytes(http_record(b"http://a.example/", b"Transfer-Encoding: chunked\r\n", b"5\r\nHelloXX" + page))
    with open(path, "rb") as f:
        assert readers._read_bounded(readers.content_stream(next(iter(ArchiveIterator(f)))), 1 << 20)[0] == \
            b"HelloXX" + page
    # One gzip chunk of 256 MiB of zeros in a 0.3 MB record: read no further than the page limit.
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = squeeze.compress(b"<p>") + b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(256)) + squeeze.flush()
    path = tmp_path / "bomb.warc"
    encoded = b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
    path.write_bytes(http_record(b"http://a.example/bomb", encoded, b"%X\r\n%s\r\n0\r\n\r\n" % (len(bomb), bomb))
                     + http_record(b"http://a.example/next", b"", page))
    tracemalloc.start()
    pages, rejects = read_all(path, limit=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r["reason"] for r in rejects] == ["too_large"] and [p["url"] for p in pages] == ["http://a.example/next"]
    assert peak < 32 << 20, peak      # before: 557 MB (256 MiB inflated at once, and copies of it)


def test_records_whose_declared_size_does_not_match_their_content(tmp_path):
    body = b"<html><body><p>short body</p></body></html>"
    record = lambda length: (  # noqa: E731
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://a.example/\r\n"
        b"Content-Type: application/http; msgtype=response\r\nContent-Length: " + length + b"\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body)
    # Declares more than the file holds: the next record must not be read as this page's body.
    (tmp_path / "long.warc").write_bytes(record(b"100000") + record(b"100000"))
    pages, rejects = read_all(tmp_path / "long.warc", limit=1_000_000)
    assert pages == [] and [r["reason"] for r in rejects] == ["declared_size_mismatch"]
    assert "Content-Length 100000" in rejects[0]["detail"]
    # Declares less: the rest of the record is not a record; the archive is reported corrupt there.
    (tmp_path / "short.warc").write_bytes(record(b"10") + record(b"10"))
    pages, rejects = read_all(tmp_path / "short.warc", limit=1_000_000)
    assert pages == [] and rejects[-1]["reason"] == "corrupt_archive"
    # Declares less, with the blank lines that end a record: warcio read the page cut at the declared
    # size, printed a warning, and went on; the cut page went on as a page.
    page = b"<html><body><p>" + b"Some words here. " * 30 + b"</p>\n<p>one more line</p></body></html>"
    whole = http_record(b"http://a.example/whole", b"", page)
    size = len(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + page)

    def declaring(length: bytes) -> bytes:
        return http_record(b"http://a.example/cut", b"", page).replace(b"Content-Length: %d" % size,
                                                                     b"Content-Length: " + length)
    for length in (b"100", b"%d" % (size - 30), b"%d" % (size + 4), b"-100", b"+%d" % size, "٤٥٥".encode(),
                   b"0x20", b"1e3", b""):
        (tmp_path / "declared.warc").write_bytes(whole + declaring(length) + whole)
        pages, rejects = read_all(tmp_path / "declared.warc", limit=1_000_000)
        assert all(p["url"].endswith("/whole") and p["html"] == page.decode() for p in pages), length
        assert pages[0]["id"].endswith("#0") and rejects[0]["id"].endswith("#1"), length
        assert rejects[0]["reason"] == "declared_size_mismatch", (length, rejects)
        assert ("is not a size" if not length.isdigit() else "does not end the record") in rejects[0]["detail"]
    (tmp_path / "declared.warc").write_bytes(whole + declaring(b"%d" % size) + whole)     # the size it has
    assert [p["url"][-4:] for p in read_all(tmp_path / "declared.warc", limit=1_000_000)[0]] == ["hole", "/cut", "hole"]


def test_html_and_jsonl_inputs(tmp_path):
    (tmp_path / "a.html").write_text('<html><head><link rel="canonical" href="https://x.org/a"></head>'
                                     '<body><p>Text</p></body></html>')
    (tmp_path / "b.htm").write_bytes(b"")
    (tmp_path / "c.html").write_bytes(b"\xc3\x28 invalid utf-8")
    pages, rejects = read_all(tmp_path / "a.html")
    assert pages[0]["url"] == "https://x.org/a"
    assert [r["reason"] for r in read_all(tmp_path / "b.htm")[1]] == ["empty"]
    assert [r["reason"] for r in read_all(tmp_path / "c.html")[1]] == ["undecodable"]
    rows = [json.dumps({"url": "https://x.org/1", "text": "hello"}), "{not json", json.dumps([1, 2]),
            json.dumps({"text": "no url"}), json.dumps({"url": "https://x.org/2", "html": 5}),
            json.dumps({"url": "https://x.org/3", "html": "<p>x</p>", "id": "own"}), "",
            json.dumps({"url": "https://x.org/4", "text": "y" * 20_000}),
            json.dumps({"url": "https://x.org/5", "text": "lone \ud800 surrogate"}),
            '{"url": "https://x.org/6", "text": ' + "[" * 3_000 + "]" * 3_000 + "}"]   # too deep to decode
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    pages, rejects = read_all(tmp_path / "d.jsonl")
    assert [p["url"] for p in pages] == ["https://x.org/1", "https://x.org/3"]
    assert pages[1]["id"] == f"{tmp_path / 'd.jsonl'}#own"
    assert [r["reason"] for r in rejects] == ["invalid_json", "invalid_json", "missing_field", "missing_field",
                                              "too_large", "undecodable", "invalid_json"]
    assert "lone surrogate '\\ud800'" in rejects[-2]["detail"] and "nested too deeply" in rejects[-1]["detail"]
    with gzip.open(tmp_path / "e.jsonl.gz", "wt") as f:
        f.write(rows[0] + "\n")
    assert [p["url"] for p in read_all(tmp_path / "e.jsonl.gz")[0]] == ["https://x.org/1"]
    (tmp_path / "f.jsonl.gz").write_bytes(b"\x1f\x8b\x08garbage")
    assert [r["reason"] for r in read_all(tmp_path / "f.jsonl.gz")[1]] == ["corrupt_file"]
    # Compressed HTML and JSON Lines are read by content (bzip2, xz; gzip under a plain name), damaged
    # ones (cut, a CRC or length trailer that does not match) are corrupt_file after the rows before
    # the damage, zstd is unsupported_file naming the command that reads it.
    import bz2
    import lzma
    random_text = random.Random(7).randbytes(4_000).hex()   # so that the damage at the end follows row 1
    two = (rows[0] + "\n" + json.dumps({"url": "https://x.org/7", "text": random_text}) + "\n").encode()
    whole = gzip.compress(two)
    for name, data in (("h.jsonl.bz2", bz2.compress(two)), ("h.jsonl.xz", lzma.compress(two)),
                       ("gzip-content.jsonl", whole)):
        (tmp_path / name).write_bytes(data)
        assert [p["url"] for p in read_all(tmp_path / name)[0]] == ["https://x.org/1", "https://x.org/7"], name
    page = b"<html><body><p>compressed page</p></body></html>"
    for name, data in (("page.html", gzip.compress(page)), ("page.html.gz", gzip.compress(page)),
                       ("page.htm.bz2", bz2.compress(page))):
        (tmp_path / name).write_bytes(data)
        assert read_all(tmp_path / name)[0][0]["html"].startswith("<html><body><p>compressed page"), name
    for name, data, kept in (("cut.jsonl.gz", whole[:-40], 1), ("cut.jsonl.xz", lzma.compress(two)[:-2000], 1),
                             ("crc.jsonl.gz", whole[:-8] + bytes(4) + whole[-4:], 2),   # the trailer is read last
                             ("length.jsonl.gz", whole[:-4] + bytes(4), 2)):
        (tmp_path / name).write_bytes(data)
        pages, rejects = read_all(tmp_path / name)
        assert [p["url"] for p in pages] == ["https://x.org/1", "https://x.org/7"][:kept], name
        assert [r["reason"] for r in rejects] == ["corrupt_file"], name
        assert f"{tmp_path / name}: its" in rejects[0]["detail"], rejects
    (tmp_path / "z.jsonl").write_bytes(b"\x28\xb5\x2f\xfd" + two)
    rejects = read_all(tmp_path / "z.jsonl")[1]
    assert [r["reason"] for r in rejects] == ["unsupported_file"] and "zstd -dc" in rejects[0]["detail"]
    for empty in (b"", b"\n  \n"):     # an empty file is a counted reject, as for archives and pages
        (tmp_path / "g.jsonl").write_bytes(empty)
        assert [r["reason"] for r in read_all(tmp_path / "g.jsonl")[1]] == ["empty"]
    assert [r["reason"] for r in iter_stream(io.BytesIO(b"x"), "notes.txt") for r in [r[1]]] == ["unsupported_file"]


def test_jsonl_gz_is_inflated_in_bounded_memory_by_the_pipeline_reader(tmp_path):
    # 256 MB of 1 MB lines that gzip to 0.3 MB, then a real row. Beam's CompressionTypes.GZIP, which
    # the pipeline's reader used, inflates 16 MiB of input at once: all 256 MB in one buffer.
    from rw_tf.refine.pipeline import DOC, DROP, _ReadFile

    bomb = tmp_path / "bomb.jsonl.gz"
    row = json.dumps({"url": "https://x.org/last", "text": "the row after the bomb"}).encode()
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        for _ in range(256):
            f.write(b"x" * (1 << 20) + b"\n")
        f.write(row + b"\n")
    tracemalloc.start()
    records = list(_ReadFile(max_page_bytes=1 << 16).process(str(bomb)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32e6, f"peak {peak / 1e6:.0f} MB"
    assert [r[1]["url"] for r in records if r[0] == DOC] == ["https://x.org/last"]
    assert [r[1]["reason"] for r in records if r[0] == DROP] == ["too_large"] * 256
    # A deflate stream that breaks after its first row: that row, then the file as a counted reject.
    good = gzip.compress(row + b"\n" + b"y" * 100_000 + b"\n")
    (tmp_path / "broken.jsonl.gz").write_bytes(good[:30] + bytes(b ^ 0x5A for b in good[30:]))
    pages, rejects = read_all(tmp_path / "broken.jsonl.gz")
    assert [r["reason"] for r in rejects] == ["corrupt_file"] and len(pages) <= 1, rejects
    assert "its gzip data cannot be decompressed (Error -3 while decompressing data" in rejects[0]["detail"], rejects


def test_refine_config_files_are_type_checked(tmp_path):
    from rw_tf.refine import RefineConfig

    assert RefineConfig.from_dict({"gopher_quality": {"min_words": 40}}).gopher_quality.min_words == 40
    for values, message in (({"gopher_quality": {"min_words": "x"}}, 'GopherQualityConfig.min_words in cfg '
                                                                      r'\(gopher_quality\) must be int, got "x"'),
                            ({"gopher_quality": 5}, "RefineConfig.gopher_quality in cfg must be GopherQualityConfig"),
                            ({"languages": "en"}, r"RefineConfig.languages in cfg must be Tuple\[str, ...\]"),
                            ({"gopher_repetition": {"top_ngram_char_fractions": [[None, 1]]}},
                             r"top_ngram_char_fractions in cfg \(gopher_repetition\) must be \[n, fraction\] pairs"),
                            ([1], "RefineConfig settings in cfg must be an object, not a list")):
        with pytest.raises(ValueError, match=message):
            RefineConfig.from_dict(values, "cfg")


@pytest.mark.parametrize("values, message", [
    # n of 0 or less: duplicate_ngram_chars stepped forward by n words and never ended (the
    # refinement hung on its first document); a fraction outside [0, 1] turned a rule off or made
    # it drop every document; a repeated n is two thresholds for one rule.
    ({"gopher_repetition": {"duplicate_ngram_char_fractions": [[0, 0.2]]}}, "duplicate_ngram_char_fractions must be"),
    ({"gopher_repetition": {"duplicate_ngram_char_fractions": [[-2, 0.2]]}}, "duplicate_ngram_char_fractions must be"),
    ({"gopher_repetition": {"top_ngram_char_fractions": [[2, 1.5]]}},
     "each fraction in \\[0, 1\\]; got \\(\\(2, 1.5\\),\\)"),
    ({"gopher_repetition": {"top_ngram_char_fractions": [[2, 0.1], [2, 0.2]]}}, "each n once"),
    ({"gopher_repetition": {"top_ngram_char_fractions": [[10**6, 0.1]]}}, "1 to 1000 words"),
    # Settings that can only drop every document.
    ({"gopher_quality": {"min_words": 200, "max_words": 100}}, "min_words \\(200\\) is above max_words \\(100\\)"),
    ({"gopher_quality": {"min_mean_word_length": 12.0}}, "min_mean_word_length \\(12.0\\) is above"),
    ({"gopher_quality": {"stop_words": ["the"], "min_stop_words": 2}}, "more than the 1 distinct stop_words"),
])
def test_refine_settings_that_hang_or_drop_everything_are_refused(values, message):
    from rw_tf.refine import RefineConfig

    with pytest.raises(ValueError, match=message):
        RefineConfig.from_dict(values, "cfg")


def test_duplicate_ngram_rule_ends_for_every_allowed_n():
    words = [f"w{i % 7}" for i in range(60)]    # repeats every 7 words
    for n in (1, 2, 7, 59, 60, 61, 1000):
        chars = duplicate_ngram_chars(words, n)
        assert 0 <= chars <= len("".join(words))
    assert duplicate_ngram_chars(words, 7) == len("".join(words[7:56]))   # 7 repeats of the first 7 words
