"""The user's side of serving. The REST client (``rest_predict``, ``rest_classify``, ``rw-tf predict
--rest``) against servers that misbehave: every answer that is not a TF Serving answer is a
``RestExchangeError`` or ``RestError`` naming what went wrong, read within the timeout and
``MAX_MESSAGE_BYTES``; flags that would overflow a socket, gRPC or the proto are refused by the
command line. ``rw-tf serving-config`` on push folders that hold more than models."""
import contextlib
import csv
import hashlib
import json
import os
import shlex
import socket
import threading
import time
import tracemalloc
from concurrent import futures

import grpc
import pytest
import tensorflow as tf
import yaml
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import rw_tf.cli.streams
import rw_tf_serving.client
from rw_tf.cli.main import main
from rw_tf.errors import escape_unprintable
from rw_tf_serving.client import (
    RestError,
    RestExchangeError,
    ServingClient,
    rest_base_url,
    rest_classify,
    rest_predict,
)
from rw_tf_serving.config import BatchingParameters, ModelSpec, models_config_text, read_models_config
from rw_tf_serving.server import LocalModelServer
from rw_tf_serving.validation import ServerLimits


def _ok(body: bytes, status: str = "200 OK", length: int = -1) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body) if length < 0 else length}\r\n\r\n").encode() + body


def _drip(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
    for _ in range(200):
        conn.sendall(b" ")
        time.sleep(0.05)


def _stream(status: bytes, size: int):
    def send(conn):
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n\r\n{\"outputs\": \"")
        for _ in range(size >> 16):
            conn.sendall(b"a" * (1 << 16))
    return send


# What each hostile server does with a request, and what the client must say about it.
HOSTILE = {
    "silent": (lambda conn: time.sleep(5), RestExchangeError, "no complete answer within 0.5 s"),
    "drip": (_drip, RestExchangeError, "no complete answer within 0.5 s"),
    "close": (lambda conn: None, RestExchangeError, "Remote end closed connection without response"),
    "not_http": (lambda conn: conn.sendall(b"NOT HTTP AT ALL\r\n\r\n"), RestExchangeError,
                 "not an HTTP answer (BadStatusLine: 'NOT HTTP AT ALL')"),
    "html": (lambda conn: conn.sendall(_ok(b"<html>proxy error</html>")), RestExchangeError,
             "the answer is not JSON (Expecting value"),
    "not_utf8": (lambda conn: conn.sendall(_ok(b'{"outputs": "\xff"}')), RestExchangeError,
                 "the answer is not JSON ('utf-8' codec can't decode byte 0xff"),
    "deep": (lambda conn: conn.sendall(_ok(b"[" * 100_000)), RestExchangeError,
             "the answer is not JSON (the JSON is nested too deeply to decode)"),
    "array": (lambda conn: conn.sendall(_ok(b"[1, 2]")), RestExchangeError, "the answer is a JSON list, not an object"),
    "short": (lambda conn: conn.sendall(_ok(b'{"outputs": 1}', length=1000)), RestExchangeError,
              "the connection closed 986 bytes before the declared Content-Length of 1,000"),
    "huge": (_stream(b"200 OK", 4 << 20), RestExchangeError, "the answer is longer than 1,048,576 bytes"),
    "huge_error": (_stream(b"500 Oops", 4 << 20), RestExchangeError, "the answer is longer than 1,048,576 bytes"),
    "long_error": (lambda conn: conn.sendall(_ok(b"x" * 100_000, "503 Busy")), RestError,
                   "REST request failed with HTTP 503: " + "x" * 2000 + " ..."),
    # Shown on one line, with what a terminal would act on escaped (before: the page's lines, and the
    # escape sequences sent raw to the terminal, which cleared it and set its title).
    "proxy_error_page": (lambda conn: conn.sendall(_ok(b"<html>\r\n<body>\r\n  <h1>502 Bad Gateway</h1>\r\n"
                                                       b"</body>\r\n</html>\r\n", "502 Bad Gateway")),
                         RestError, "HTTP 502: <html> <body> <h1>502 Bad Gateway</h1> </body> </html>"),
    "terminal_escapes": (lambda conn: conn.sendall(_ok(b'{"error": "\\u001b[2J\\u001b]0;owned\\u0007 gone\\u202e"}',
                                                       "500 Oops")),
                         RestError, "HTTP 500: \\x1b[2J\\x1b]0;owned\\x07 gone\\u202e"),
    "tf_serving_error": (lambda conn: conn.sendall(_ok(b'{"error": "Servable not found for request: Latest(m)"}',
                                                       "404 Not Found")),
                         RestError, "REST request failed with HTTP 404: Servable not found for request: Latest(m)"),
}


def _read_request(conn) -> bytes:
    # Read all of it: closing a socket with unread bytes sends a reset, not the end the case is about.
    request = b""
    while b"\r\n\r\n" not in request and (chunk := conn.recv(1 << 16)):
        request += chunk
    head, _, body = request.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := conn.recv(1 << 16)):
        body += chunk
    return head


