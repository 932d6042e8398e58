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

from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from rw_tf.errors import error_reason
from rw_tf_serving.config import BatchingParameters, ModelSpec
from rw_tf_serving.errors import invalid_argument, not_found, resource_exhausted
from rw_tf_serving.servables import LoadedVersion, ModelManager
from rw_tf_serving.validation import ServerLimits

CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_SIGNATURE = "serving_default"


class ServingCore:
    """Holds the models and answers predict/classify/metadata/status requests."""

    def __init__(self, specs: Sequence[ModelSpec], batching: Optional[BatchingParameters] = None,
                 limits: Optional[ServerLimits] = None) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names: {names}")
        self.limits = limits or ServerLimits()
        self.models = {s.name: ModelManager(s, batching) for s in specs}

    def refresh(self) -> None:
        for manager in self.models.values():
            manager.refresh()

    def close(self) -> None:
        for manager in self.models.values():
            manager.close()

    def manager(self, name: str) -> ModelManager:
        if name not in self.models:
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.models[name]

    def servable(self, name: str, version: Optional[int]) -> LoadedVersion:
        return self.manager(name).get(version)

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
