"""Reads a finished run back from ML Metadata, per stage: blessing, gate metrics and bounds, pushed
version and path, the input lines ExampleGen rejected and the rows PrepareData left out.

Example:
    >>> run_summary(config, "pretrain")["pretrain"]["blessed"]  # doctest: +SKIP
    True
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

from rw_tf_pipeline.components.refine_web import RefinedCorpus
from rw_tf_pipeline.configs import DOMAIN_STAGES, STAGES, PipelineConfig
from rw_tf_pipeline.pipeline import gate_metrics
from rw_tf_pipeline.prepare import rows_rejected


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def pipeline_artifacts(store: mlmd.MetadataStore, pipeline_name: str, type_name: str) -> List:
    """Artifacts of ``type_name`` produced in ``pipeline_name``, oldest first."""
    contexts = store.get_contexts_by_type("pipeline")
    context = next((c for c in contexts if c.name == pipeline_name), None)
    if context is None:
        return []
    artifacts = [a for a in store.get_artifacts_by_context(context.id)
                 if store.get_artifact_types_by_id([a.type_id])[0].name == type_name]
    return sorted(artifacts, key=lambda a: a.id)


def node_outputs(store: mlmd.MetadataStore, pipeline_name: str, node_id: str, type_name: str) -> List:
    """Artifacts of ``type_name`` that component ``node_id`` of ``pipeline_name`` produced, oldest first."""
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return []
    executions = [e.id for e in store.get_executions_by_context(context.id)]
    outputs = {event.artifact_id for event in store.get_events_by_execution_ids(executions)
               if event.type == metadata_store_pb2.Event.OUTPUT}
    artifacts = store.get_artifacts_by_id(sorted(outputs))
    return [a for a in artifacts if store.get_artifact_types_by_id([a.type_id])[0].name == type_name]


def _property(artifact, name: str, kind: str = "string_value"):
    if artifact is None or name not in artifact.custom_properties:
        return None
    return getattr(artifact.custom_properties[name], kind)


def evaluated_metrics(evaluation_uri: str, names: List[str]) -> Dict[str, Optional[float]]:
    """The overall-slice values of ``names`` in a TFMA evaluation output."""
    values: Dict[str, Optional[float]] = {name: None for name in names}
    result = tfma.load_eval_result(evaluation_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key != ():
            continue
        for per_output in metrics.values():
            for per_sub_key in per_output.values():
                for name, value in per_sub_key.items():
                    if name in values and isinstance(value, dict) and "doubleValue" in value:
                        values[name] = float(value["doubleValue"])
    return values


def gate_failures(evaluation_uri: str, values: Dict[str, Optional[float]]) -> List[str]:
    """Why TFMA did not bless a model, one phrase per failed threshold of its validation result
    (a value under its lower bound, or a drop against the blessed baseline larger than allowed)."""
    if not os.path.exists(os.path.join(evaluation_uri, "validations.tfrecord")):
        return []
    result = tfma.load_validation_result(evaluation_uri)
    reasons = [f"no evaluated slice: {result.missing_slices}"] if result.missing_slices else []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            name, value = failure.metric_key.name, failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.metric_key.is_diff and values.get(name) is not None:
                reasons.append(f"{name} {values[name]:.4f} is {-value:.4f} below the blessed model's "
                               f"{values[name] - value:.4f} (the gate allows a drop of "
                               f"{-threshold.change_threshold.absolute.value:g})")
            elif failure.metric_key.is_diff:
                reasons.append(f"{name} changed by {value:.4f} against the blessed model")
            else:
                reasons.append(f"{name} {value:.4f} is under its lower bound "
                               f"{threshold.value_threshold.lower_bound.value:g}")
    return reasons


def stage_summary(store: mlmd.MetadataStore, config: PipelineConfig, kind: str, stage: str) -> Dict:
    """What the newest run of one stage of pipeline ``kind`` produced (see the module docstring)."""
    name, suffix = config.pipeline_name(kind), f"_{stage}" if kind in ("recipe", "domain") else ""
    latest = lambda node, type_name, end=suffix: (node_outputs(store, name, node + end, type_name) or [None])[-1]
    blessing, pushed = latest("Evaluator", "ModelBlessing"), latest("Pusher", "PushedModel")
    examples_suffix = f"_{DOMAIN_STAGES[stage]}" if kind == "domain" else suffix  # shared ExampleGens
    evaluation, examples = (latest("Evaluator", "ModelEvaluation"),
                            latest("FileBasedExampleGen", "Examples", examples_suffix))
    bounds = gate_metrics(stage, config)
    values = evaluated_metrics(evaluation.uri, list(bounds)) if evaluation is not None else {}
    serving_dir = config.serving_dir(stage)
    left_out, data_report = rows_rejected(config, stage)
    return {
        "pipeline": name,
        "blessed": bool(_property(blessing, "blessed", "int_value")),
        "blessing_uri": blessing.uri if blessing else None,
        "gate": {metric: {"value": values.get(metric), "lower_bound": bound,
                          "max_drop_vs_baseline": config.max_metric_drop} for metric, bound in bounds.items()},
        "gate_failures": gate_failures(evaluation.uri, values) if evaluation is not None else [],
        "pushed": bool(_property(pushed, "pushed", "int_value")),
        "pushed_version": _property(pushed, "pushed_version"),
        "pushed_destination": _property(pushed, "pushed_destination") or None,
        "rejected_lines": _property(examples, "rejected_lines", "int_value"),
        "rows_rejected_by_prepare_data": left_out,
        "data_report": data_report,
        "versions_in_serving_dir": sorted(os.listdir(serving_dir)) if os.path.isdir(serving_dir) else [],
    }


def refinement_summary(store: mlmd.MetadataStore, config: PipelineConfig, kind: str) -> Optional[Dict]:
    """The newest RefineWebData output of pipeline ``kind``: records read, documents and words kept."""
    refined = (node_outputs(store, config.pipeline_name(kind), "RefineWebData", RefinedCorpus.TYPE_NAME) or [None])[-1]
    if refined is None:
        return None
    return {"refinement": True, "pipeline": config.pipeline_name(kind), "uri": refined.uri,
            "records_read": _property(refined, "records_read", "int_value"),
            "documents": _property(refined, "documents", "int_value"),
            "words": _property(refined, "words", "int_value"), "report": _property(refined, "report"),
            "copied": bool(_property(refined, "copied_from_earlier_run", "int_value"))}


def run_summary(config: PipelineConfig, kind: str) -> Dict[str, Dict]:
    """stage -> summary of the newest run of pipeline ``kind`` (a recipe has both stages); with a
    RefineWebData step, also ``"refine"`` -> its ``refinement_summary``."""
    store = open_store(config.metadata_path)
    stages = {"recipe": STAGES, "domain": tuple(DOMAIN_STAGES), "refine": ()}.get(kind, (kind,))
    summaries = {}
    refinement = refinement_summary(store, config, kind)
    if refinement is not None:
        summaries["refine"] = refinement
    summaries.update({stage: stage_summary(store, config, kind, stage) for stage in stages})
    return summaries
