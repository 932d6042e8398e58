"""Server behaviours TF Serving users rely on: a bounded batching queue (UNAVAILABLE when full),
padding to allowed batch sizes, failed version loads retried and reported by both status APIs,
chunked execution of large requests, TLS with client certificates, bounded REST connections."""
import json
import shutil
import socket
import subprocess
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
from rw_tf_serving.errors import ServingError
from rw_tf_serving.protos import SSL_CONFIG, parse_text
from rw_tf_serving.server import LocalModelServer

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


def test_stalled_rest_clients_cannot_hold_every_thread(pushed, tmp_path):
    shutil.copytree(pushed, tmp_path / MODEL / "1")
    server = LocalModelServer([ModelSpec(MODEL, str(tmp_path / MODEL))], port=0, rest_port=0, max_workers=2)
    with server:
        server._rest.RequestHandlerClass.timeout = 1.0   # drop stalled clients quickly in the test
        threads_before = threading.active_count()
        stalled = [socket.create_connection(("127.0.0.1", server.rest_port)) for _ in range(6)]
        for s in stalled:
            s.sendall(b"POST /v1/models/x:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")   # never finished
        time.sleep(0.5)
        assert threading.active_count() - threads_before <= 2   # the pool's threads, not one per connection
        time.sleep(3.5)   # every stalled handler has timed out and freed its thread
        body = json.dumps({"signature_name": "classify_text", "instances": ["Tuples are immutable."]}).encode()
        reply = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}:predict", data=body), timeout=20)
        assert reply.status == 200
        for s in stalled:
            s.close()


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
         "batching max_batch_size must be >= 1, got -4"),
        (["--batching-parameters-file", write("b2.txt", "max_batch_size { value: 8 } allowed_batch_sizes: 4")],
         "must increase from >= 1 and end with max_batch_size (8), got [4]"),
        (["--batching-parameters-file", write("b3.txt", b"\xff")], "b3.txt is not UTF-8 text"),
        (["--enable-batching", "--batch-timeout-micros", "-1"], "batch_timeout_micros must be >= 0, got -1"),
        (["--ssl-config-file", write("s.txt", "server_kee: 1")], "s.txt: not a valid SSLConfig text proto"),
        (["--max-texts", "-1"], "max_texts must be >= 1, got -1"),
        (["--max-request-bytes", "0"], "max_request_bytes must be >= 1, got 0")]
    for flags, message in flag_cases:
        assert cli_main(base + flags) == 2
        assert message in capsys.readouterr().err
    for flags, message in ((["--port", "99999"], "99999 is not a port (0-65535"),
                           (["--rest-api-port", "-1"], "-1 is not a port"),
                           (["--max-workers", "0"], "--max-workers: 0 must be >= 1"),
                           (["--file-system-poll-wait-seconds", "0"], "0 must be > 0")):
        with pytest.raises(SystemExit) as exit_code:
            cli_main(base + flags)
        assert exit_code.value.code == 2 and message in capsys.readouterr().err
