"""Loading SavedModel versions from a base path and following a version policy.

``ModelManager.refresh()`` (called by the server's poll loop) loads versions that the policy
wants and that are complete (``saved_model.pb`` present), then unloads versions the policy no
longer wants. A version is fully loaded before it becomes visible, and an unloaded version stays
alive until the requests holding it finish, so a newly pushed version never drops a request. A
version that failed to load is retried at every poll (a fixed copy then loads) and its error is
reported by the status APIs until it does. Requests run in chunks of at most ``max_rows_per_call``
rows, so a request's peak memory stays bounded whatever its size.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from rw_tf.model_files import load_saved_model, version_folders
from rw_tf_serving.batching import Batcher
from rw_tf_serving.config import BatchingParameters, ModelSpec
from rw_tf_serving.errors import not_found

log = logging.getLogger("rw_tf.serving")


def read_signature_defs(export_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    return dict(saved.meta_graphs[0].signature_def)


class LoadedVersion:
    """One loaded SavedModel version: signature functions, their SignatureDefs and batchers."""

    def __init__(self, name: str, version: int, path: str, batching: Optional[BatchingParameters],
                 max_rows_per_call: int = 64) -> None:
        import tensorflow_text  # noqa: F401 - registers the tokenizer ops the graphs use

        self.name, self.version, self.path = name, version, path
        self.max_rows_per_call = max_rows_per_call
        self._loaded = load_saved_model(path)  # first: its errors name the folder and the reason
        self.signature_defs = read_signature_defs(path)
        self.functions = dict(self._loaded.signatures)
        self._batchers: Dict[str, Batcher] = {}
        if batching is not None:
            for key in self.functions:
                self._batchers[key] = Batcher(self._runner(key), batching.max_batch_size,
                                              batching.batch_timeout_micros, batching.num_batch_threads,
                                              batching.max_enqueued_batches, batching.allowed_batch_sizes)

    def _runner(self, key: str):
        fn = self.functions[key]

        def call(inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
            return {k: v.numpy() for k, v in outputs.items()}

        def run(inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            rows = {len(v) if np.ndim(v) else -1 for v in inputs.values()}
            if len(rows) != 1 or rows == {-1} or max(rows) <= self.max_rows_per_call:
                return call(inputs)
            total, step = rows.pop(), self.max_rows_per_call
            parts = [call({k: v[lo:lo + step] for k, v in inputs.items()}) for lo in range(0, total, step)]
            if any(np.ndim(v) == 0 for v in parts[0].values()):
                return call(inputs)  # outputs that are not per row cannot be stitched together
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return run

    def run(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        batcher = self._batchers.get(signature)
        if batcher is None:
            return self._runner(signature)(inputs)
        return batcher.submit(inputs).result()

    def batch_stats(self) -> Dict[str, Dict[str, int]]:
        return {k: {"batches": b.batches_run, "rows": b.rows_run} for k, b in self._batchers.items()}

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()


class ModelManager:
    """The versions of one model that the policy wants, loaded."""

    def __init__(self, spec: ModelSpec, batching: Optional[BatchingParameters] = None,
                 max_rows_per_call: int = 64) -> None:
        self.spec = spec
        self.batching = batching
        self.max_rows_per_call = max_rows_per_call
        self._versions: Dict[int, LoadedVersion] = {}
        self._failed: Dict[int, str] = {}
        self._lock = threading.Lock()

    def wanted(self, available: List[int]) -> List[int]:
        if self.spec.version_policy == "all":
            return available
        if self.spec.version_policy == "specific":
            return [v for v in available if v in set(self.spec.versions)]
        return available[-self.spec.num_latest:]

    def refresh(self) -> None:
        folders = version_folders(self.spec.base_path)
        wanted = self.wanted(sorted(folders))
        for version in wanted:
            if version in self._versions:
                continue
            path = os.path.join(self.spec.base_path, folders[version])
            try:
                loaded = LoadedVersion(self.spec.name, version, path, self.batching, self.max_rows_per_call)
            except Exception as err:  # noqa: BLE001 - a broken version must not take the server down
                message = f"{type(err).__name__}: {str(err)[:500]}"
                if self._failed.get(version) != message:  # retried at every poll, logged when it changes
                    log.error("failed to load %s version %d (retried at every poll): %s", self.spec.name, version,
                              message)
                self._failed[version] = message
                continue
            with self._lock:
                self._versions[version] = loaded
                self._failed.pop(version, None)
            log.info("loaded %s version %d", self.spec.name, version)
        with self._lock:
            stale = [v for v in self._versions if v not in wanted]
            removed = [self._versions.pop(v) for v in stale]
        for loaded in removed:
            loaded.close()
            log.info("unloaded %s version %d", self.spec.name, loaded.version)

    def get(self, version: Optional[int] = None) -> LoadedVersion:
        with self._lock:
            if not self._versions:
                raise not_found(f"Servable not found for request: Latest({self.spec.name})")
            if version is None:
                return self._versions[max(self._versions)]
            if version not in self._versions:
                raise not_found(f"Servable not found for request: Specific({self.spec.name}, {version})")
            return self._versions[version]

    def versions(self) -> Dict[int, str]:
        """version -> state ("AVAILABLE" or "END" with the load error)."""
        with self._lock:
            states = {v: "AVAILABLE" for v in self._versions}
        for v in self._failed:
            states.setdefault(v, "END")
        return dict(sorted(states.items()))

    def versions_available(self) -> List[int]:
        with self._lock:
            return sorted(self._versions)

    def why_unavailable(self) -> str:
        """Why no version is served: the load errors, or that the base path holds no version."""
        if self._failed:
            return "; ".join(f"version {v}: {error}" for v, error in sorted(self._failed.items()))
        policy = self.spec.version_policy
        wanted = f"versions {list(self.spec.versions)}" if policy == "specific" else f"a version ({policy} policy)"
        return f"no complete SavedModel of {wanted} under {self.spec.base_path}"

    def load_error(self, version: int) -> Optional[str]:
        return self._failed.get(version)

    def close(self) -> None:
        with self._lock:
            for loaded in self._versions.values():
                loaded.close()
            self._versions.clear()
