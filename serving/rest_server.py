"""TF Serving's REST API subset: model status, metadata, predict (row and columnar formats) and classify.

    GET  /v1/models/NAME[/versions/V|/labels/L]
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata
    POST /v1/models/NAME[/versions/V|/labels/L]:predict   {"signature_name": ..., "instances": [...]} | {"inputs": ...}
    POST /v1/models/NAME[/versions/V|/labels/L]:classify  {"signature_name": ..., "context": {...}, "examples": [...]}
Binary strings travel as ``{"b64": "..."}``, as in TF Serving.

Every client error is a 4xx with TF Serving's ``{"error": ...}`` body (400 malformed JSON, ragged
or mixed inputs, bad examples, an unknown version label, a bad or lying ``Content-Length``; 404 unknown
model, version, signature or route; 405 other methods; 408 a request not received within the
timeout; 411 no length; 413 a body over ``max_request_bytes``; 415 a ``Content-Encoding``; 429
over an element limit; 431 headers too large); 501 ``:regress``; 503 means the server is at a
limit and the client should retry; 500 is a server fault. See ``RestFrontEnd`` for how slow
clients and declared sizes are bounded.
"""
from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import re
from http import HTTPStatus
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from rw_tf.config import checks_number_arguments
from rw_tf.data.jsonl import LoneSurrogate, example_from_json, loads_text
from rw_tf.model_files import MAX_VERSION
from rw_tf_serving.core import ServingCore
from rw_tf_serving.errors import (
    ServingError,
    bounded_message,
    invalid_argument,
    not_found,
    unavailable,
)
from rw_tf_serving.validation import array_from_json, as_input_dtype, inputs_from_instances
from rw_tf_serving.workers import RequestWorkers

log = logging.getLogger("rw_tf.serving")
MAX_HEAD_BYTES = 64 * 1024   # the request line and headers, as http.server allows per line

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<tail>/metadata|:predict|:classify|:regress)?$")
POST_VERBS = {":predict", ":classify"}
_MAX_VERSION_DIGITS = len(str(MAX_VERSION))


