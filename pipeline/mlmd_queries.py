"""Reads a finished run back from ML Metadata: blessing, pushed version, lineage.

Example:
    >>> run_summary("runs/pipeline/metadata.sqlite", "rw-tf-pretrain", "runs/pipeline/serving/rw_tf_pretrain")  # doctest: +SKIP
    {'blessed': True, 'pushed_version': '1732345678', ...}
"""
from __future__ import annotations

import os
from typing import Dict, List

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2


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


def run_summary(metadata_path: str, pipeline_name: str, serving_dir: str) -> Dict:
    store = open_store(metadata_path)
    blessings = pipeline_artifacts(store, pipeline_name, "ModelBlessing")
    pushed = pipeline_artifacts(store, pipeline_name, "PushedModel")
    last_blessing = blessings[-1] if blessings else None
    last_push = pushed[-1] if pushed else None
    summary = {
        "blessed": bool(last_blessing and last_blessing.custom_properties["blessed"].int_value),
        "blessing_uri": last_blessing.uri if last_blessing else None,
        "pushed": bool(last_push and last_push.custom_properties["pushed"].int_value),
        "pushed_destination": (last_push.custom_properties["pushed_destination"].string_value
                               if last_push and "pushed_destination" in last_push.custom_properties else None),
        "versions_in_serving_dir": sorted(os.listdir(serving_dir)) if os.path.isdir(serving_dir) else [],
    }
    return summary
