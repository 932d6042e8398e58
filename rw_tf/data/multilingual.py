"""Real multilingual text that installs offline: the translation catalogues Django ships.

Django (a data package: installed with ``--no-deps``, never imported) carries compiled gettext
catalogues (``django/**/locale/<language>/LC_MESSAGES/*.mo``) for about 100 languages: the
human translations of its messages ("Enter a valid email address.", "%(model)s with this
%(field)s already exists.", ...), read here with the standard library's ``gettext``. ``en`` is
the English source strings (the catalogues' message ids). Messages shorter than 20 display
characters (East Asian wide characters count two, as in ``rw_tf.data.corpus``) and repeats are
left out, and the catalogue order is kept; consecutive messages form documents of
``messages_per_document`` sentences.

Example:
    >>> docs = multilingual_documents(["fr", "ja"])          # doctest: +SKIP
    >>> docs[0][0], docs[0][1][0][:40]                        # doctest: +SKIP
    ('fr', 'La valeur %(datetime)s n’a pas pu être ')
"""
from __future__ import annotations

import gettext
import glob
import importlib.util
import os
from typing import Dict, List, Sequence, Tuple

from rw_tf.data.corpus import Document, display_width

DEFAULT_LANGUAGES = ("en", "fr", "de", "es", "ru", "ar", "zh_Hans", "ja")
MIN_MESSAGE_WIDTH = 20


def django_dir() -> str:
    spec = importlib.util.find_spec("django")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the multilingual corpus reads Django's translation catalogues: install "
                                "Django==4.2.16 with --no-deps (requirements/data-packages.txt; make env does it)")
    return list(spec.submodule_search_locations)[0]


def _catalogues(language: str) -> List[Dict]:
    files = sorted(glob.glob(os.path.join(django_dir(), "**", "locale", language, "LC_MESSAGES", "*.mo"),
                             recursive=True))
    if not files:
        raise ValueError(f"Django has no translation catalogue for language {language!r}")
    catalogues = []
    for path in files:
        with open(path, "rb") as f:
            # GNUTranslations parses the .mo format; _catalog (msgid -> msgstr) is how its own
            # gettext() looks messages up, the only view of every entry it offers.
            catalogues.append(gettext.GNUTranslations(f)._catalog)
    return catalogues


def catalogue_messages(language: str) -> List[str]:
    """The language's messages (``en``: the English source strings), filtered as documented."""
    source = "fr" if language == "en" else language
    messages = []
    for catalogue in _catalogues(source):
        for msgid, msgstr in catalogue.items():
            if not isinstance(msgid, str) or not msgid:   # plural entries are (msgid, n); "" is the header
                continue
            text = " ".join((msgid if language == "en" else msgstr).split())
            if display_width(text) >= MIN_MESSAGE_WIDTH:
                messages.append(text)
    return list(dict.fromkeys(messages))


def multilingual_documents(languages: Sequence[str] = DEFAULT_LANGUAGES,
                           messages_per_document: int = 8) -> List[Tuple[str, Document]]:
    """``(language, sentences)`` documents of consecutive catalogue messages, languages in order."""
    if messages_per_document < 2:
        raise ValueError("messages_per_document must be at least 2 (a document needs a sentence pair)")
    docs = []
    for language in languages:
        messages = catalogue_messages(language)
        for start in range(0, len(messages) - 1, messages_per_document):
            chunk = messages[start:start + messages_per_document]
            if len(chunk) >= 2:
                docs.append((language, chunk))
    return docs
