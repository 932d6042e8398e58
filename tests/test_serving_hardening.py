"""Server behaviours TF Serving users rely on: a bounded batching queue (UNAVAILABLE when full),
padding to allowed batch sizes, failed version loads retried and reported by both status APIs,
chunked execution of large requests, TLS with client certificates, slow clients that hold no worker."""
import asyncio
import ctypes
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from rw_tf_serving.batching import Batcher
from rw_tf_serving.config import BatchingParameters, ModelSpec
from rw_tf_serving.core import ServerLimits, ServingCore
from rw_tf_serving.errors import ServingError
from rw_tf_serving.grpc_server import BUFFERED_REQUEST_BYTES, open_call_limit
from rw_tf_serving.protos import SSL_CONFIG, parse_text
from rw_tf_serving.rest_server import RestFrontEnd
from rw_tf_serving.server import LocalModelServer
from rw_tf_serving.workers import EventLoopThread, RequestWorkers

MODEL = "rw_tf_finetune"


def test_batching_queue_is_bounded_and_refuses_with_unavailable():
    release, started = threading.Event(), threading.Event()

    def slow(inputs):
        started.set()
        release.wait(10)
        return {"y": inputs["x"] * 2}

    batcher = Batcher(slow, max_batch_size=2, batch_timeout_micros=0, max_enqueued_batches=2)
    futures = [batcher.submit({"x": np.array([0])})]
    assert started.wait(10)                                # the first batch is running, not queued
    futures += [batcher.submit({"x": np.array([i])}) for i in range(1, 5)]   # 4 rows queued = 2 batches
    with pytest.raises(ServingError) as err:
        batcher.submit({"x": np.array([9])})
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and "queue is full" in err.value.message
    release.set()
    assert [f.result(10)["y"].tolist() for f in futures] == [[0], [2], [4], [6], [8]]
    assert batcher.submit({"x": np.array([7])}).result(10)["y"].tolist() == [14]   # room again
    batcher.close()


def test_batches_are_padded_to_allowed_sizes():
    seen = []

    def record(inputs):
        seen.append(len(inputs["x"]))
        return {"y": inputs["x"] + 1}

    batcher = Batcher(record, max_batch_size=8, batch_timeout_micros=200_000, allowed_batch_sizes=(4, 8))
    futures = [batcher.submit({"x": np.array([i, i])}) for i in range(3)]   # 6 rows -> padded to 8
    assert [f.result(10)["y"].tolist() for f in futures] == [[1, 1], [2, 2], [3, 3]]
    assert seen == [8] and batcher.padded_rows == 2
    with pytest.raises(ValueError, match="end with max_batch_size"):
        Batcher(record, max_batch_size=8, allowed_batch_sizes=(4,))
    batcher.close()
    parsed = BatchingParameters.from_text("max_batch_size { value: 8 }\n"
                                          "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    assert parsed.allowed_batch_sizes == (4, 8) and BatchingParameters.from_text(parsed.to_text()) == parsed


@pytest.fixture(scope="module")
def pushed(pipeline_run):
    _, summaries = pipeline_run
    return summaries["finetune"]["pushed_destination"]


def status(port, version=None):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    if version is not None:
        request.model_spec.version.value = version
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    channel.close()
    return {s.version: (get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_message)
            for s in response.model_version_status}


def test_failed_version_is_retried_and_reported(pushed, tmp_path):
    base = tmp_path / MODEL
    shutil.copytree(pushed, base / "1")
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
    spec = ModelSpec(MODEL, str(base), version_policy="all")
    with LocalModelServer([spec], port=0, rest_port=0, poll_seconds=0.3) as server:
        state, error = status(server.grpc_port)[2]
        assert state == "END", state
        assert f"the SavedModel in {base / '2'} cannot be loaded (OSError: Cannot parse" in error, error
        rest = json.load(urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}/versions/2"))
        assert rest["model_version_status"][0]["status"]["error_code"] != "OK"
        assert rest["model_version_status"][0]["status"]["error_message"] == error
        shutil.rmtree(base / "2")
        shutil.copytree(pushed, base / "2")    # fixed on disk: the next poll loads it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status(server.grpc_port).get(2, ("",))[0] != "AVAILABLE":
            time.sleep(0.3)
        assert status(server.grpc_port)[2] == ("AVAILABLE", "")


def test_large_requests_run_in_bounded_chunks(pushed, tmp_path):
    shutil.copytree(pushed, tmp_path / MODEL / "1")
    with LocalModelServer([ModelSpec(MODEL, str(tmp_path / MODEL))], port=0) as server:
        loaded = server.core.servable(MODEL, None)
        calls = []
        function = loaded.functions["classify_text"]
        loaded.functions["classify_text"] = lambda **kw: calls.append(len(kw["text"])) or function(**kw)
        texts = [f"text number {i}" for i in range(150)]
        _, _, outputs = server.core.predict(MODEL, None, "classify_text", {"text": np.array(
            [t.encode() for t in texts], dtype=object)})
        direct = function(text=tf.constant(texts))["probabilities"].numpy()
        np.testing.assert_allclose(outputs["probabilities"], direct, atol=1e-5)
        assert calls == [64, 64, 22]


def _self_signed(tmp_path, name):
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key.read_text(), cert.read_text()


def test_tls_with_client_certificates(pushed, tmp_path):
    shutil.copytree(pushed, tmp_path / MODEL / "1")
    server_key, server_cert = _self_signed(tmp_path, "server")
    client_key, client_cert = _self_signed(tmp_path, "client")
    config = parse_text(f"server_key: {json.dumps(server_key)}\nserver_cert: {json.dumps(server_cert)}\n"
                        f"custom_ca: {json.dumps(client_cert)}\nclient_verify: true\n", SSL_CONFIG)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "classify_text"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Lists are mutable."]))
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with LocalModelServer([ModelSpec(MODEL, str(tmp_path / MODEL))], port=0, ssl_config=config) as server:
        target = f"127.0.0.1:{server.grpc_port}"
        trusted = grpc.ssl_channel_credentials(server_cert.encode(), client_key.encode(), client_cert.encode())
        with grpc.secure_channel(target, trusted, options) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
            assert len(response.outputs["probability"].float_val) == 1
        anonymous = grpc.ssl_channel_credentials(server_cert.encode())       # no client certificate
        with grpc.secure_channel(target, anonymous, options) as channel, pytest.raises(grpc.RpcError):
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError):
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)


