"""A client for TF Serving (or the local server) on the official tensorflow-serving-api stubs.

Results are plain Python (lists, floats, str). Calls time out after ``timeout`` seconds and are
retried with exponential back-off when the server is UNAVAILABLE (e.g. restarting).

Example:
    >>> client = ServingClient("127.0.0.1:8500")                                   # doctest: +SKIP
    >>> client.predict("rw_tf_finetune", {"text": ["Lists are mutable."]}, signature="classify_text")  # doctest: +SKIP
    {'probability': [0.91], 'predicted_label': [1], 'probabilities': [[0.09, 0.91]]}
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from rw_tf.config import MAX_BACKOFF_SECONDS, check_numbers, checks_number_arguments
from rw_tf.data.jsonl import example_from_json, loads_text
from rw_tf.errors import terminal_text
from rw_tf_serving.config import ModelSpec, model_server_config
from rw_tf_serving.errors import ServingError
from rw_tf_serving.validation import ServerLimits, array_from_tensor_proto

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
# An answer is held to what it carries (at most a message's bytes of values), not what it declares.
ANSWER_LIMITS = ServerLimits(max_elements=MAX_MESSAGE_BYTES, max_texts=MAX_MESSAGE_BYTES, max_rank=32)


def _one_version_choice(version: Optional[int], label: Optional[str]) -> None:
    """A request names a version number or a version label (TF Serving's ModelSpec oneof), not both."""
    if version is not None and label is not None:
        raise ValueError("name a version or a version label, not both")


# Number arguments follow rw_tf.config.check_numbers: a timeout is more than 0 and at most a day
# (sockets and gRPC overflow on inf or 1e300, and refuse NaN or negative values with messages that
# do not name it), a version an int64 from 0, message sizes C ints (gRPC's channel options).
@checks_number_arguments(may_be_zero=("retries", "backoff"))
class ServingClient:
    def __init__(self, target: str = "127.0.0.1:8500", timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.2, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.retries, self.backoff = retries, backoff

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
                delay = min(2 * delay, MAX_BACKOFF_SECONDS)   # doubles after each UNAVAILABLE answer

    @staticmethod
    def _spec(spec, model: str, version: Optional[int], signature: str = "", label: Optional[str] = None) -> None:
        check_numbers("ServingClient", {"version": version}, {"version": Optional[int]}, may_be_zero=("version",))
        _one_version_choice(version, label)
        spec.name = model
        if version is not None:
            spec.version.value = version
        if label is not None:
            spec.version_label = label
        if signature:
            spec.signature_name = signature

    def predict_raw(self, model: str, inputs: Mapping[str, Any], signature: str = "serving_default",
                    version: Optional[int] = None, output_filter: Sequence[str] = (),
                    label: Optional[str] = None) -> predict_pb2.PredictResponse:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, signature, label)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto)
                                         else to_tensor_proto(value))
        request.output_filter.extend(output_filter)
        return self._call(self.prediction.Predict, request)

    def predict(self, model: str, inputs: Mapping[str, Any], signature: str = "serving_default",
                version: Optional[int] = None, output_filter: Sequence[str] = (),
                label: Optional[str] = None) -> Dict[str, Any]:
        """The outputs of a Predict call; ``label`` names a version label (TF Serving's
        ``version_label``) instead of a version number."""
        response = self.predict_raw(model, inputs, signature, version, output_filter, label)
        try:
            return {k: _plain(array_from_tensor_proto(k, v, ANSWER_LIMITS, role="output"))
                    for k, v in response.outputs.items()}
        except ServingError as err:
            raise ValueError(f"the server's answer is not valid: {err.message}") from None

    def classify(self, model: str, examples: Sequence[Union[tf.train.Example, Mapping[str, Any]]],
                 signature: str = "classification", version: Optional[int] = None,
                 label: Optional[str] = None) -> List[List[Tuple[str, float]]]:
        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model, version, signature, label)
        for example in examples:
            request.input.example_list.examples.add().CopyFrom(
                example if isinstance(example, tf.train.Example) else example_from_json(example))
        response = self._call(self.prediction.Classify, request)
        return [[(c.label, c.score) for c in result.classes] for result in response.result.classifications]

    def metadata(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, Any]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label=label)
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

    def status(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> List[Dict[str, Any]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label=label)
        response = self._call(self.models.GetModelStatus, request)
        return [{"version": s.version, "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                 "error": s.status.error_message} for s in response.model_version_status]

    def reload_config(self, config: Union[model_server_config_pb2.ModelServerConfig, Sequence[ModelSpec]]) -> None:
        """Makes the server serve ``config`` (a ModelServerConfig, or ``ModelSpec``s) and only it:
        TF Serving's ``HandleReloadConfigRequest``. Returns once the new models are served; raises
        ``grpc.RpcError`` with the server's status otherwise (INVALID_ARGUMENT, FAILED_PRECONDITION
        for a label that may not move, UNKNOWN for models that did not become available). Not
        retried: the server may have applied it."""
        if not isinstance(config, model_server_config_pb2.ModelServerConfig):
            config = model_server_config(config)
        request = model_management_pb2.ReloadConfigRequest(config=config)
        self.models.HandleReloadConfigRequest(request, timeout=self.timeout)


class RestError(RuntimeError):
    """The REST API answered with an HTTP error status (``status``; ``detail`` is TF Serving's
    ``{"error": ...}`` message, or the start of the body when it is not one)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"REST request failed with HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class RestExchangeError(ConnectionError):
    """No usable REST answer: the server could not be reached, closed the connection, broke the HTTP
    protocol, sent more than ``MAX_MESSAGE_BYTES``, sent something other than a JSON object, or did
    not finish within the timeout."""


# Characters of an error body a RestError keeps: a proxy's error page can be megabytes.
MAX_ERROR_DETAIL_CHARS = 2_000


def rest_base_url(base_url: str) -> urllib.parse.SplitResult:
    """The parts of a REST base URL ``http(s)://HOST[:PORT][/PREFIX]``; ``ValueError`` for anything
    else (another scheme, no host, a port out of range, a query or fragment that the model path
    would be appended to)."""
    try:
        parts = urllib.parse.urlsplit(base_url)
        _ = parts.port   # parsed lazily: raises ValueError when out of range
    except ValueError as err:
        raise ValueError(f"{base_url!r} is not a REST base URL ({err}): give http(s)://HOST:PORT") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{base_url!r} is not a REST base URL: give http(s)://HOST:PORT")
    return parts


def _read_answer(response: http.client.HTTPResponse, ends: float, timeout: float) -> bytes:
    body = bytearray()
    # read1 returns after at most one receive, so the deadline is checked between them.
    while chunk := response.read1(1 << 16):
        body += chunk
        if len(body) > MAX_MESSAGE_BYTES:
            raise RestExchangeError(f"the answer is longer than {MAX_MESSAGE_BYTES:,} bytes")
    if time.monotonic() >= ends:   # the deadline shut the connection: the end seen is not the answer's
        raise RestExchangeError(f"no complete answer within {timeout:g} s")
    if response.length:   # read1 does not raise when the server closes before its Content-Length
        raise RestExchangeError(f"the connection closed {response.length:,} bytes before the declared "
                                f"Content-Length of {len(body) + response.length:,}")
    return bytes(body)


def server_text(text: str, limit: int = MAX_ERROR_DETAIL_CHARS) -> str:
    """A server's message (an error body, gRPC status details) made fit for one terminal line: runs of
    whitespace become one space, other characters a terminal would act on (escape sequences that
    recolour, retitle or clear it, bidirectional overrides) are shown as escapes, at most ``limit``
    characters are kept.

    >>> server_text("<html>\\n  <p>Bad gateway</p>\\x1b[2J</html>")
    '<html> <p>Bad gateway</p>\\\\x1b[2J</html>'
    """
    text = " ".join(text.split())
    return terminal_text(text[:limit]) + (" ..." if len(text) > limit else "")


def _error_detail(raw: bytes) -> str:
    try:
        detail = loads_text(raw)["error"]
    except (ValueError, TypeError, KeyError, IndexError):
        detail = raw.decode("utf-8", "replace")
    return server_text(str(detail))


def _rest_post(base_url: str, model: str, version: Optional[int], verb: str, body: Dict, timeout: float,
               label: Optional[str] = None) -> Dict:
    """POSTs ``body`` to TF Serving's ``/v1/models/MODEL[/versions/V|/labels/L]VERB`` and returns
    the JSON object it answers. ``timeout`` bounds the whole exchange, as a gRPC deadline does: a
    server that drips its answer a byte at a time is cut off when it passes."""
    _one_version_choice(version, label)
    parts = rest_base_url(base_url)
    path = (parts.path.rstrip("/") + "/v1/models/" + urllib.parse.quote(model, safe="")
            + (f"/versions/{version}" if version is not None else "")
            + (f"/labels/{urllib.parse.quote(label, safe='')}" if label is not None else "") + verb)
    connection = (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection)(
        parts.hostname, parts.port, timeout=timeout)
    ends = time.monotonic() + timeout
    deadline = threading.Timer(timeout, _cut_off, (connection,))
    deadline.start()
    try:
        connection.request("POST", path, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = _read_answer(response, ends, timeout)
    except (OSError, http.client.HTTPException) as err:
        if time.monotonic() >= ends:
            reason = f"no complete answer within {timeout:g} s"
        elif isinstance(err, OSError):   # refused, reset, unknown host; RemoteDisconnected is one too
            reason = str(err) or type(err).__name__
        else:
            reason = f"not an HTTP answer ({type(err).__name__}: {str(err).strip()!r})"
        raise RestExchangeError(reason) from None
    finally:
        deadline.cancel()
        connection.close()
    if response.status >= 400:
        raise RestError(response.status, _error_detail(raw))
    try:
        answer = loads_text(raw)
    except ValueError as err:   # UnicodeDecodeError too
        raise RestExchangeError(f"the answer is not JSON ({err})") from None
    if not isinstance(answer, dict):
        raise RestExchangeError(f"the answer is a JSON {type(answer).__name__}, not an object")
    return answer


def _cut_off(connection: http.client.HTTPConnection) -> None:
    # shutdown() wakes a receive blocked in another thread; close() alone would not.
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.shutdown(socket.SHUT_RDWR)


@checks_number_arguments(may_be_zero=("version",))
def rest_predict(base_url: str, model: str, instances: Optional[List] = None, inputs: Optional[Dict] = None,
                 signature: str = "serving_default", version: Optional[int] = None,
                 timeout: float = 10.0, label: Optional[str] = None) -> Dict[str, Any]:
    """TF Serving's REST predict (``POST /v1/models/NAME[/versions/V|/labels/L]:predict``)."""
    if (instances is None) == (inputs is None):
        raise ValueError("pass exactly one of instances (row format) or inputs (columnar format)")
    body = {"signature_name": signature, **({"instances": instances} if instances is not None else {"inputs": inputs})}
    return _rest_post(base_url, model, version, ":predict", body, timeout, label)


@checks_number_arguments(may_be_zero=("version",))
def rest_classify(base_url: str, model: str, examples: Sequence[Mapping[str, Any]],
                  context: Optional[Mapping[str, Any]] = None, signature: str = "classification",
                  version: Optional[int] = None, timeout: float = 10.0, label: Optional[str] = None) -> List:
    """TF Serving's REST classify (``POST /v1/models/NAME[/versions/V|/labels/L]:classify``): per example, its
    ``[label, score]`` pairs. Examples and context are objects of features (JSON values; binary
    data as ``{"b64": "..."}``)."""
    body = {"signature_name": signature, "examples": list(examples)}
    if context is not None:
        body["context"] = context
    answer = _rest_post(base_url, model, version, ":classify", body, timeout, label)
    if not isinstance(answer.get("result"), list):
        raise RestExchangeError("the answer has no \"result\" list")
    return answer["result"]
