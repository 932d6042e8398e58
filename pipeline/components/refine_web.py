"""``RefineWebData``: RefinedWeb's MacroData Refinement as the pipelines' first step (before
PrepareData and ExampleGen). Web pages in (``web_inputs``: WARC/HTML/JSON Lines patterns, local or
gs://...; empty: the embedded web sample), a ``RefinedCorpus`` artifact out: ``refined/*.jsonl``,
``rejected/``, ``report.json`` and ``report.png``, with the headline counts as custom properties.

It runs on the pipeline's Beam pipeline (``beam_pipeline_args``: the DirectRunner's processes
locally, Dataflow in a cluster), so the refinement scales with the rest of the pipeline. When the
step's newest output under the data root has the same inputs and settings (``refinement_key``), the
step copies it instead of refining again (``prepare.refine_web_step``): a compiled Kubeflow spec
runs it uncached, so that a scheduled run sees new web files under the same URIs.
"""
import json

import apache_beam as beam
from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component
from tfx.types.artifact import Artifact

from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.prepare import refine_web_step


class RefinedCorpus(Artifact):
    """A refined web corpus: ``refined/documents-*.jsonl`` ({"id", "url", "text"}) and its report."""

    TYPE_NAME = "rw_tf.RefinedCorpus"   # KFP v2 wants <namespace>.<Title> for custom artifact types


@component(use_beam=True)
def RefineWebData(refined_corpus: tfx.dsl.components.OutputArtifact[RefinedCorpus],  # noqa: N802 (TFX naming)
                  pipeline_config: tfx.dsl.components.Parameter[str],
                  inputs_state: tfx.dsl.components.Parameter[str] = "",
                  beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None) -> None:
    """Refines ``web_inputs`` of ``pipeline_config`` (a ``PipelineConfig`` as JSON) with its
    ``refine_config`` into the artifact's folder (or copies an equal earlier output there).
    ``inputs_state`` (``prepare.inputs_state`` of the user's inputs) is not read: a change of it
    makes a local run's TFX run the step again instead of reusing the cached output."""
    config = PipelineConfig.from_dict(json.loads(pipeline_config), "the RefineWebData step")
    report, copied = refine_web_step(config, refined_corpus.uri, pipeline=beam_pipeline)
    refined_corpus.set_int_custom_property("copied_from_earlier_run", int(copied))
    stages = report["stages"]
    refined_corpus.set_int_custom_property("records_read", stages[0]["documents_in"])
    refined_corpus.set_int_custom_property("documents", stages[-1]["documents_out"])
    refined_corpus.set_int_custom_property("words", stages[-1]["words_out"])
    refined_corpus.set_string_custom_property("report", f"{refined_corpus.uri}/report.json")