@contextlib.contextmanager
def hostile_server(behave):
    """A server on a free port that reads a request (recording its first line) and then ``behave``s."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen, done = [], threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(_read_request(conn).split(b"\r\n", 1)[0])
                with contextlib.suppress(OSError):
                    behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        done.set()
        listener.close()


def test_answers_that_are_not_tf_serving_answers_are_named_errors(monkeypatch):
    monkeypatch.setattr(rw_tf_serving.client, "MAX_MESSAGE_BYTES", 1 << 20)
    for case, (behave, error, message) in HOSTILE.items():
        with hostile_server(behave) as (url, seen):
            began = time.monotonic()
            with pytest.raises(error) as info:
                rest_predict(url, "a/../b c", inputs={"text": ["hi"]}, timeout=0.5)
            assert message in str(info.value), (case, str(info.value))
            # The timeout bounds the whole exchange (the dripping server would take 10 s).
            assert time.monotonic() - began < 3, case
            # The model name is one path segment: it cannot walk the URL or break the request line.
            assert seen[0] == b"POST /v1/models/a%2F..%2Fb%20c:predict HTTP/1.1", case
    with hostile_server(lambda conn: conn.sendall(_ok(b'{"predictions": []}'))) as (url, _):
        with pytest.raises(RestExchangeError, match='the answer has no "result" list'):
            rest_classify(url + "/", "m", [{"text": "x"}], timeout=2)
    with hostile_server(lambda conn: conn.sendall(_ok(b'{"outputs": {"y": [1]}}'))) as (url, seen):
        assert rest_predict(url + "/prefix/", "m", inputs={"x": [1]}, version=3, timeout=2) == {"outputs": {"y": [1]}}
        assert seen == [b"POST /prefix/v1/models/m/versions/3:predict HTTP/1.1"]


def test_urls_timeouts_and_versions_that_cannot_be_used_are_refused(capsys):
    for url in ("file:///etc/passwd", "ftp://127.0.0.1:8501", "127.0.0.1:8501", "http://[bad", "http://h:99999",
                "http://h:1?x=1", "http://h:1#top", "http://:8501"):
        with pytest.raises(ValueError, match="is not a REST base URL"):
            rest_base_url(url)
        with pytest.raises(SystemExit) as info:
            main(["predict", "--rest", url, "--model", "m", "x"])
        assert info.value.code == 2 and "is not a REST base URL" in capsys.readouterr().err
    assert rest_base_url("https://models.example.com/serving").path == "/serving"
    for timeout in (float("nan"), float("inf"), -1.0, 0.0, 1e300):
        with pytest.raises(ValueError, match=r"ServingClient.timeout must be > 0 and at most 86,400 \(seconds"):
            ServingClient("127.0.0.1:9", timeout=timeout)
        with pytest.raises(ValueError, match=r"rest_predict.timeout must be > 0 and at most 86,400 \(seconds"):
            rest_predict("http://127.0.0.1:9", "m", instances=["x"], timeout=timeout)
        with pytest.raises(SystemExit):
            main(["predict", "--model", "m", "--timeout", str(timeout), "x"])
        assert f"--timeout: {timeout} is not in 0.001 to 86,400" in capsys.readouterr().err
    for version in ("-1", str(2**63), str(10**30)):
        with pytest.raises(SystemExit):
            main(["predict", "--model", "m", "--version", version, "x"])
        assert f"--version: {version} is not in 0 to 9,223,372,036,854,775,807" in capsys.readouterr().err


def test_predict_command_names_a_rest_server_that_does_not_answer(capsys):
    with hostile_server(HOSTILE["drip"][0]) as (url, _):
        assert main(["predict", "--rest", url, "--model", "m", "--timeout", "0.5", "hi"]) == 2
    err = capsys.readouterr().err
    assert f"no answer from {url}: no complete answer within 0.5 s" in err and "hint" in err
    with hostile_server(HOSTILE["tf_serving_error"][0]) as (url, _):
        assert main(["predict", "--rest", url, "--model", "m", "hi"]) == 2
    assert "HTTP 404: Servable not found for request: Latest(m)" in capsys.readouterr().err


def test_predict_prints_the_answer_with_what_a_terminal_acts_on_escaped(capsys, monkeypatch):
    """Before: on a UTF-8 terminal the answer's C1 controls (U+009B is CSI: "\\x9b2J" clears the
    screen) and bidirectional overrides were printed raw; JSON escapes only C0 controls."""
    monkeypatch.setattr(rw_tf.cli.streams, "stdout_writes_utf8", lambda: True)
    answer = json.dumps({"outputs": {"y": ["d\u00e9j\u00e0 vu", "\u009b2J\u202eevil", "\U000e0041"]}}).encode()
    with hostile_server(lambda conn: conn.sendall(_ok(answer))) as (url, _):
        assert main(["predict", "--rest", url, "--model", "m", "hi"]) == 0
    out = capsys.readouterr().out
    assert "d\u00e9j\u00e0 vu" in out and "\\u009b2J\\u202eevil" in out and "\\udb40\\udc41" in out
    assert json.loads(out) == {"outputs": {"y": ["d\u00e9j\u00e0 vu", "\u009b2J\u202eevil", "\U000e0041"]}}


class _CountingStdout:
    """A UTF-8 standard output that keeps only a hash and the length of what it is given."""

    encoding = "utf-8"

    def __init__(self) -> None:
        self.digest, self.chars = hashlib.sha256(), 0

    def write(self, text: str) -> int:
        self.digest.update(text.encode("utf-8", "surrogatepass"))
        self.chars += len(text)
        return len(text)


def test_a_large_answer_is_printed_in_pieces_as_the_whole_string_would_be(monkeypatch):
    """Before: the answer became one indented string before it was printed; a 57 MiB REST answer
    of numbers made ``rw-tf predict`` peak at 3.3 GB (1.1 GB now, most of it the decoded answer)."""
    answer = {"outputs": {"y": [[i * 0.5, "\u009b2J\u202e", "d\u00e9j\u00e0"] for i in range(60_000)]}}
    expected = escape_unprintable(json.dumps(answer, ensure_ascii=False, indent=2),
                                  lambda c: json.dumps(c)[1:-1]) + "\n"
    sink = _CountingStdout()
    monkeypatch.setattr("sys.stdout", sink)
    tracemalloc.start()
    try:
        rw_tf.cli.streams.print_json(answer, indent=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.chars == len(expected) > 4_000_000
    assert sink.digest.hexdigest() == hashlib.sha256(expected.encode("utf-8", "surrogatepass")).hexdigest()
    # The whole text as one string takes at least a byte a character; the pieces stay near 1 MB.
    assert peak < 2_000_000, f"printing held {peak:,} bytes for {len(expected):,} characters"


class _DeclaringServer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers with an output that declares ``declared`` floats and carries ``carried``."""

    def __init__(self, declared: int, carried: int) -> None:
        self.declared, self.carried = declared, carried

    def Predict(self, request, context):
        answer = predict_pb2.PredictResponse()
        output = answer.outputs["y"]
        output.dtype = types_pb2.DT_FLOAT
        output.tensor_shape.dim.add(size=self.declared)
        output.float_val.extend([1.5] * self.carried)
        return answer