class HTTPError(Exception):
    """An HTTP status that has no gRPC equivalent (405, 411, 413, 415, 431, 501)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def rest_predict(core: ServingCore, name: str, version: Optional[int], body: Any) -> Dict:
    if not isinstance(body, dict):
        raise invalid_argument("the request body must be a JSON object")
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):
        raise invalid_argument("signature_name must be a string")
    if ("instances" in body) == ("inputs" in body):
        raise invalid_argument("the request needs exactly one of 'instances' or 'inputs'")
    sig = core.signature(core.servable(name, version), signature)
    single = next(iter(sig.inputs)) if len(sig.inputs) == 1 else ""
    if "instances" in body:
        inputs = inputs_from_instances(body["instances"], single, core.limits)
    elif isinstance(body["inputs"], dict):
        inputs = {k: array_from_json(k, v, core.limits) for k, v in body["inputs"].items()}
    elif single:
        inputs = {single: array_from_json(single, body["inputs"], core.limits)}
    else:
        raise invalid_argument("'inputs' must be an object when the signature has several inputs")
    # JSON has one kind of number: values take the dtype the signature declares (TF Serving's mapping).
    inputs = {k: as_input_dtype(k, v, tf.dtypes.as_dtype(sig.inputs[k].dtype)) if k in sig.inputs else v
              for k, v in inputs.items()}
    _, _, outputs = core.predict(name, version, signature, inputs)
    # TF Serving's answer: a single output's values without its name, in either format.
    if len(outputs) == 1:
        return {"outputs" if "inputs" in body else "predictions": _jsonable(next(iter(outputs.values())))}
    if "inputs" in body:
        return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{k: _jsonable(v[i:i + 1])[0] for k, v in outputs.items()} for i in range(rows)]}


def rest_classify(core: ServingCore, name: str, version: Optional[int], body: Any) -> Dict:
    """TF Serving's REST ``:classify``: ``{"signature_name", "context", "examples": [{feature: value}]}``
    -> ``{"result": [[[label, score], ...] per example]}`` (features by ``example_from_json``; an
    example's own value of a feature replaces the context's)."""
    if not isinstance(body, dict):
        raise invalid_argument("the request body must be a JSON object")
    signature, context, examples = body.get("signature_name", ""), body.get("context", {}), body.get("examples")
    if not isinstance(signature, str):
        raise invalid_argument("signature_name must be a string")
    if not isinstance(context, dict):
        raise invalid_argument("'context' must be an object of features")
    if not isinstance(examples, list) or not examples:
        raise invalid_argument("the request needs 'examples': a non-empty list of objects of features")
    serialized = []
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise invalid_argument(f"examples[{i}] is a {type(example).__name__}, not an object of features")
        try:
            serialized.append(example_from_json({**context, **example}).SerializeToString())
        except (TypeError, ValueError) as err:
            raise invalid_argument(f"examples[{i}]: {err}") from None
    _, _, classes, scores = core.classify(name, version, signature, serialized)
    result = []
    for row in range(len(serialized)):
        labels = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                  for v in classes[row]] if classes is not None else None
        row_scores = [float(v) for v in scores[row]] if scores is not None else None
        if labels is not None and row_scores is not None:
            result.append([[label, score] for label, score in zip(labels, row_scores)])
        else:   # TF Serving's REST answer: the labels alone, or the scores alone
            result.append(labels if labels is not None else row_scores)
    return {"result": result}


def _status(core: ServingCore, name: str, version: Optional[int]) -> Dict:
    manager = core.manager(name)
    states = manager.versions()
    if version is not None:
        if version not in states:
            raise not_found(f"Could not find version {version} of model {name}")
        states = {version: states[version]}
    statuses = []
    for v, state in states.items():
        error = manager.load_error(v)
        statuses.append({"version": str(v), "state": state,
                         "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error or ""}})
    return {"model_version_status": statuses}


class _ClientLeft(Exception):
    """The client closed the connection before sending a request: nothing to answer."""


@checks_number_arguments()
class RestFrontEnd:
    """The REST API on the running event loop; requests run on ``RequestWorkers`` threads.

    A connection is read by a coroutine, so slow or stalled clients hold no thread; the whole request
    (line, headers and body) must arrive within ``request_timeout`` seconds (else 408) and the answer
    must be taken within as long. At most ``max_connections`` are open (503 beyond) and the bodies
    being received or answered hold at most ``4 * max_request_bytes`` (503 beyond), so memory stays
    bounded whatever clients declare. One request per connection (``Connection: close``).
    """

    def __init__(self, core: ServingCore, max_workers: int = 16, request_timeout: float = 30.0,
                 max_connections: int = 512) -> None:
        self.core = core
        self.workers = RequestWorkers(max_workers, 4 * max_workers, "rest")
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.connections = 0
        self.body_bytes = 0          # bodies being received or answered
        self.max_body_bytes = 4 * core.limits.max_request_bytes
        self._server: Optional[asyncio.AbstractServer] = None

    async def start(self, host: str, port: int) -> int:
        """Listens on host:port (0 picks a free port); returns the port."""
        try:
            self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD_BYTES)
        except OSError as err:
            raise OSError(f"cannot listen on {host}:{port} (REST): {err.strerror or err}") from None
        return self._server.sockets[0].getsockname()[1]

    async def close(self, grace: float = 0.0) -> None:
        """Stops listening, lets the open connections finish for up to ``grace`` seconds (a request
        being received or answered is completed, as gRPC's ``stop(grace)`` does), then drops the rest."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.workers.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            await self._send(writer, 503, {"error": "the server is at its connection limit; retry"})
            writer.close()
            return
        self.connections += 1
        reserved = 0

        async def receive():
            nonlocal reserved
            method, path, headers = await _read_head(reader)
            name, version, label, tail = _route(method, path)
            if method == "GET":
                return name, version, label, tail, None
            length = _content_length(headers, self.core.limits.max_request_bytes)
            if self.body_bytes + length > self.max_body_bytes:
                raise unavailable("the server is receiving too much data at once; retry")
            self.body_bytes += length
            reserved = length
            if headers.get("Expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = await reader.readexactly(length)
            except asyncio.IncompleteReadError as err:
                raise invalid_argument(f"the body has {len(err.partial)} bytes, not the {length} of its "
                                       "Content-Length") from None
            return name, version, label, tail, body

        try:
            try:
                request = await asyncio.wait_for(receive(), self.request_timeout)
                status, payload = 200, await self.workers.run(self._answer, *request)
            except asyncio.TimeoutError:
                status, payload = 408, {"error": f"the request did not arrive in full within "
                                                 f"{self.request_timeout:g} s"}
            except ServingError as err:
                status, payload = err.http_status, {"error": err.message}
            except HTTPError as err:
                status, payload = err.status, {"error": err.message}
            await self._send(writer, status, payload)
        except (_ClientLeft, ConnectionError):
            pass
        except Exception as err:  # noqa: BLE001 - a server fault: 500, and the server keeps serving
            log.exception("REST request failed")
            await self._send(writer, 500, {"error": bounded_message(f"{type(err).__name__}: {err}")})
        finally:
            self.connections -= 1
            self.body_bytes -= reserved
            writer.close()

    def _answer(self, name: str, version: Optional[int], label: Optional[str], tail: str,
                body: Optional[bytes]) -> bytes:
        """Runs on a worker thread: the JSON answer of a complete request (errors raise)."""
        version = self.core.version_for(name, version, label)
        if body is not None:
            answer = rest_classify if tail == ":classify" else rest_predict
            payload = answer(self.core, name, version, _json_body(body))
        elif tail == "/metadata":
            servable = self.core.servable(name, version)
            sigs = {k: json_format.MessageToDict(v) for k, v in servable.signature_defs.items()}
            payload = {"model_spec": {"name": name, "version": str(servable.version)},
                       "metadata": {"signature_def": {"signature_def": sigs}}}
        else:
            payload = _status(self.core, name, version)
        return json.dumps(payload).encode("utf-8")

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: "Dict | bytes") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode("ascii") + data)
            await asyncio.wait_for(writer.drain(), self.request_timeout)
        except (asyncio.TimeoutError, ConnectionError):
            writer.transport.abort()   # a client that does not read its answer is dropped


