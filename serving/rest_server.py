"""TF Serving's REST API subset: model status, metadata and predict (row and columnar formats).

    GET  /v1/models/NAME[/versions/V]
    GET  /v1/models/NAME[/versions/V]/metadata
    POST /v1/models/NAME[/versions/V]:predict   {"signature_name": ..., "instances": [...]} | {"inputs": ...}
Binary strings travel as ``{"b64": "..."}``, as in TF Serving.

Every client error is a 4xx with TF Serving's ``{"error": ...}`` body (400 malformed JSON, ragged
or mixed inputs, a bad ``Content-Length``; 404 unknown model, version, signature or route; 405 other
methods; 411 no length; 413 a body over ``max_request_bytes``; 429 over an element limit); only
server faults are 5xx. Connections are bounded: at most ``max_workers`` are served at once and a
few more wait; beyond that a connection gets 503 at once, and a client that stalls for
``socket_timeout`` seconds is dropped, so slow clients cannot hold every thread.
"""
from __future__ import annotations

import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

import numpy as np
from google.protobuf import json_format

from rw_tf.data.jsonl import LoneSurrogate, loads_text
from rw_tf_serving.core import ServingCore
from rw_tf_serving.errors import ServingError, invalid_argument, not_found
from rw_tf_serving.validation import array_from_json, inputs_from_instances

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<tail>/metadata|:predict)?$")


class HTTPError(Exception):
    """An HTTP status that has no gRPC equivalent (411, 413, 405)."""

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
    _, _, outputs = core.predict(name, version, signature, inputs)
    if "inputs" in body:
        return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": _jsonable(next(iter(outputs.values())))}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{k: _jsonable(v[i:i + 1])[0] for k, v in outputs.items()} for i in range(rows)]}


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


def _handler(core: ServingCore, socket_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        timeout = socket_timeout  # a stalled client is dropped instead of holding a thread

        def log_message(self, fmt: str, *args: Any) -> None:  # keep the terminal for the gRPC log
            pass

        def _reply(self, status: int, payload: Dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            match = _ROUTE.match(self.path)
            if not match:
                raise not_found(f"no such endpoint: {self.path}")
            version = int(match["version"]) if match["version"] else None
            return match["name"], version, match["tail"] or ""

        def _body(self) -> Any:
            raw_length = self.headers.get("Content-Length")
            if raw_length is None:
                raise HTTPError(411, "a Content-Length header is required")
            if not raw_length.strip().isdigit():
                raise invalid_argument(f"Content-Length is not a number: {raw_length[:40]!r}")
            length = int(raw_length)
            if length > core.limits.max_request_bytes:
                raise HTTPError(413, f"request of {length} bytes exceeds {core.limits.max_request_bytes}")
            data = self.rfile.read(length)
            if len(data) != length:
                raise invalid_argument(f"the body has {len(data)} bytes, not the {length} of its Content-Length")
            try:
                return loads_text(data)
            except LoneSurrogate as err:
                raise invalid_argument(f"the request body is not text: {err}") from None
            except UnicodeDecodeError:
                raise invalid_argument("the request body is not valid UTF-8") from None
            except RecursionError:
                raise invalid_argument("the request JSON is nested too deeply") from None
            except ValueError as err:
                raise invalid_argument(f"the request body is not JSON: {err}") from None

        def _respond(self, work) -> None:
            try:
                self._reply(200, work())
            except ServingError as err:
                self._reply(err.http_status, {"error": err.message})
            except HTTPError as err:
                self._reply(err.status, {"error": err.message})
            except (socket.timeout, ConnectionError):
                self.close_connection = True
            except Exception as err:  # noqa: BLE001 - a server fault: 500, and the server keeps serving
                self._reply(500, {"error": f"{type(err).__name__}: {err}"})

        def do_GET(self) -> None:  # noqa: N802
            def work():
                name, version, tail = self._route()
                if tail == ":predict":
                    raise HTTPError(405, "use POST for :predict")
                if tail == "/metadata":
                    servable = core.servable(name, version)
                    sigs = {k: json_format.MessageToDict(v) for k, v in servable.signature_defs.items()}
                    return {"model_spec": {"name": name, "version": str(servable.version)},
                            "metadata": {"signature_def": {"signature_def": sigs}}}
                return _status(core, name, version)
            self._respond(work)

        def do_POST(self) -> None:  # noqa: N802
            def work():
                name, version, tail = self._route()
                if tail != ":predict":
                    raise HTTPError(405, f"POST is only supported for :predict, not {self.path}")
                return rest_predict(core, name, version, self._body())
            self._respond(work)

        def _not_allowed(self) -> None:
            self._reply(405, {"error": f"method {self.command} is not supported"})

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815
    return Handler


class BoundedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose connections run on ``max_workers`` threads with ``backlog``
    more waiting; a connection beyond that gets an immediate 503 (see the module docstring)."""

    daemon_threads = True

    def __init__(self, address, handler, max_workers: int = 16, backlog: int = 64) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rest")
        self._slots = threading.BoundedSemaphore(max_workers + backlog)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                body = json.dumps({"error": "the server is at its connection limit; retry"}).encode()
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return

        def serve():
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - a broken connection must not reach the pool
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                self._slots.release()

        self._pool.submit(serve)

    def handle_error(self, request, client_address) -> None:
        pass  # connection-level faults (resets, timeouts) are the client's; nothing to print

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_rest_server(core: ServingCore, host: str, port: int, max_workers: int = 16,
                      socket_timeout: float = 10.0) -> "tuple[BoundedHTTPServer, int]":
    server = BoundedHTTPServer((host, port), _handler(core, socket_timeout), max_workers=max_workers)
    threading.Thread(target=server.serve_forever, daemon=True, name="rest-server").start()
    return server, server.server_address[1]