class _AbortingServer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad\x1b[2J\x1b]0;owned\x07\n  input\u202e")


def test_grpc_error_details_are_shown_on_one_line_with_escapes_escaped(capsys):
    """Before: `rw-tf predict` printed a server's status details as they came: escape sequences
    reached the terminal (this one clears it and sets its title) and a newline broke the line."""
    server = grpc.server(futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_AbortingServer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert main(["predict", "--server", f"127.0.0.1:{port}", "--model", "m", "x"]) == 2
    finally:
        server.stop(None)
    assert capsys.readouterr().err == ("rw-tf predict: error: INVALID_ARGUMENT: bad\\x1b[2J\\x1b]0;owned\\x07 "
                                       "input\\u202e\n")


def test_every_error_line_escapes_what_a_terminal_acts_on(tmp_path, capsys):
    """A path from a shell pattern or a folder listing carries whatever the file's name holds; before,
    this one set the terminal's title when `rw-tf embed` named it."""
    folder = tmp_path / "m\x1b]0;owned\x07"
    assert main(["embed", "--model", str(folder), "--text", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("m\\x1b]0;owned\\x07\n") and "\x1b" not in err and "\x07" not in err


def test_grpc_answers_are_held_to_the_values_they_carry(capsys):
    # TensorFlow's make_ndarray repeats the last value up to the declared shape: an answer declaring
    # 10**8 floats and carrying one took 80 s and 12.6 GB in `rw-tf predict` (10**10 would exhaust memory).
    too_many = "more than the 67,108,864 elements one answer may carry"
    for declared, carried, expected, message in ((10**8, 1, None, too_many), (10**6, 1, None, "but carries 1"),
                                                 (2, 3, None, "(2 values) but carries 3"),
                                                 (3, 3, [1.5, 1.5, 1.5], "")):
        server = grpc.server(futures.ThreadPoolExecutor(2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_DeclaringServer(declared, carried), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            client = ServingClient(f"127.0.0.1:{port}", timeout=10)
            if expected is not None:
                assert client.predict("m", {"x": tf.constant([1.0])}) == {"y": expected}
                continue
            began = time.monotonic()
            with pytest.raises(ValueError) as info:
                client.predict("m", {"x": [1.0]})
            assert time.monotonic() - began < 5
            assert str(info.value).startswith(f"the server's answer is not valid: output 'y' declares shape "
                                              f"[{declared}]") and message in str(info.value)
            assert main(["predict", "--server", f"127.0.0.1:{port}", "--model", "m", "x"]) == 2
            assert "the server's answer is not valid: output 'y' declares shape" in capsys.readouterr().err
            client.close()
        finally:
            server.stop(None)


def test_serving_config_serves_the_model_folders_where_the_container_mounts_them(tmp_path, capsys):
    push = tmp_path / "push, v1:a"          # a comma and a colon in the host path
    for folder in ("good/7", "other/12/variables", "empty", "notnum/v1", ".ipynb_checkpoints"):
        (push / folder).mkdir(parents=True)
    (push / "README").write_text("not a model")
    mount = "/srv/models: {all}#"          # YAML's ':', '{' and '#' inside a value
    out = tmp_path / "deploy"
    assert main(["serving-config", "--push-root", str(push), "--output-dir", str(out), "--models-mount", mount,
                 "--num-versions", "2"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[:printed.index("TF Serving (docker):")])
    assert report["models"] == ["good", "other"]
    assert report["skipped"] == {".ipynb_checkpoints": "no version folder (TF Serving loads NAME/<number>/)",
                                 "README": "a file, not a model folder",
                                 "empty": "no version folder (TF Serving loads NAME/<number>/)",
                                 "notnum": "no version folder (TF Serving loads NAME/<number>/)"}
    specs = read_models_config(str(out / "models.config"))
    assert [(s.name, s.base_path, s.num_latest) for s in specs] == [("good", mount + "/good", 2),
                                                                   ("other", mount + "/other", 2)]
    assert [s.base_path for s in read_models_config(str(out / "models.local.config"))] == \
        [str(push / "good"), str(push / "other")]
    # The printed docker command mounts the push folder where models.config looks for the models.
    words = shlex.split(printed.split("TF Serving (docker):", 1)[1])
    mounts = [dict(field.split("=", 1) for field in next(csv.reader([words[k + 1]])) if "=" in field)
              for k, word in enumerate(words) if word == "--mount"]
    assert mounts == [{"type": "bind", "source": str(push), "target": mount},
                      {"type": "bind", "source": str(out), "target": "/config"}]
    deployment = next(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["volumeMounts"][0] == {"name": "models", "mountPath": mount, "readOnly": True}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/good", "port": 8501}


def test_serve_refuses_settings_it_would_not_read(tmp_path, capsys):
    models = tmp_path / "m"
    (models / "1").mkdir(parents=True)
    batching_file = tmp_path / "batching.txt"
    batching_file.write_text("max_batch_size { value: 8 }\n")
    cases = [(["--versions", "1"], "versions is read with version_policy 'specific' only"),
             (["--version-policy", "all", "--num-versions", "2"], "num_latest is read with version_policy 'latest'"),
             (["--max-batch-size", "8"], "--max-batch-size is read with --enable-batching only"),
             (["--enable-batching", "--batching-parameters-file", str(batching_file), "--batch-timeout-micros", "5"],
              "--batch-timeout-micros is read with --enable-batching only (hint: put batching settings in"),
             (["--allow-version-labels-for-unavailable-models"], "is read with --model-config-file only")]
    for args, message in cases:   # before, each started a server that ignored the setting
        assert main(["serve", "--model-base-path", str(models), "--port", "0", *args]) == 2, args
        assert message in capsys.readouterr().err, args
    config_file = tmp_path / "models.config"
    config_file.write_text(models_config_text([ModelSpec("m", str(models))]))
    for args, message in ((["--model-name", "other"], "--model-name is read with --model-base-path only"),
                          (["--version-policy", "all", "--versions", "1"],
                           "--version-policy, --versions are read with --model-base-path only (hint: set each")):
        assert main(["serve", "--model-config-file", str(config_file), "--port", "0", *args]) == 2, args
        assert message in capsys.readouterr().err, args


def test_serving_config_refuses_what_tf_serving_could_not_serve(tmp_path, capsys):
    def push_with(name):
        push = tmp_path / f"push{len(os.listdir(tmp_path))}"
        os.makedirs(os.path.join(os.fsencode(push), name, b"1"))
        return str(push)

    cases = [
        ([push_with(b"bad name")], "the model folder 'bad name' cannot be a TF Serving model name"),
        ([push_with(b"caf\xe9")], "the model folder 'caf\\\\xe9' cannot be a TF Serving model name"),
        ([push_with(b"a%2Fb")], "the model folder 'a%2Fb' cannot be a TF Serving model name"),
        ([push_with(b"m"), "--models-mount", "models"], "the models mount must be an absolute path in the container"),
        ([push_with(b"m"), "--output-dir", str(tmp_path / "push0" / "bad name" / "1" / "a_file")], "File exists"),
        ([str(tmp_path / "push0" / "bad name" / "1")], "no model folders under"),
    ]
    (tmp_path / "push0" / "bad name" / "1" / "a_file").write_text("a file where a folder is asked for")
    for args, message in cases:
        argv = ["serving-config", "--push-root", *args[:1], "--output-dir", str(tmp_path / "out"), *args[1:]]
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    for versions in ("0", str(2**31)):
        with pytest.raises(SystemExit):
            main(["serving-config", "--push-root", str(tmp_path), "--output-dir", str(tmp_path / "out"),
                  "--num-versions", versions])
        assert f"--num-versions: {versions} is not in 1 to 2,147,483,647" in capsys.readouterr().err


def _spec(**changes):
    return ModelSpec(**{"name": "m", "base_path": "/models/m", **changes})


# The serving package's Python API takes the numbers of `rw-tf serve` and `rw-tf predict` flags
# without argparse in front. Before, each of these was accepted: a poll of 0 or -1 seconds spun a
# core re-reading the model folder, one of inf killed the poll thread (OverflowError), retries=-1
# made no call at all, a version of -1 waited forever for a folder that cannot exist, a model
# named "a/b" was served where no REST URL could reach it, and floats or bools were taken as ints.
SERVING_API_CASES = [
    (lambda: LocalModelServer([_spec()], port=-1), ValueError, "LocalModelServer.port must be >= 0 and at most 65,535"),
    (lambda: LocalModelServer([_spec()], rest_port=70000), ValueError, "LocalModelServer.rest_port must be >= 0"),
    (lambda: LocalModelServer([_spec()], poll_seconds=0), ValueError, "LocalModelServer.poll_seconds must be > 0"),
    (lambda: LocalModelServer([_spec()], poll_seconds=float("inf")), ValueError, r"at most 86,400 \(seconds"),
    (lambda: LocalModelServer([_spec()], request_timeout=float("nan")), ValueError,
     "LocalModelServer.request_timeout must be > 0"),
    (lambda: LocalModelServer([_spec()], max_workers=2.5), TypeError,
     "LocalModelServer.max_workers must be an integer"),
    (lambda: ServingClient("127.0.0.1:9", retries=-1), ValueError,
     "ServingClient.retries must be >= 0 and at most 100"),
    (lambda: ServingClient("127.0.0.1:9", backoff=float("nan")), ValueError, "ServingClient.backoff must be >= 0"),
    (lambda: ServingClient("127.0.0.1:9", max_message_bytes=2**40), ValueError,
     "ServingClient.max_message_bytes must be > 0 and at most 2,147,483,647"),
    (lambda: ServingClient("127.0.0.1:9", retries=0).predict("m", {"x": [1]}, version=-1), ValueError,
     "ServingClient.version must be >= 0"),
    (lambda: ServingClient("127.0.0.1:9", retries=0).status("m", version=True), TypeError,
     "ServingClient.version must be an integer"),
    (lambda: rest_classify("http://127.0.0.1:9", "m", [{"x": 1}], version=1.5), TypeError,
     "rest_classify.version must be an integer"),
    (lambda: _spec(version_policy="specific", versions=(-1,)), ValueError, r"ModelSpec.versions\[0\] must be >= 0"),
    (lambda: _spec(version_policy="specific", versions=(3, 3)), ValueError, r"ModelSpec.versions repeats \[3\]"),
    (lambda: _spec(num_latest=True), TypeError, "ModelSpec.num_latest must be an integer"),
    # The policy is a oneof in TF Serving: the setting of another policy was ignored.
    (lambda: _spec(versions=(1, 2)), ValueError, "versions is read with version_policy 'specific' only"),
    (lambda: _spec(version_policy="all", num_latest=3), ValueError, "num_latest is read with version_policy 'latest'"),
    (lambda: _spec(name="a/b"), ValueError, "'a/b' cannot be a TF Serving model name"),
    (lambda: _spec(name=""), ValueError, "ModelSpec.name is empty"),
    (lambda: _spec(version_labels={"stable": -1}), ValueError, r"ModelSpec.version_labels\['stable'\] must be >= 0"),
    (lambda: _spec(version_labels={"stable": "2"}), TypeError, r"version_labels\['stable'\] must be an integer"),
    (lambda: _spec(version_labels={"can ary": 2}), ValueError, "'can ary' of model 'm' cannot be a TF Serving version"),
    (lambda: _spec(version_labels=[("a", 1), ("a", 2)]), ValueError, "names a version label more than once"),
    (lambda: _spec(version_labels=5), TypeError, "version_labels must map labels to versions"),
    (lambda: ServingClient("127.0.0.1:9", retries=0).predict("m", {"x": [1]}, version=1, label="stable"),
     ValueError, "a version or a version label, not both"),
    (lambda: BatchingParameters(max_batch_size=2.5), TypeError, "BatchingParameters.max_batch_size must be an integer"),
    (lambda: ServerLimits(max_rank=float("nan")), TypeError, "ServerLimits.max_rank must be an integer"),
    (lambda: ServerLimits(text_inputs="text"), TypeError, "ServerLimits.text_inputs must be a tuple of input names"),
]


@pytest.mark.parametrize("make, error, message", SERVING_API_CASES)
def test_serving_python_api_refuses_numbers_and_names_it_cannot_use(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_serving_python_api_takes_the_zeros_that_mean_something():
    assert LocalModelServer([_spec()], port=0, rest_port=0).port == 0          # any free port
    assert ServingClient("127.0.0.1:9", retries=0, backoff=0).retries == 0
    assert _spec(version_policy="specific", versions=(0, 7)).versions == (0, 7)
    assert _spec(version_labels={"stable": 0, "canary": 7}).version_labels == (("canary", 7), ("stable", 0))
    assert BatchingParameters(batch_timeout_micros=0).batch_timeout_micros == 0


def test_client_retry_waits_double_up_to_a_minute(monkeypatch):
    waits = []
    monkeypatch.setattr(rw_tf_serving.client.time, "sleep", waits.append)
    client = ServingClient("127.0.0.1:9", timeout=2, retries=12, backoff=0.5)   # nothing listens on port 9
    with pytest.raises(grpc.RpcError) as info:
        client.status("m")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # Doubling without a cap would wait 0.5 * 2**11 s (17 minutes) before the last call.
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, 60.0]
