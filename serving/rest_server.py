"""TF Serving's REST API subset: model status, metadata and predict (row and columnar formats).

    GET  /v1/models/NAME[/versions/V]
    GET  /v1/models/NAME[/versions/V]/metadata
    POST /v1/models/NAME[/versions/V]:predict   {"signature_name": ..., "instances": [...]} | {"inputs": ...}
Binary strings travel as ``{"b64": "..."}``, as in TF Serving.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

import numpy as np
from google.protobuf import json_format

from rw_tf_serving.core import ServingCore
from rw_tf_serving.errors import ServingError, invalid_argument

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<tail>/metadata|:predict)?$")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _to_array(value: Any) -> np.ndarray:
    array = np.array(_decode(value))
    if array.dtype.kind in "US":
        array = np.array([v.encode("utf-8") for v in array.reshape(-1)], dtype=object).reshape(array.shape)
    return array


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def rest_predict(core: ServingCore, name: str, version: Optional[int], body: Dict) -> Dict:
    signature = body.get("signature_name", "")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid_argument("'instances' must be a non-empty list")
        if isinstance(instances[0], dict):
            inputs = {k: _to_array([row[k] for row in instances]) for k in instances[0]}
        else:
            servable = core.servable(name, version)
            sig = core.signature(servable, signature)
            if len(sig.inputs) != 1:
                raise invalid_argument("instances must be objects when the signature has several inputs")
            inputs = {next(iter(sig.inputs)): _to_array(instances)}
        _, _, outputs = core.predict(name, version, signature, inputs)
        if len(outputs) == 1:
            return {"predictions": _jsonable(next(iter(outputs.values())))}
        rows = len(next(iter(outputs.values())))
        return {"predictions": [{k: _jsonable(v[i:i + 1])[0] for k, v in outputs.items()} for i in range(rows)]}
    if "inputs" in body:
        raw = body["inputs"]
        inputs = {k: _to_array(v) for k, v in raw.items()} if isinstance(raw, dict) else None
        if inputs is None:
            servable = core.servable(name, version)
            inputs = {next(iter(core.signature(servable, signature).inputs)): _to_array(raw)}
        _, _, outputs = core.predict(name, version, signature, inputs)
        return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}
    raise invalid_argument("the request needs 'instances' or 'inputs'")


def _handler(core: ServingCore):
    class Handler(BaseHTTPRequestHandler):
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
                raise ServingError(__import__("grpc").StatusCode.NOT_FOUND, f"no such endpoint: {self.path}")
            version = int(match["version"]) if match["version"] else None
            return match["name"], version, match["tail"] or ""

        def do_GET(self) -> None:  # noqa: N802
            try:
                name, version, tail = self._route()
                if tail == "/metadata":
                    servable = core.servable(name, version)
                    sigs = {k: json_format.MessageToDict(v) for k, v in servable.signature_defs.items()}
                    self._reply(200, {"model_spec": {"name": name, "version": str(servable.version)},
                                      "metadata": {"signature_def": {"signature_def": sigs}}})
                    return
                states = core.manager(name).versions()
                if version is not None:
                    states = {version: states[version]} if version in states else {}
                    if not states:
                        raise ServingError(__import__("grpc").StatusCode.NOT_FOUND, f"no version {version} of {name}")
                self._reply(200, {"model_version_status": [
                    {"version": str(v), "state": s, "status": {"error_code": "OK", "error_message": ""}}
                    for v, s in states.items()]})
            except ServingError as err:
                self._reply(err.http_status, {"error": err.message})

        def do_POST(self) -> None:  # noqa: N802
            try:
                name, version, tail = self._route()
                if tail != ":predict":
                    raise invalid_argument(f"POST is only supported for :predict, not {self.path}")
                length = int(self.headers.get("Content-Length", "0"))
                if length > core.limits.max_request_bytes:
                    self._reply(413, {"error": f"request of {length} bytes exceeds {core.limits.max_request_bytes}"})
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except (ValueError, UnicodeDecodeError) as err:
                    raise invalid_argument(f"request body is not JSON: {err}") from None
                self._reply(200, rest_predict(core, name, version, body))
            except ServingError as err:
                self._reply(err.http_status, {"error": err.message})
            except Exception as err:  # noqa: BLE001
                self._reply(500, {"error": f"{type(err).__name__}: {err}"})
    return Handler


def start_rest_server(core: ServingCore, host: str, port: int) -> "tuple[ThreadingHTTPServer, int]":
    server = ThreadingHTTPServer((host, port), _handler(core))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="rest-server").start()
    return server, server.server_address[1]
