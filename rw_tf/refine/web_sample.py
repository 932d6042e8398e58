"""An offline sample of the web for the refinement: real pages plus planted cases for every stage.

Real pages (nothing is downloaded at run time; the packages ship in requirements/data-packages.txt
and ``make env`` fetches the WARC):
- ``wikipedia/``: the English Wikipedia articles of the dump excerpt in gensim's test data
  (``enwiki-latest-pages-articles1...-shortened.bz2``), wikitext rendered to HTML pages with the
  site's navigation, cookie banner, share buttons and footer around the article;
- ``news/``: the 300 news articles of the Lee background corpus (gensim), as pages of a news site
  with menus, bylines, comment counters and "Read more" links;
- ``pydoc/``: standard-library modules rendered by ``pydoc.HTMLDoc`` (documentation full of code,
  which the quality filter is known to reject);
- ``other_languages/``: Bulgarian Wikipedia (gensim's ``bgwiki`` excerpt), Russian prose
  (``crime-and-punishment.txt``) and pages of Django's human translations in seven languages
  (``rw_tf.data.multilingual``);
- ``iana.warc.gz``: 20 captured iana.org pages in a real WARC (the ``pywb`` 2.10.0 source
  distribution's sample archive; ``make env`` extracts it to ``<venv>/share/rw-tf/web``).
Planted (``planted.jsonl``, each row says what it plants, ``planted_pairs.json`` the near-duplicate
pairs with their exact Jaccard similarity): spam URLs and a blocklisted domain, keyword stuffing,
boilerplate-only pages, near-duplicates at known Jaccard similarities (0.3 to 0.98), pages quoting a
long passage of another, the same URL captured twice with different content, bullet and hashtag
pages, short pages.

``write_web_sample(folder)`` writes it all and returns the input patterns and the blocklist file
for ``run_refinement``.

Example:
    >>> sample = write_web_sample("/tmp/web")                         # doctest: +SKIP
    >>> run_refinement(sample["inputs"], "/tmp/refined",
    ...                RefineConfig(url_filter=UrlFilterConfig(blocklist_file=sample["blocklist_file"])))
"""
from __future__ import annotations

import bz2
import html
import importlib
import json
import os
import pydoc
import random
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from typing import Dict, Iterator, List, Optional, Tuple

from rw_tf.data.multilingual import multilingual_documents
from rw_tf.data.similarity_judgements import lee_data_dir
from rw_tf.refine.minhash import jaccard

ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
BGWIKI = "bgwiki-latest-pages-articles-shortened.xml.bz2"
PYDOC_MODULES = ("json", "csv", "argparse", "logging", "pathlib", "collections", "itertools", "functools",
                 "datetime", "email", "http", "sqlite3", "unittest", "textwrap", "string", "random", "statistics",
                 "decimal", "fractions", "heapq", "bisect", "shutil", "tempfile", "glob", "fnmatch", "zipfile",
                 "tarfile", "gzip", "hashlib", "hmac", "secrets", "base64", "html", "xml", "urllib", "socket",
                 "ssl", "select", "asyncio", "threading")
OTHER_LANGUAGES = ("fr", "de", "es", "ru", "ar", "zh_Hans", "ja")
BLOCKED_DOMAIN = "free-casino-bonus.example"
JACCARD_TARGETS = (0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.3)


def web_data_dir() -> str:
    """Where ``make env`` puts data fetched at set-up (the iana.org WARC)."""
    return os.environ.get("RW_TF_WEB_DATA") or os.path.join(sys.prefix, "share", "rw-tf", "web")


# ---------------------------------------------------------------------------------------------
# Wikitext -> HTML (enough of MediaWiki's markup for article prose)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_TAGS = re.compile(r"</?(?:small|big|span|div|center|sup|sub|nowiki|blockquote|br|abbr|u|s|poem|math|gallery)"
                   r"[^>]*>", re.I)
