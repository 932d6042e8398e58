"""The pipelines' first step: ``PrepareData`` writes their inputs under the config's data root.

It runs where the pipeline runs (a LocalDagRunner process, or a container of the Kubeflow
pipeline), so a pipeline compiled for a cluster prepares its data there, from the corpus URIs in
its config, and never from the compiling machine. ExampleGen depends on it.
"""
import json

from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component

from rw_tf_pipeline.components.refine_web import RefinedCorpus
from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.prepare import prepare_kind_data


@component
def PrepareData(pipeline_config: tfx.dsl.components.Parameter[str],  # noqa: N802 (TFX naming)
                kind: tfx.dsl.components.Parameter[str] = "all",
                inputs_state: tfx.dsl.components.Parameter[str] = "",
                refined_corpus: tfx.dsl.components.InputArtifact[RefinedCorpus] = None) -> None:
    """Prepares the data described by ``pipeline_config`` (a ``PipelineConfig`` as JSON) for the
    pipeline ``kind`` (``prepare_kind_data``: the domain kind reads the Nations demo, qa the
    docstring glossary, the others the configured corpus, for corpus "web" the ``refined_corpus``
    of the RefineWebData step). ``inputs_state`` is not read: TFX caches a step by its parameters and
    inputs, so an edited input file under the same name would leave the step cached and its data
    stale; the digest of the user's files (``prepare.inputs_state``) makes the step run again
    (it then rewrites only what changed)."""
    config = PipelineConfig.from_dict(json.loads(pipeline_config), "the PrepareData step")
    prepare_kind_data(config, kind, refined_corpus.uri if refined_corpus is not None else None)
