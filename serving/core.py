"""Request handling shared by the gRPC and REST front ends of the local server.

Validation rules (each failure is a ``ServingError`` with TF Serving's status code; the wire
formats are checked before this, in ``rw_tf_serving.validation``):
- unknown model, version or signature: NOT_FOUND;
- missing or unexpected input, wrong dtype or rank, empty batch: INVALID_ARGUMENT;
- more elements or strings in one request than the limits allow: RESOURCE_EXHAUSTED;
- a string input named in ``text_inputs`` (raw-text signatures), or a Classify example's feature of
  that name, that is not valid UTF-8 or is longer than ``max_text_bytes``: INVALID_ARGUMENT;
- Classify on a signature whose method is not ``tensorflow/serving/classify``: INVALID_ARGUMENT.
"""
from __future__ import annotations

import threading
from typing import Dict, Iterable, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from rw_tf.errors import error_reason
from rw_tf_serving.config import BatchingParameters, ModelSpec, check_unique_names
from rw_tf_serving.errors import ServingError, invalid_argument, not_found, resource_exhausted
from rw_tf_serving.servables import LoadedVersion, ModelManager
from rw_tf_serving.validation import ServerLimits

CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_SIGNATURE = "serving_default"


class ServingCore:
    """Holds the models and answers predict/classify/metadata/status requests.

    The model list can be replaced while serving (``reload``: TF Serving's ReloadConfig): models
    not in the new list are unloaded, new ones loaded, and version labels move as TF Serving moves
    them. A label may only point at a version being served, except a label not yet assigned when
    ``allow_labels_for_unavailable_models`` (TF Serving's ``--allow_version_labels_for_unavailable_models``):
    moving "stable" onto a version still loading would fail every request for "stable" meanwhile.
    """

    def __init__(self, specs: Sequence[ModelSpec], batching: Optional[BatchingParameters] = None,
                 limits: Optional[ServerLimits] = None, allow_labels_for_unavailable_models: bool = False) -> None:
        self.limits = limits or ServerLimits()
        self.batching = batching
        self.allow_labels_for_unavailable_models = allow_labels_for_unavailable_models
        self.models: Dict[str, ModelManager] = {}
        self.labels: Dict[str, Dict[str, int]] = {}
        # Held by reload and refresh: both load versions through the same managers.
        self._config_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._closed = False
        check_unique_names([s.name for s in specs])
        try:
            self.labels = self._label_map(specs)
        except ServingError as err:
            raise ValueError(f"{err.message} (no version is served before the models load: give "
                             "--allow-version-labels-for-unavailable-models, allow_labels_for_unavailable_models "
                             "in Python, as TF Serving needs its flag)") from None
        self.models = {s.name: ModelManager(s, batching) for s in specs}

    def refresh(self) -> None:
        with self._config_lock:
            for manager in self.models.values():
                manager.refresh()

    def close(self) -> None:
        # Not under the config lock: a reload loading a large model would hold shutdown up.
        self._closed = True
        for manager in list(self.models.values()):
            manager.close()

    def manager(self, name: str) -> ModelManager:
        manager = self.models.get(name)   # one read: reload swaps the whole dict
        if manager is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        return manager

    def servable(self, name: str, version: Optional[int], label: Optional[str] = None) -> LoadedVersion:
        return self.manager(name).get(self.version_for(name, version, label))

    def version_for(self, name: str, version: Optional[int], label: Optional[str]) -> Optional[int]:
        """The version a request names, by number or by label (INVALID_ARGUMENT for an unknown label,
        as TF Serving answers). A request names one of them: gRPC's ModelSpec holds one, a REST path one."""
        if label is None:
            return version
        self.manager(name)
        labelled = self.labels.get(name, {})
        if label not in labelled:
            raise invalid_argument(f"Unrecognized servable version label: {label[:200]} "
                                   f"(model {name} has {sorted(labelled) or 'none'})")
        return labelled[label]

    def _label_map(self, specs: Sequence[ModelSpec]) -> Dict[str, Dict[str, int]]:
        labels = {}
        for spec in specs:
            manager = self.models.get(spec.name)
            served = set(manager.versions_available()) if manager is not None else set()
            current = self.labels.get(spec.name, {})
            for label, version in spec.version_labels:
                moves = label in current and current[label] != version
                if version not in served and (moves or not self.allow_labels_for_unavailable_models):
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                       f"Request to assign label {label} to version {version} of model {spec.name}, "
                                       "which is not currently available for inference")
            labels[spec.name] = spec.labels
        return labels

    def reload(self, specs: Sequence[ModelSpec]) -> None:
        """Serves ``specs`` from now on (TF Serving's ReloadConfig). A model whose base path stays
        keeps its loaded versions (its version policy applies at once); a new model, or one with a
        new base path, loads before it replaces anything, so no request meets a gap.

        Raises ``ValueError`` for names given twice and ``ServingError``: FAILED_PRECONDITION for a
        label that may not move (nothing changes), UNAVAILABLE while another reload runs, UNKNOWN
        naming the new models that have no version to serve (the new list is then in place, and
        the version poll keeps loading them)."""
        check_unique_names([s.name for s in specs])
        # One reload at a time; others are told to retry rather than wait, so reload calls cannot
        # hold every request worker while one loads.
        if not self._reload_lock.acquire(blocking=False):
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "another config reload is in progress; retry when it ends")
        try:
            self._reload(specs)
        finally:
            self._reload_lock.release()

    def _reload(self, specs: Sequence[ModelSpec]) -> None:
        with self._config_lock:
            # Labels move first, as in TF Serving: each points at a version served now, and a kept
            # model's refresh below may unload the version a label pointed at before.
            self.labels = self._label_map(specs)
            old, new, problems = self.models, {}, {}
            for spec in specs:
                kept = old.get(spec.name)
                if kept is not None and kept.spec.base_path == spec.base_path:
                    kept.spec = spec
                    new[spec.name] = kept
                else:
                    new[spec.name] = ModelManager(spec, self.batching)
                try:
                    new[spec.name].refresh()
                except Exception as err:  # noqa: BLE001 - a folder that cannot be listed: the poll retries it
                    problems[spec.name] = f"{type(err).__name__}: {str(err)[:500]}"
            self.models = new
            for name, manager in old.items():
                if new.get(name) is not manager:
                    manager.close()
            if self._closed:   # the server stopped while this loaded
                for manager in new.values():
                    manager.close()
        added = [name for name, manager in new.items() if old.get(name) is not manager]
        missing = {name: problems.get(name) or new[name].why_unavailable() for name in added
                   if not new[name].versions_available()}
        if missing:
            raise ServingError(grpc.StatusCode.UNKNOWN, f"{len(missing)} model(s) did not become available: "
                               + "; ".join(f"{name} ({why})" for name, why in missing.items()))

    @staticmethod
    def signature(servable: LoadedVersion, key: str) -> meta_graph_pb2.SignatureDef:
        key = key or DEFAULT_SIGNATURE
        if key not in servable.signature_defs or key not in servable.functions:
            raise not_found(f'Serving signature key "{key}" not found; available: '
                            f"{sorted(servable.functions)}")
        return servable.signature_defs[key]

    def _check_inputs(self, signature: meta_graph_pb2.SignatureDef, inputs: Dict[str, np.ndarray]) -> None:
        elements = sum(int(np.size(v)) for v in inputs.values())
        if elements > self.limits.max_elements:
            raise resource_exhausted(f"the request carries {elements} values; at most {self.limits.max_elements}")
        expected = set(signature.inputs)
        missing, extra = expected - set(inputs), set(inputs) - expected
        if missing:
            raise invalid_argument(f"input(s) {sorted(missing)} missing; the signature takes {sorted(expected)}")
        if extra:
            raise invalid_argument(f"unexpected input(s) {sorted(extra)}; the signature takes {sorted(expected)}")
        for key, value in inputs.items():
            info = signature.inputs[key]
            want = tf.dtypes.as_dtype(info.dtype)
            got = tf.dtypes.as_dtype(value.dtype) if value.dtype != object else tf.string
            if got != want:
                raise invalid_argument(f"input {key!r} must be {want.name}, got {got.name}")
            dims = [d.size for d in info.tensor_shape.dim]
            if not info.tensor_shape.unknown_rank and value.ndim != len(dims):
                raise invalid_argument(f"input {key!r} must have rank {len(dims)}, got shape {list(value.shape)}")
            if value.ndim and value.shape[0] == 0:
                raise invalid_argument(f"input {key!r} is an empty batch")
            if want == tf.string and key in self.limits.text_inputs:
                self._check_texts(f"input {key!r}", value.reshape(-1))

    def _check_texts(self, what: str, values: Iterable) -> None:
        for i, item in enumerate(values):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            if len(raw) > self.limits.max_text_bytes:
                raise invalid_argument(f"{what}[{i}] is {len(raw)} bytes; the limit is {self.limits.max_text_bytes}")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise invalid_argument(f"{what}[{i}] is not valid UTF-8 ({err.reason} at byte {err.start})") from None

    def _check_example_texts(self, serialized_examples: Sequence[bytes]) -> None:
        # The features a raw-text signature reads as text follow the Predict inputs' rules: a
        # Classify example's "text" of megabytes reached the tokenizer before.
        for row, serialized in enumerate(serialized_examples):
            features = tf.train.Example.FromString(serialized).features.feature
            for name in self.limits.text_inputs:
                if name in features:
                    self._check_texts(f"example {row} feature {name!r}", features[name].bytes_list.value)

    def predict(self, name: str, version: Optional[int], signature_key: str, inputs: Dict[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> Tuple[LoadedVersion, str, Dict[str, np.ndarray]]:
        servable = self.servable(name, version)
        key = signature_key or DEFAULT_SIGNATURE
        signature = self.signature(servable, key)
        self._check_inputs(signature, inputs)
        unknown = set(output_filter) - set(signature.outputs)
        if unknown:
            raise invalid_argument(f"output_filter names unknown outputs {sorted(unknown)}")
        outputs = self._run(servable, key, inputs)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in set(output_filter)}
        return servable, key, outputs

    def classify(self, name: str, version: Optional[int], signature_key: str,
                 serialized_examples: Sequence[bytes]) -> Tuple[LoadedVersion, str, np.ndarray, np.ndarray]:
        servable = self.servable(name, version)
        key = signature_key or DEFAULT_SIGNATURE
        signature = self.signature(servable, key)
        if signature.method_name != CLASSIFY_METHOD:
            raise invalid_argument(f'Expected classification signature method_name to be "{CLASSIFY_METHOD}", '
                                   f'was "{signature.method_name}" (signature "{key}")')
        if not serialized_examples:
            raise invalid_argument("Invalid argument: Input is empty.")
        if len(serialized_examples) > self.limits.max_texts:
            raise resource_exhausted(f"{len(serialized_examples)} examples; at most {self.limits.max_texts} "
                                     "per request")
        self._check_example_texts(serialized_examples)
        input_key = next(iter(signature.inputs))
        outputs = self._run(servable, key, {input_key: np.array(list(serialized_examples), dtype=object)})
        return servable, key, outputs.get("classes"), outputs.get("scores")

    @staticmethod
    def _run(servable: LoadedVersion, key: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            return servable.run(key, inputs)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
            raise invalid_argument(f"the model rejected the input: {error_reason(err)}") from None
