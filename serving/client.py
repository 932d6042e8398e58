"""A client for TF Serving (or the local server) on the official tensorflow-serving-api stubs.

Results are plain Python (lists, floats, str). Calls time out after ``timeout`` seconds and are
retried with exponential back-off when the server is UNAVAILABLE (e.g. restarting).

Example:
    >>> client = ServingClient("127.0.0.1:8500")                                   # doctest: +SKIP
    >>> client.predict("rw_tf_finetune", {"text": ["Lists are mutable."]}, signature="classify_text")  # doctest: +SKIP
    {'probability': [0.91], 'predicted_label': [1], 'probabilities': [[0.09, 0.91]]}
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from rw_tf.data.jsonl import example_from_json

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


def _plain(array: np.ndarray) -> Any:
    if array.dtype == object:
        return [(v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for v in array.reshape(-1).tolist()] \
            if array.ndim <= 1 else [_plain(row) for row in array]
    return array.tolist()


def _dtype_name(info) -> str:
    """dtype of a TensorInfo; composite (sparse/ragged) tensors carry theirs in a type spec."""
    if info.dtype:
        return tf.dtypes.as_dtype(info.dtype).name
    return info.WhichOneof("encoding") or "unknown"


def to_tensor_proto(value: Any):
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        value = [v.encode("utf-8") for v in value]
    return tf.make_tensor_proto(value)


# What one request or response may hold (gRPC's default receive limit is 4 MiB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ServingClient:
    def __init__(self, target: str = "127.0.0.1:8500", timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.2, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self.channel = grpc.insecure_channel(target, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE or attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2

    @staticmethod
    def _spec(spec, model: str, version: Optional[int], signature: str = "") -> None:
        spec.name = model
        if version is not None:
            spec.version.value = version
        if signature:
            spec.signature_name = signature

    def predict_raw(self, model: str, inputs: Mapping[str, Any], signature: str = "serving_default",
                    version: Optional[int] = None, output_filter: Sequence[str] = ()) -> predict_pb2.PredictResponse:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto)
                                         else to_tensor_proto(value))
        request.output_filter.extend(output_filter)
        return self._call(self.prediction.Predict, request)

    def predict(self, model: str, inputs: Mapping[str, Any], signature: str = "serving_default",
                version: Optional[int] = None, output_filter: Sequence[str] = ()) -> Dict[str, Any]:
        response = self.predict_raw(model, inputs, signature, version, output_filter)
        return {k: _plain(tf.make_ndarray(v)) for k, v in response.outputs.items()}

    def classify(self, model: str, examples: Sequence[Union[tf.train.Example, Mapping[str, Any]]],
                 signature: str = "classification", version: Optional[int] = None) -> List[List[Tuple[str, float]]]:
        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model, version, signature)
        for example in examples:
            request.input.example_list.examples.add().CopyFrom(
                example if isinstance(example, tf.train.Example) else example_from_json(example))
        response = self._call(self.prediction.Classify, request)
        return [[(c.label, c.score) for c in result.classes] for result in response.result.classifications]

    def metadata(self, model: str, version: Optional[int] = None) -> Dict[str, Any]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        signatures = {}
        for key, sig in signature_map.signature_def.items():
            signatures[key] = {
                "method": sig.method_name,
                "inputs": {k: _dtype_name(v) for k, v in sig.inputs.items()},
                "outputs": {k: _dtype_name(v) for k, v in sig.outputs.items()}}
        return {"model": response.model_spec.name, "version": response.model_spec.version.value,
                "signatures": signatures}

    def status(self, model: str, version: Optional[int] = None) -> List[Dict[str, Any]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version)
        response = self._call(self.models.GetModelStatus, request)
        return [{"version": s.version, "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                 "error": s.status.error_message} for s in response.model_version_status]


class RestError(RuntimeError):
    """The REST API answered with an HTTP error status (``status``; ``detail`` is the body)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"REST request failed with HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def _rest_post(base_url: str, model: str, version: Optional[int], verb: str, body: Dict, timeout: float) -> Dict:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + verb
    request = urllib.request.Request(base_url.rstrip("/") + path, data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        raise RestError(err.code, detail) from None


def rest_predict(base_url: str, model: str, instances: Optional[List] = None, inputs: Optional[Dict] = None,
                 signature: str = "serving_default", version: Optional[int] = None,
                 timeout: float = 10.0) -> Dict[str, Any]:
    """TF Serving's REST predict (``POST /v1/models/NAME[/versions/V]:predict``)."""
    if (instances is None) == (inputs is None):
        raise ValueError("pass exactly one of instances (row format) or inputs (columnar format)")
    body = {"signature_name": signature, **({"instances": instances} if instances is not None else {"inputs": inputs})}
    return _rest_post(base_url, model, version, ":predict", body, timeout)


def rest_classify(base_url: str, model: str, examples: Sequence[Mapping[str, Any]],
                  context: Optional[Mapping[str, Any]] = None, signature: str = "classification",
                  version: Optional[int] = None, timeout: float = 10.0) -> List:
    """TF Serving's REST classify (``POST /v1/models/NAME[/versions/V]:classify``): per example, its
    ``[label, score]`` pairs. Examples and context are objects of features (JSON values; binary
    data as ``{"b64": "..."}``)."""
    body = {"signature_name": signature, "examples": list(examples)}
    if context is not None:
        body["context"] = context
    return _rest_post(base_url, model, version, ":classify", body, timeout)["result"]