def _calls_without_request(channel, method, count, stop):
    """``count`` calls of ``method`` that open and send nothing until ``stop`` is set."""
    def never_sent():
        stop.wait(30)
        yield from ()

    open_call = channel.stream_unary(method, request_serializer=bytes, response_deserializer=bytes)
    return [open_call.future(never_sent()) for _ in range(count)]


def _drip(port, stop, replies):
    """A REST client that sends its request a byte at a time, each well inside any per-read timeout."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        try:
            for byte in b"POST /v1/models/x:predict HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + b" " * 1000:
                if stop.is_set():
                    return
                s.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:   # the server answered 408 and closed while we were still sending
            pass
        replies.append(s.recv(200).split(b"\r\n")[0])


def test_slow_and_stalled_clients_hold_no_worker(pushed, tmp_path):
    """Three times --max-workers REST clients that drip their requests byte by byte and as many gRPC
    calls that never send their request: real requests on both APIs are still answered at once; when
    the request timeout is up the drips get 408 and the open calls DEADLINE_EXCEEDED. Before, two of
    either took the server down (each held a worker thread: the REST read timeout restarted with
    every byte, and the threaded gRPC server waited for the request message on a worker)."""
    shutil.copytree(pushed, tmp_path / MODEL / "1")
    server = LocalModelServer([ModelSpec(MODEL, str(tmp_path / MODEL))], port=0, rest_port=0, max_workers=2,
                              request_timeout=3.0)
    stop, replies = threading.Event(), []
    with server, grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        drips = [threading.Thread(target=_drip, args=(server.rest_port, stop, replies)) for _ in range(6)]
        for thread in drips:
            thread.start()
        stalled = _calls_without_request(channel, "/tensorflow.serving.PredictionService/Predict", 6, stop)
        time.sleep(1.0)
        body = json.dumps({"signature_name": "classify_text", "instances": ["Tuples are immutable."]}).encode()
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = MODEL, "classify_text"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Tuples are immutable."]))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(3):
            started = time.monotonic()
            reply = urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}:predict", data=body), timeout=10)
            assert reply.status == 200 and len(json.loads(reply.read())["predictions"]) == 1
            assert stub.Predict(request, timeout=10).outputs["probability"].tensor_shape.dim[0].size == 1
            assert time.monotonic() - started < 5.0
        for thread in drips:
            thread.join(timeout=10)
        for call in stalled:   # the client set no deadline: the server ended the calls
            assert call.exception(timeout=10).code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "did not arrive within 3 s" in call.exception().details()
        for _ in range(20):   # the ended calls' streams (their clients still hold them) refuse no new call
            assert stub.Predict(request, timeout=10).outputs["probability"].tensor_shape.dim[0].size == 1
        stop.set()
    assert replies == [b"HTTP/1.1 408 Request Timeout"] * 6


def _exchange(port, data, half_close=True):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_rest_open_connections_and_declared_bodies_are_bounded(tmp_path):
    """Connections beyond max_connections and bodies beyond 4 x max_request_bytes in flight get 503
    at once (memory stays bounded whatever clients declare); a lying Content-Length with the
    connection closed is 400; headers over 64 KiB are 431; the limits free up when clients go."""
    loop = EventLoopThread("test-io")
    core = ServingCore([ModelSpec("m", str(tmp_path / "m"))], limits=ServerLimits(max_request_bytes=1000))
    front = RestFrontEnd(core, max_workers=1, request_timeout=30, max_connections=6)
    port = loop.run(front.start("127.0.0.1", 0))
    try:
        declared = b"POST /v1/models/m:predict HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        for s in held:
            s.sendall(declared)   # 4 x 1000 bytes declared, none sent
        time.sleep(0.3)
        assert _exchange(port, declared) == (503, {"error": "the server is receiving too much data at once; retry"})
        assert _exchange(port, b"GET /v1/models/m HTTP/1.1\r\n\r\n")[0] == 200
        held += [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]   # 6 open: the limit
        time.sleep(0.3)
        assert _exchange(port, b"GET /v1/models/m HTTP/1.1\r\n\r\n", half_close=False) == (
            503, {"error": "the server is at its connection limit; retry"})
        for s in held:
            s.close()
        time.sleep(0.3)
        assert front.connections == 0 and front.body_bytes == 0
        status, body = _exchange(port, declared + b"{}")
        assert status == 400 and "the body has 2 bytes, not the 1000" in body["error"]
        assert _exchange(port, b"GET /v1/models/m HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")[0] == 431
        assert _exchange(port, b"GET /v1/models/m HTTP/1.1\r\n\r\n")[0] == 200
    finally:
        loop.run(front.close())
        loop.close()


def test_open_grpc_calls_are_bounded_by_the_bytes_they_may_buffer(tmp_path):
    """gRPC buffers a request as it arrives, so open calls are capped at BUFFERED_REQUEST_BYTES /
    max_request_bytes: one call over the cap is RESOURCE_EXHAUSTED, and the server ends calls that
    never send within the request timeout, so the cap frees up by itself."""
    limits = ServerLimits(max_request_bytes=BUFFERED_REQUEST_BYTES // 8)
    assert open_call_limit(2, limits.max_request_bytes) == 8 and open_call_limit(2, 16 * 1024 ** 2) == 128
    assert open_call_limit(1024, 1) == 65_536      # gRPC's C int (2**31 calls stopped the server)
    server = LocalModelServer([ModelSpec("m", str(tmp_path / "m"))], port=0, max_workers=2, limits=limits,
                              request_timeout=2.0)
    stop = threading.Event()
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "m"
    with server, grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stalled = _calls_without_request(channel, "/tensorflow.serving.ModelService/GetModelStatus", 8, stop)
        time.sleep(0.5)
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetModelStatus(status, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert all(call.exception(timeout=10).code() == grpc.StatusCode.DEADLINE_EXCEEDED for call in stalled)
        freed = time.monotonic() + 10   # the server frees an ended call's slot a moment (0.2 s) after its status
        while True:
            try:
                assert len(stub.GetModelStatus(status, timeout=10).model_version_status) == 0
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < freed
                time.sleep(0.2)
        stop.set()


def test_request_workers_admit_a_bounded_number_and_count_abandoned_requests():
    """At most max_admitted requests run or wait; a request whose client has gone still counts until
    its thread finishes, so hanging up at once cannot grow the queue."""
    loop = EventLoopThread("test-io")
    workers = RequestWorkers(max_workers=1, max_admitted=2, name="test")
    release = threading.Event()
    try:
        running = [asyncio.run_coroutine_threadsafe(workers.run(release.wait, 10), loop.loop) for _ in range(2)]
        time.sleep(0.2)
        with pytest.raises(ServingError) as err:
            loop.run(workers.run(sum, [1]))
        assert err.value.code == grpc.StatusCode.UNAVAILABLE and err.value.http_status == 503
        running[0].cancel()   # the first client hangs up while its request runs
        time.sleep(0.2)
        assert workers.admitted == 2
        release.set()
        assert running[1].result(5) is True
        time.sleep(0.2)
        assert workers.admitted == 0 and loop.run(workers.run(sum, [1, 2])) == 3
    finally:
        workers.close()
        loop.close()


def test_serve_refuses_bad_config_files_and_flags_at_start(tmp_path, capsys):
    """Every case stops `rw-tf serve` at start with exit 2 and a line naming the problem (before: a
    ParseError traceback, a silently wrapped port, limits and batch sizes below 1 accepted)."""
    from rw_tf.cli.main import main as cli_main

    def write(name, content):
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(tmp_path / name)

    base = ["serve", "--model-base-path", str(tmp_path / "models"), "--port", "0"]
    config_cases = [
        (write("a.config", "garbage {{{"), "a.config: not a valid ModelServerConfig text proto"),
        (write("b.config", b"\xff\xfe"), "b.config is not UTF-8 text"),
        (write("c.config", ""), "c.config lists no model"),
        (write("d.config", 'model_config_list { config { name: "a" base_path: "/x" } '
                           'config { name: "a" base_path: "/y" } }'), "every model needs a name of its own"),
        (write("e.config", 'model_config_list { config { name: "a" } }'), "model 'a' has no base_path"),
        (write("f.config", 'model_config_list { config { name: "a" base_path: "/x" model_platform: "onnx" } }'),
         "model_platform 'onnx'")]
    for path, message in config_cases:
        assert cli_main(["serve", "--model-config-file", path, "--port", "0"]) == 2
        assert message in capsys.readouterr().err
    flag_cases = [
        (["--batching-parameters-file", write("b1.txt", "max_batch_size { value: -4 }")],
         "BatchingParameters.max_batch_size must be > 0, got -4"),
        (["--batching-parameters-file", write("b2.txt", "max_batch_size { value: 8 } allowed_batch_sizes: 4")],
         "must increase from >= 1 and end with max_batch_size (8), got [4]"),
        (["--batching-parameters-file", write("b3.txt", b"\xff")], "b3.txt is not UTF-8 text"),
        (["--enable-batching", "--batch-timeout-micros", "-1"], "BatchingParameters.batch_timeout_micros must be >= 0"),
        # Too large for the timers, threads and C ints they become (before: OverflowError in a batch
        # thread, requests never answered; a billion threads; an unsent request of 10**12 rows).
        (["--enable-batching", "--batch-timeout-micros", str(10**20)], "got 100,000,000,000,000,000,000"),
        (["--batching-parameters-file", write("b4.txt", "num_batch_threads { value: 1000000000 }")],
         "batching num_batch_threads must be 1 to 1,024, got 1,000,000,000"),
        (["--enable-batching", "--max-batch-size", str(10**12)], "max_batch_size must be 1 to 1,048,576"),
        (["--max-request-bytes", str(2**31)],
         "ServerLimits.max_request_bytes must be > 0 and at most 2,147,483,647 (gRPC takes it as a C int"),
        (["--ssl-config-file", write("s.txt", "server_kee: 1")], "s.txt: not a valid SSLConfig text proto"),
        (["--max-texts", "-1"], "ServerLimits.max_texts must be > 0, got -1"),
        (["--max-request-bytes", "0"], "ServerLimits.max_request_bytes must be > 0 and at most 2,147,483,647 "
                                       "(gRPC takes it as a C int; protobuf messages stop at 2 GiB), got 0")]
    for flags, message in flag_cases:
        assert cli_main(base + flags) == 2
        assert message in capsys.readouterr().err
    for flags, message in ((["--port", "99999"], "99999 is not a port (0-65535"),
                           (["--rest-api-port", "-1"], "-1 is not a port"),
                           (["--max-workers", "0"], "--max-workers: 0 is not in 1 to 1,024"),
                           (["--max-workers", str(10**9)], "--max-workers: 1000000000 is not in 1 to 1,024"),
                           (["--request-timeout-in-ms", "0"], "timeout-in-ms: 0 is not in 1 to 86,400,000"),
                           (["--rest-api-timeout-in-ms", "-5"], "-5 is not in 1"),
                           (["--file-system-poll-wait-seconds", "0"], "0 is not in 0.001 to 86,400"),
                           # before: the version poller thread died of OverflowError, the server went on
                           (["--file-system-poll-wait-seconds", "1e300"], "1e300 is not in 0.001 to 86,400"),
                           (["--file-system-poll-wait-seconds", "nan"], "nan is not in"),
                           (["--max-workers", "many"], "--max-workers: invalid int value: 'many'")):
        with pytest.raises(SystemExit) as exit_code:
            cli_main(base + flags)
        assert exit_code.value.code == 2 and message in capsys.readouterr().err
    with socket.socket() as taken:   # a port in use: which API could not listen, and a hint
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for flags, api in ((["--port", port], "gRPC"), (["--port", "0", "--rest-api-port", port], "REST")):
            assert cli_main(base[:-2] + flags) == 2
            err = capsys.readouterr().err
            assert f"cannot listen on 127.0.0.1:{port} ({api})" in err and "choose another --port" in err


class _SlowSignature(tf.Module):
    """Marks that a request started (a file named after its first text), then stays busy 2 s."""

    def __init__(self, marks):
        super().__init__()
        self.marks = marks

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        start = tf.timestamp()
        mark = tf.io.write_file(tf.strings.join([self.marks, "/started-", text[0]]), "")
        with tf.control_dependencies([mark]):
            end = tf.while_loop(lambda t: t < start + 2.0, lambda t: [tf.timestamp()], [start])
        return {"length": tf.strings.length(text) + tf.cast(0.0 * (end - start), tf.int32)}


def test_sigterm_lets_requests_in_flight_finish_on_both_apis(tmp_path):
    """Before: SIGTERM (docker stop, a Kubernetes rollout) killed `rw-tf serve` at once; both
    requests below failed (gRPC UNAVAILABLE, REST "closed without a response") and the exit code was -15."""
    marks = tmp_path / "marks"
    marks.mkdir()
    module = _SlowSignature(str(marks))
    tf.saved_model.save(module, str(tmp_path / "slow" / "1"), signatures={"serving_default": module.serve})
    proc = subprocess.Popen([sys.executable, "-m", "rw_tf.cli.main", "serve", "--model-base-path",
                             str(tmp_path / "slow"), "--port", "0", "--rest-api-port", "0",
                             "--shutdown-grace-seconds", "30"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        grpc_port, rest_port = re.findall(r":(\d+)", proc.stdout.readline())
        results = {}

        def grpc_call():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "slow"
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(["grpc", "call"]))
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                try:
                    reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
                    results["grpc"] = tf.make_ndarray(reply.outputs["length"]).tolist()
                except grpc.RpcError as err:
                    results["grpc"] = err.code()

        def rest_call():
            request = urllib.request.Request(f"http://127.0.0.1:{rest_port}/v1/models/slow:predict",
                                             data=json.dumps({"instances": ["rest!"]}).encode(), method="POST")
            try:
                results["rest"] = json.load(urllib.request.urlopen(request, timeout=60))
            except OSError as err:
                results["rest"] = repr(err)

        calls = [threading.Thread(target=call) for call in (grpc_call, rest_call)]
        for call in calls:
            call.start()
        deadline = time.monotonic() + 60
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:   # both are running
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        for call in calls:
            call.join(60)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert results == {"grpc": [4, 4], "rest": {"predictions": [5]}}
    assert proc.returncode == 0 and out.splitlines()[-2:] == ["stopping: requests in flight get up to 30 s",
                                                              "stopped"]
    with pytest.raises(OSError):                           # and nothing listens any more
        urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/slow", timeout=5)


class _HalfPlusTwo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def half_plus_two(self, x):
        return {"y": 0.5 * x + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def row_sums(self, ids):
        return {"sum": tf.reduce_sum(ids, axis=1)}


def _save_half_plus_two(path: str) -> None:
    module = _HalfPlusTwo()
    tf.saved_model.save(module, path, signatures={"serving_default": module.half_plus_two})


_SIGTERM_DURING_START = """
import os, signal, sys
from rw_tf.cli.main import main
from rw_tf_serving.server import LocalModelServer
start = LocalModelServer.start
def start_after_a_sigterm(self):
    os.kill(os.getpid(), signal.SIGTERM)   # as if sent while the models load
    return start(self)
