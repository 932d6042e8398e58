"""Reads a finished run back from ML Metadata: blessing, gate metrics, pushed version, rejects.

Example:
    >>> run_summary(config, "pretrain")  # doctest: +SKIP
    {'blessed': True, 'pushed': True, 'pushed_version': '1732345678', 'gate': {...}, 'rejected_lines': 0, ...}
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.pipeline import gate_metrics


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


def _latest(store: mlmd.MetadataStore, pipeline_name: str, type_name: str):
    found = pipeline_artifacts(store, pipeline_name, type_name)
    return found[-1] if found else None


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


def run_summary(config: PipelineConfig, kind: str) -> Dict:
    """What the newest run of one pipeline kind produced (see the module docstring)."""
    store = open_store(config.metadata_path)
    name = config.pipeline_name(kind)
    blessing, pushed = _latest(store, name, "ModelBlessing"), _latest(store, name, "PushedModel")
    evaluation = _latest(store, name, "ModelEvaluation")
    # Transform's output is an Examples artifact too; ExampleGen's is the one that counts rejects.
    examples = next((a for a in reversed(pipeline_artifacts(store, name, "Examples"))
                     if "rejected_lines" in a.custom_properties), None)
    bounds = gate_metrics(kind, config)
    values = evaluated_metrics(evaluation.uri, list(bounds)) if evaluation is not None else {}
    serving_dir = config.serving_dir(kind)
    return {
        "blessed": bool(_property(blessing, "blessed", "int_value")),
        "blessing_uri": blessing.uri if blessing else None,
        "gate": {metric: {"value": values.get(metric), "lower_bound": bound,
                          "max_drop_vs_baseline": config.max_metric_drop} for metric, bound in bounds.items()},
        "pushed": bool(_property(pushed, "pushed", "int_value")),
        "pushed_version": _property(pushed, "pushed_version"),
        "pushed_destination": _property(pushed, "pushed_destination") or None,
        "rejected_lines": _property(examples, "rejected_lines", "int_value"),
        "versions_in_serving_dir": sorted(os.listdir(serving_dir)) if os.path.isdir(serving_dir) else [],
    }
