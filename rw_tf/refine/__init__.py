"""Web-data refinement: RefinedWeb's MacroData Refinement (Penedo et al. 2023) as Beam transforms.

Stages, in order: reading (WARC, HTML, JSON Lines) -> URL filter -> text extraction (trafilatura)
-> language ID (fastText lid.176) -> Gopher repetition -> Gopher quality -> line-wise corrections
-> MinHash near-duplicate removal -> exact substring removal -> URL deduplication. ``run_refinement``
runs them on any Beam runner and writes the refined corpus and a per-stage report;
``rw-tf refine INPUT... OUTPUT`` is the command; the TFX pipelines run it before ExampleGen.
"""
from rw_tf.refine.exact_substrings import ExactSubstringConfig
from rw_tf.refine.gopher import GopherQualityConfig, GopherRepetitionConfig
from rw_tf.refine.line_corrections import LineCorrectionConfig
from rw_tf.refine.minhash import MinHashConfig
from rw_tf.refine.pipeline import RefineWeb, RunnerConfig, read_refined_documents, run_refinement
from rw_tf.refine.stages import STAGES, DocumentRefiner, RefineConfig
from rw_tf.refine.url_filter import UrlFilterConfig

__all__ = ["STAGES", "DocumentRefiner", "ExactSubstringConfig", "GopherQualityConfig", "GopherRepetitionConfig",
           "LineCorrectionConfig", "MinHashConfig", "RefineConfig", "RefineWeb", "RunnerConfig", "UrlFilterConfig",
           "read_refined_documents", "run_refinement"]