LocalModelServer.start = start_after_a_sigterm
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_models_load_stops_the_server_cleanly(tmp_path):
    """Before: the handler was installed after the server said it serves; a SIGTERM before then (one
    sent as soon as that line appeared lost the race once in CI) killed it with -15."""
    _save_half_plus_two(str(tmp_path / "m" / "1"))
    done = subprocess.run([sys.executable, "-c", _SIGTERM_DURING_START, "serve", "--model-base-path",
                           str(tmp_path / "m"), "--port", "0"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("serving ['m'] on 127.0.0.1:") and lines[-1] == "stopped"


def _signal_a_thread_other_than_main(pid: int, signum: int) -> None:
    """Sends ``signum`` to one thread of process ``pid`` that is not its main thread and does not
    block it, as the kernel may do with any signal sent to a process (kill, docker stop, Ctrl-C)."""
    def blocks(tid: str) -> bool:
        status = pathlib.Path(f"/proc/{pid}/task/{tid}/status").read_text()
        return bool(int(re.search(r"SigBlk:\s*([0-9a-f]+)", status).group(1), 16) >> (signum - 1) & 1)

    tid = next(int(t) for t in sorted(os.listdir(f"/proc/{pid}/task"), key=int)[1:] if not blocks(t))
    if ctypes.CDLL(None, use_errno=True).tgkill(pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill {pid} {tid}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sends to one thread through Linux's tgkill")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_received_by_another_thread_stops_the_server(tmp_path, signum):
    """Before: when the kernel handed SIGTERM (or Ctrl-C's SIGINT) to one of the server's other
    threads (gRPC's, TensorFlow's: it may pick any, and did once in CI), Python only flagged it for
    the main thread, which waited on a lock without a timeout and never looked: the server kept
    serving, `docker stop` had to kill it after its grace period."""
    _save_half_plus_two(str(tmp_path / "m" / "1"))
    proc = subprocess.Popen([sys.executable, "-m", "rw_tf.cli.main", "serve", "--model-base-path",
                             str(tmp_path / "m"), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        assert proc.stdout.readline().startswith("serving ['m'] on 127.0.0.1:")
        _signal_a_thread_other_than_main(proc.pid, signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.splitlines()[-1] == "stopped"


def test_rest_json_numbers_take_the_dtype_the_signature_declares(tmp_path):
    """TF Serving's REST example, `{"instances": [1.0, 2.0, 5.0]}` to a float32 input, was refused
    ("input 'x' must be float32, got float64"): JSON has one kind of number, the signature says which."""
    from rw_tf_serving.rest_server import rest_predict

    module = _HalfPlusTwo()
    tf.saved_model.save(module, str(tmp_path / "half" / "1"),
                        signatures={"serving_default": module.half_plus_two, "row_sums": module.row_sums})
    core = ServingCore([ModelSpec("half", str(tmp_path / "half"))])
    core.refresh()
    assert rest_predict(core, "half", None, {"instances": [1.0, 2.0, 5.0]}) == {"predictions": [2.5, 3.0, 4.5]}
    # A single output's values come without its name, as TF Serving answers (they came as {"y": ...}).
    assert rest_predict(core, "half", None, {"inputs": {"x": [2, 4]}}) == {"outputs": [3.0, 4.0]}
    ids = {"signature_name": "row_sums"}
    assert rest_predict(core, "half", None, {**ids, "instances": [[1, 2], [3, -4]]}) == {"predictions": [3, -1]}
    for body, message in (({"instances": [1e39]}, "beyond the range of float32"),
                          ({"instances": [10 ** 400]}, "beyond the range of float32"),
                          ({"instances": [True]}, "must be float32, got bool"),
                          ({"inputs": {"x": []}}, "input 'x' is an empty batch"),
                          ({"instances": ["1.0"]}, "must be float32, got string"),
                          ({**ids, "instances": [[1.5, 2]]}, "must be whole numbers without a decimal point"),
                          ({**ids, "instances": [[1.0, 2]]}, "must be whole numbers without a decimal point"),
                          ({**ids, "instances": [[2 ** 31, 0]]}, r"outside the range of int32 \[-2147483648"),
                          ({**ids, "instances": [[10 ** 30, 0]]}, "outside the range of int32")):
        with pytest.raises(ServingError, match=message) as err:
            rest_predict(core, "half", None, body)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    core.close()


def test_version_folders_are_named_as_tf_serving_reads_them(tmp_path, capsys):
    """A folder named '²' (a digit to str.isdigit, not to int) stopped `rw-tf serve` at start and,
    made while it ran, failed every version poll after it (new versions never loaded); '007', which
    TF Serving serves as version 7, was loaded from '7' and failed."""
    import http.client
    import io

    from rw_tf.cli.embed import saved_model_dir
    from rw_tf.model_files import version_folders
    from rw_tf_serving.rest_server import _content_length, rest_predict

    module = _HalfPlusTwo()
    for name in ("007", "3", "03", "²", "١", "9" * 20):
        tf.saved_model.save(module, str(tmp_path / "half" / name), signatures={"serving_default": module.half_plus_two})
    assert version_folders(str(tmp_path / "half")) == {3: "3", 7: "007"}
    core = ServingCore([ModelSpec("half", str(tmp_path / "half"), version_policy="all")])
    core.refresh()
    assert rest_predict(core, "half", 7, {"instances": [2.0]}) == {"predictions": [3.0]}
    assert rest_predict(core, "half", 3, {"instances": [4.0]}) == {"predictions": [4.0]}
    core.close()
    assert saved_model_dir(str(tmp_path / "half")) == str(tmp_path / "half" / "007")   # `rw-tf embed --model`

    def headers(length: bytes):
        return http.client.parse_headers(io.BytesIO(b"Content-Length: " + length + b"\r\n\r\n"))

    from rw_tf_serving.rest_server import _route

    assert _route("GET", "/v1/models/half/versions/" + "9" * 18) == ("half", int("9" * 18), None, "")
    assert _route("POST", "/v1/models/half/labels/stable:predict") == ("half", None, "stable", ":predict")
    for version in ("9" * 5000, str(2 ** 63)):   # before: "9" * 5000 was a 500 (int()'s digit limit)
        with pytest.raises(ServingError, match=r"version [0-9]{19,40}(\.\.\.)? is not an int64"):
            _route("GET", "/v1/models/half/versions/" + version)
    assert _content_length(headers(b"12"), 100) == 12
    for length in (b"\xb2", b"\xd9\xa1", b"1_0", b"+5"):   # before: '\xb2' was a 500 with a traceback
        with pytest.raises(ServingError, match="Content-Length is not a number") as err:
            _content_length(headers(length), 100)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT     # REST 400


_START_AND_STOP = """
import sys
from rw_tf_serving.config import ModelSpec
from rw_tf_serving.server import LocalModelServer
server = LocalModelServer([ModelSpec("m", sys.argv[1])], port=0, rest_port=0).start()
server.stop()
print("stopped")
"""


def test_a_script_that_stops_the_server_exits_without_a_traceback(tmp_path):
    """Before: the gRPC server object outlived stop() and was freed at the interpreter's exit, after
    grpc's module state: "Exception ignored in: 'grpc._cython.cygrpc.AioServer.__dealloc__'" and an
    AttributeError traceback ('NoneType' object has no attribute 'POLLER') on every such script."""
    _save_half_plus_two(str(tmp_path / "m" / "1"))
    done = subprocess.run([sys.executable, "-c", _START_AND_STOP, str(tmp_path / "m")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]