_FILE_LINK = re.compile(r"\[\[(?:File|Image|Category|Файл|Категория|[a-z\-]{2,12}):"
                        r"[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.I)
_LINK = re.compile(r"\[\[([^\]|]*)\|([^\]]*)\]\]|\[\[([^\]]*)\]\]")
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://\S+\s+([^\]]*)\]|\[(?:https?|ftp)://\S+\]")
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$")


def _strip_nested(text: str, open_: str, close: str) -> str:
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth, i = depth + 1, i + len(open_)
        elif depth and text.startswith(close, i):
            depth, i = depth - 1, i + len(close)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def wikitext_to_html(title: str, wikitext: str) -> Optional[str]:
    """The article body as HTML (``<h2>`` headings, ``<p>`` paragraphs, ``<ul>`` lists); None for
    redirects and pages with almost no prose."""
    if wikitext.lstrip().upper().startswith("#REDIRECT"):
        return None
    text = _REF.sub("", _COMMENT.sub("", wikitext))
    text = _strip_nested(_strip_nested(text, "{{", "}}"), "{|", "|}")
    text = _FILE_LINK.sub("", text)
    text = _LINK.sub(lambda m: m.group(2) if m.group(1) is not None else m.group(3), text)
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", _TAGS.sub("", text)).replace("'''", "").replace("''", "")
    blocks, paragraph, items = [], [], []

    def flush():
        if paragraph:
            blocks.append(f"<p>{html.escape(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        line = line.strip()
        heading = _HEADING.match(line)
        if heading:
            flush()
            name = heading.group(2).strip()
            if name.lower() in ("references", "external links", "see also", "notes", "further reading", "sources",
                                "bibliography"):
                break
            blocks.append(f"<h2>{html.escape(name)}</h2>")
        elif line.startswith(("*", "#")):
            if paragraph:
                flush()
            items.append(line.lstrip("*#: ").strip())
        elif not line:
            flush()
        elif not line.startswith(("|", "!", ":", ";", "__")):
            if items:
                flush()
            paragraph.append(line)
    flush()
    body = "\n".join(b for b in blocks if len(b) > 9)
    return body if len(re.sub(r"<[^>]+>", " ", body).split()) >= 30 else None


def wiki_articles(path: str) -> Iterator[Tuple[str, str]]:
    """(title, wikitext) of the main-namespace pages of a MediaWiki XML dump (.bz2)."""
    with bz2.open(path, "rb") as f:
        for _, element in ET.iterparse(f):
            if element.tag.endswith("}page"):
                ns = element.find("{*}ns")
                text = element.find("{*}revision/{*}text")
                title = element.find("{*}title")
                if ns is not None and ns.text == "0" and text is not None and text.text:
                    yield title.text, text.text
                element.clear()


# ---------------------------------------------------------------------------------------------
# Page templates: site chrome around the main text, as real sites have it
_COOKIE = ("We use cookies to improve your experience on our site. By continuing to browse you agree to our "
           "use of cookies. Accept all cookies")


def _page(title: str, canonical: str, site: str, nav: List[str], body_html: str, extra_top: str = "",
          extra_bottom: str = "", lang: str = "en") -> str:
    nav_html = " | ".join(f'<a href="/{n.lower().replace(" ", "-")}">{html.escape(n)}</a>' for n in nav)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)} - {site}</title>
<link rel="canonical" href="{canonical}"></head>
<body>
<div class="cookie-banner"><p>{_COOKIE}</p></div>
<header><div class="logo">{site}</div><nav>{nav_html}</nav>
<form class="search"><input name="q" placeholder="Search {site}"><button>Search</button></form></header>
<main><article>
<h1>{html.escape(title)}</h1>
{extra_top}
{body_html}
{extra_bottom}
</article></main>
<aside><h3>Share this article</h3><ul><li>Share on Facebook</li><li>Share on Twitter</li><li>Email</li></ul></aside>
<footer><p>{nav_html}</p><p>&copy; 2016 {site}. All rights reserved. Privacy policy | Terms of use</p></footer>
</body></html>
"""


def _wikipedia_page(title: str, body: str, lang: str = "en") -> str:
    url = f"https://{lang}.wikipedia.org/wiki/{title.replace(' ', '_')}"
    return _page(title, url, "Wikipedia", ["Main page", "Contents", "Current events", "Random article", "About"],
                 body, extra_top="<p>From Wikipedia, the free encyclopedia</p>", lang=lang,
                 extra_bottom=f"<p>This page was last edited on 22 April 2016. Retrieved from {html.escape(url)}</p>")


def _news_page(number: int, text: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    title = " ".join(sentences[0].split()[:10])
    paragraphs = "\n".join(f"<p>{html.escape(' '.join(sentences[i:i + 3]))}</p>" for i in range(0, len(sentences), 3))
    # Sites differ in how much chrome leaks into the article: every third page has a comment
    # counter, every fifth a "Read more" link and a related-sections bar.
    top = f"<p>By Staff Reporter</p><p>{number % 17 + 2} comments</p>" if number % 3 == 0 else ""
    bottom = "<p>Read more</p><p>Related: World | Business | Sport</p>" if number % 5 == 0 else ""
    return _page(title, f"https://news.example.org/2004/story-{number:03d}", "The Daily Example",
                 ["Home", "World", "Business", "Sport", "Weather"], paragraphs, extra_top=top, extra_bottom=bottom)


# ---------------------------------------------------------------------------------------------
# Planted cases
def _variant_at(text: str, target: float, rng: random.Random, vocabulary: List[str]) -> Tuple[str, float]:
    """``text`` with random words replaced until the 5-gram Jaccard similarity falls to ``target``."""
    words = text.split()
    order = list(range(len(words)))
    rng.shuffle(order)
    low, high = 0, len(words)
    best = (text, 1.0)
    while low < high:                      # binary search on the number of replaced words
        middle = (low + high) // 2
        changed = list(words)
        for i in order[:middle]:
            changed[i] = rng.choice(vocabulary)
        variant = " ".join(changed)
        similarity = jaccard(text, variant)
        if similarity > target:
            low, best = middle + 1, (variant, similarity) if abs(similarity - target) < abs(best[1] - target) else best
        else:
            high, best = middle, (variant, similarity) if abs(similarity - target) < abs(best[1] - target) else best
    return best


def _planted(fresh: List[str], news: List[str], articles: List[Tuple[str, str]], seed: int
             ) -> Tuple[List[Dict], List[Dict]]:
    """Planted rows from ``fresh`` texts (the Lee test documents, found nowhere else in the sample,
    so that every removal is the planted one); replacement words come from ``news``."""
    rng = random.Random(seed)
    vocabulary = sorted({w for text in news for w in text.split() if w.isalpha()})
    rows: List[Dict] = []

    def add(kind: str, url: str, text: str, **extra) -> str:
        row_id = f"planted-{len(rows):04d}-{kind}"
        rows.append({"id": row_id, "url": url, "text": text, "planted": kind, **extra})
        return row_id

    prose = fresh
    # URL filter: a blocklisted domain, a hard word, two soft words.
    add("blocklisted_domain", f"https://www.{BLOCKED_DOMAIN}/news/today", prose[0])
    add("url_hard_word", "https://video.example.net/xxx/clip-1", prose[1])
    add("url_soft_words", "https://deals.example.net/cheap-pills-online", prose[2])
    # Repetition and quality filters.
    add("keyword_stuffing", "https://shop.example.net/best-shoes",
        " ".join(["Buy the best shoes online now with free shipping and the best prices."] * 30))
    add("duplicate_lines", "https://forum.example.net/thread/7", "\n".join(
        ["Click the link below to see the offer that is valid only today for you."] * 12 + prose[3].split(". ")))
    add("short_page", "https://example.net/contact", "Contact us at the office. We are open from nine to five.")
    add("hashtags", "https://social.example.net/post/1",
        " ".join(f"#{w}" for w in prose[4].split()[:80]) + " and the best of it with the team")
    bullet_words = (prose[5] + " " + prose[7]).split()
    add("bullets_only", "https://example.net/list", "\n".join(
        "• " + " ".join(bullet_words[i:i + 8]) for i in range(0, min(len(bullet_words), 160), 8)))
    add("code_symbols", "https://example.net/snippet", " ".join(["x = {a: [1, 2], b: (3, 4)}; y = x[a] + 1;"] * 30))
    add("boilerplate_lines", "https://blog.example.net/post/3",
        prose[6] + "\n" + "\n".join(["Share", "12 likes", "Sign in", "Home | Blog | Shop | Contact",
                                     "SUBSCRIBE TO OUR NEWSLETTER", "Read more", "3 comments", "Tweet", "Menu",
                                     "Back to top", "1,024 views", "Follow us"]))
    # A little boilerplate (under 5% of the page): the line goes, the page stays.
    add("boilerplate_light", "https://blog.example.net/post/4", prose[8] + " " + prose[9] + "\n12 likes")
    # Near-duplicates at known Jaccard similarities of their 5-gram shingles.
    pairs, originals = [], []
    for n, target in enumerate(JACCARD_TARGETS):
        source = prose[10 + n] + " " + prose[30 + n]
        original = add("near_duplicate_original", f"https://original.example.org/story/{n}", source)
        originals.append(original)
        variant, similarity = _variant_at(source, target, rng, vocabulary)
        copy = add("near_duplicate_variant", f"https://mirror{n}.example.com/copy/{n}", variant,
                   jaccard=round(similarity, 4))
        pairs.append({"original": original, "variant": copy, "jaccard": similarity, "target": target})
    exact = add("exact_copy", "https://copycat.example.com/story/0", prose[10] + " " + prose[30])
    pairs.append({"original": originals[0], "variant": exact, "jaccard": 1.0,
                  "target": 1.0})
    # A long passage of a Wikipedia article quoted inside otherwise new text (exact-substring dedup).
    title, body = articles[0]
    passage = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(body)).split()[:120])
    add("quoted_passage", "https://essays.example.org/on-quoting", prose[20] + "\n\n" + passage + "\n\n" + prose[21],
        quotes=title)
    # The same URL captured twice (two crawls) with different content: URL deduplication.
    add("url_recrawl_a", "https://news.example.org/updates/live", prose[22])
    add("url_recrawl_b", "https://NEWS.example.org/updates/live/", prose[23])
    return rows, pairs


# ---------------------------------------------------------------------------------------------
def write_web_sample(folder: str, max_wikipedia: Optional[int] = None, max_news: Optional[int] = None,
                     max_pydoc: Optional[int] = None, seed: int = 0) -> Dict:
    """Writes the sample (see the module docstring) under ``folder``; returns ``{"inputs": [patterns],
    "blocklist_file", "counts", "planted_pairs"}``. The ``max_*`` arguments make a smaller sample
    (tests); the planted cases are always all there."""
    data = lee_data_dir()
    for sub in ("wikipedia", "news", "pydoc", "other_languages"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    counts: Dict[str, int] = {}
    articles = []
    for title, wikitext in wiki_articles(os.path.join(data, ENWIKI)):
        body = wikitext_to_html(title, wikitext)
        if body:
            articles.append((title, body))
        if max_wikipedia is not None and len(articles) >= max_wikipedia:
            break
    for n, (title, body) in enumerate(articles):
        with open(os.path.join(folder, "wikipedia", f"{n:04d}.html"), "w", encoding="utf-8") as f:
            f.write(_wikipedia_page(title, body))
    counts["wikipedia"] = len(articles)
    with open(os.path.join(data, "lee_background.cor"), encoding="latin-1") as f:
        news = [line.strip() for line in f if line.strip()]
    for n, text in enumerate(news[:max_news]):
        with open(os.path.join(folder, "news", f"{n:04d}.html"), "w", encoding="utf-8") as f:
            f.write(_news_page(n, text))
    counts["news"] = len(news[:max_news])
    counts["pydoc"] = _write_pydoc_pages(os.path.join(folder, "pydoc"), PYDOC_MODULES[:max_pydoc])
    counts["other_languages"] = _write_other_languages(os.path.join(folder, "other_languages"), data)
    with open(os.path.join(data, "lee.cor"), encoding="latin-1") as f:
        fresh = [line.strip() for line in f if line.strip()]
    rows, pairs = _planted(fresh, news, articles, seed)
    with open(os.path.join(folder, "planted.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    with open(os.path.join(folder, "planted_pairs.json"), "w", encoding="utf-8") as f:
        json.dump(pairs, f, indent=2)
    counts["planted"] = len(rows)
    blocklist = os.path.join(folder, "blocklist.txt")
    with open(blocklist, "w", encoding="utf-8") as f:
        f.write(f"# domains removed by the URL filter\n{BLOCKED_DOMAIN}\n")
    inputs = [os.path.join(folder, sub, "*.html") for sub in ("wikipedia", "news", "pydoc", "other_languages")]
    inputs.append(os.path.join(folder, "planted.jsonl"))
    warc = os.path.join(web_data_dir(), "iana.warc.gz")
    if os.path.exists(warc):
        shutil.copy(warc, os.path.join(folder, "iana.warc.gz"))
        inputs.append(os.path.join(folder, "iana.warc.gz"))
    counts["iana_warc"] = int(os.path.exists(warc))
    return {"inputs": inputs, "blocklist_file": blocklist, "counts": counts,
            "planted_pairs": os.path.join(folder, "planted_pairs.json")}


def _write_pydoc_pages(folder: str, modules) -> int:
    written = 0
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        page = pydoc.HTMLDoc().page(pydoc.describe(module), pydoc.HTMLDoc().document(module, name))
        page = page.replace("<head>", f'<head><link rel="canonical" href="https://docs.python.org/3/library/{name}">',
                            1)
        with open(os.path.join(folder, f"{name}.html"), "w", encoding="utf-8") as f:
            f.write(page)
        written += 1
    return written


def _write_other_languages(folder: str, data: str) -> int:
    written = 0
    for title, wikitext in wiki_articles(os.path.join(data, BGWIKI)):
        body = wikitext_to_html(title, wikitext)
        if body:
            with open(os.path.join(folder, f"bg-{written:03d}.html"), "w", encoding="utf-8") as f:
                f.write(_wikipedia_page(title, body, lang="bg"))
            written += 1
    with open(os.path.join(data, "crime-and-punishment.txt"), encoding="utf-8") as f:
        text = f.read()
    body = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n") if p.strip())
    with open(os.path.join(folder, "ru-000.html"), "w", encoding="utf-8") as f:
        f.write(_page("Преступление и наказание", "https://lib.example.ru/dostoevsky/1", "Библиотека",
                      ["Главная", "Авторы", "Книги"], body, lang="ru"))
    written += 1
    first_of_each = {}
    for language, sentences in multilingual_documents(OTHER_LANGUAGES, messages_per_document=60):
        first_of_each.setdefault(language, sentences)
    for language, sentences in first_of_each.items():
        body = "\n".join(f"<p>{html.escape(x)}</p>" for x in sentences)
        with open(os.path.join(folder, f"{language}-{written:03d}.html"), "w", encoding="utf-8") as f:
            f.write(_page(sentences[0][:40], f"https://docs.example.{language.lower()}/page/{written}", "Docs",
                          ["Home", "Docs"], body, lang=language))
        written += 1
    return written