async def _read_head(reader: asyncio.StreamReader) -> "tuple[str, str, http.client.HTTPMessage]":
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HTTPError(431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes") from None
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            raise _ClientLeft() from None
        raise invalid_argument("the connection closed inside the request's headers") from None
    line, _, rest = head.partition(b"\r\n")
    words = line.decode("latin-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/1."):
        raise invalid_argument(f"bad request line: {line[:80].decode('latin-1')!r}")
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException as err:   # a line over 64 KiB, more than 100 headers
        raise HTTPError(431, f"bad request headers: {err}") from None
    return words[0], words[1], headers


def _route(method: str, path: str) -> "tuple[str, Optional[int], Optional[str], str]":
    """(model name, version number, version label, tail) of a request path."""
    if method not in ("GET", "POST"):
        raise HTTPError(405, f"method {method[:20]} is not supported")
    match = _ROUTE.match(path)
    if not match:
        raise not_found(f"no such endpoint: {path[:200]}")
    tail = match["tail"] or ""
    if tail == ":regress":
        raise HTTPError(501, "regression is not supported by this server (no rw-tf model has a regress signature)")
    if method == "GET" and tail in POST_VERBS:
        raise HTTPError(405, f"use POST for {tail}")
    if method == "POST" and tail not in POST_VERBS:
        raise HTTPError(405, f"POST is only supported for {' and '.join(sorted(POST_VERBS))}, not {path[:200]}")
    version = match["version"]
    # TF Serving's versions are int64; int() of thousands of digits raised Python's ValueError (a 500).
    if version is not None and (len(version) > _MAX_VERSION_DIGITS or int(version) > MAX_VERSION):
        raise invalid_argument(f"version {version[:40]}{'...' if len(version) > 40 else ''} is not an int64")
    return match["name"], int(version) if version is not None else None, match["label"], tail


def _content_length(headers: http.client.HTTPMessage, limit: int) -> int:
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":   # inflating a body would let a small request grow past the limit
        raise HTTPError(415, f"Content-Encoding {encoding[:40]!r} is not supported; send the body uncompressed")
    if headers.get("Transfer-Encoding") is not None:
        raise HTTPError(411, "chunked request bodies are not supported; send a Content-Length header")
    values = set(headers.get_all("Content-Length") or [])
    if not values:
        raise HTTPError(411, "a Content-Length header is required")
    if len(values) > 1:
        raise invalid_argument(f"conflicting Content-Length headers: {sorted(values)[:4]}")
    raw = values.pop()
    if not (raw.strip().isascii() and raw.strip().isdigit()):   # int() also takes '²'-like digits it cannot parse
        raise invalid_argument(f"Content-Length is not a number: {raw[:40]!r}")
    length = int(raw)
    if length > limit:
        raise HTTPError(413, f"request of {length} bytes exceeds {limit}")
    return length


def _json_body(data: bytes) -> Any:
    try:
        return loads_text(data)
    except LoneSurrogate as err:
        raise invalid_argument(f"the request body is not text: {err}") from None
    except UnicodeDecodeError:
        raise invalid_argument("the request body is not valid UTF-8") from None
    except ValueError as err:
        raise invalid_argument(f"the request body is not JSON: {err}") from None
