"""Property-based fuzzing of the local server (a real `rw-tf serve` process) over gRPC and REST.

Generated TensorProtos, PredictRequests, ClassificationRequests, serialized tf.Examples and REST
bodies (valid, malformed and hostile: huge declared shapes, negative dimensions, unknown dtypes,
invalid UTF-8, ragged or deeply nested JSON, lying Content-Length headers). Invariants: a client
input never gets INTERNAL/UNKNOWN (gRPC) or a 5xx (REST), every answer comes within a time bound,
the server stays up, and its resident memory grows by less than a bound.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import grpc
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

MODEL = "rw_tf_finetune"
ANSWER_SECONDS = 10.0
MAX_RSS_GROWTH_MB = 300
CASES = int(os.environ.get("RW_TF_FUZZ_CASES", "120"))
COUNTS = {"grpc_predict": 0, "grpc_classify": 0, "grpc_bytes": 0, "rest": 0}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


@pytest.fixture(scope="module")
def live_server(pipeline_run, tmp_path_factory):
    _, summaries = pipeline_run
    base = tmp_path_factory.mktemp("fuzz") / MODEL
    shutil.copytree(summaries["finetune"]["pushed_destination"], base / "1")
    proc = subprocess.Popen([sys.executable, "-m", "rw_tf.cli.main", "serve", "--model-base-path", str(base),
                             "--port", "0", "--rest-api-port", "0", "--enable-batching", "--max-text-bytes", "2000",
                             "--max-texts", "256", "--max-elements", "20000", "--max-request-bytes", "262144"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    line = proc.stdout.readline()
    ports = re.findall(r":(\d+)", line)
    assert len(ports) == 2, line
    channel = grpc.insecure_channel(f"127.0.0.1:{ports[0]}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    good = predict_pb2.PredictRequest()
    good.model_spec.name, good.model_spec.signature_name = MODEL, "classify_text"
    good.inputs["text"].CopyFrom(tf.make_tensor_proto(["The while statement repeats a suite."]))
    for _ in range(3):
        stub.Predict(good, timeout=60)   # warm up before memory is measured
    start_rss = rss_mb(proc.pid)
    yield {"proc": proc, "stub": stub, "channel": channel, "rest_port": int(ports[1]), "good": good}
    alive = proc.poll() is None
    end_rss = rss_mb(proc.pid) if alive else None
    stub.Predict(good, timeout=30)   # still serving after everything
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    channel.close()
    print(f"\nfuzz cases: {COUNTS}; server RSS {start_rss:.0f} MB -> {end_rss:.0f} MB")
    assert alive and end_rss - start_rss < MAX_RSS_GROWTH_MB


dims = st.lists(st.one_of(st.integers(-3, 4), st.integers(2 ** 20, 2 ** 62)), max_size=9)
tensor_protos = st.builds(
    lambda dtype, shape, unknown_rank, strings, floats, ints, content: _tensor(dtype, shape, unknown_rank, strings,
                                                                                floats, ints, content),
    st.one_of(st.sampled_from([types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_INT32,
                               types_pb2.DT_BOOL, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, types_pb2.DT_HALF]),
              st.integers(0, 400)),
    dims, st.booleans(), st.lists(st.binary(max_size=300), max_size=5), st.lists(st.floats(), max_size=4),
    st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=4), st.binary(max_size=64))


def _tensor(dtype, shape, unknown_rank, strings, floats, ints, content):
    proto = tensor_pb2.TensorProto(dtype=dtype)
    if unknown_rank:
        proto.tensor_shape.unknown_rank = True
    else:
        proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]))
    proto.string_val.extend(strings)
    proto.float_val.extend(floats)
    proto.int64_val.extend(ints)
    if content and dtype != types_pb2.DT_STRING:
        proto.tensor_content = content
    return proto


def _check_grpc(stub, method, request):
    started = time.monotonic()
    try:
        method(request, timeout=ANSWER_SECONDS)
    except grpc.RpcError as err:
        assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.details()
        assert err.code() != grpc.StatusCode.DEADLINE_EXCEEDED, "no answer within the time bound"
    assert time.monotonic() - started < ANSWER_SECONDS


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(tensor=tensor_protos, key=st.sampled_from(["text", "examples", "other", ""]),
       signature=st.sampled_from(["classify_text", "serving_default", "classification", "transform_features", "",
                                  "nope"]),
       name=st.sampled_from([MODEL, "nope", ""]), version=st.sampled_from([None, 1, 2, -1]),
       extra=st.booleans(), output_filter=st.lists(st.sampled_from(["probability", "x", ""]), max_size=2))
def test_grpc_predict_fuzz(live_server, tensor, key, signature, name, version, extra, output_filter):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = name, signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[key].CopyFrom(tensor)
    if extra:
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a short valid text"]))
    request.output_filter.extend(output_filter)
    COUNTS["grpc_predict"] += 1
    _check_grpc(live_server["stub"], live_server["stub"].Predict, request)


GRPC_METHODS = [f"/tensorflow.serving.{method}" for method in (
    "PredictionService/Predict", "PredictionService/Classify", "PredictionService/GetModelMetadata",
    "ModelService/GetModelStatus")]


def _valid_request_bytes(method):
    request = predict_pb2.PredictRequest() if method.endswith("Predict") else classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "classify_text"
    if method.endswith("Predict"):
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a short valid text"]))
    return request.SerializeToString()


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(GRPC_METHODS), data=st.data())
def test_grpc_request_bytes_fuzz(live_server, method, data):
    """Bytes that are not the method's message (random, or a valid request with bytes changed,
    e.g. invalid UTF-8 in a string field) are INVALID_ARGUMENT, not gRPC's INTERNAL."""
    valid = _valid_request_bytes(method)
    position = data.draw(st.integers(0, len(valid) - 1))
    changed = st.binary(min_size=1, max_size=4)
    payload = data.draw(st.one_of(st.binary(max_size=300), changed.map(lambda b: valid[:position] + b),
                                  changed.map(lambda b: valid[:position] + b + valid[position:])))
    call = live_server["channel"].unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
    COUNTS["grpc_bytes"] += 1
    _check_grpc(None, call, payload)


features = st.dictionaries(st.sampled_from(["text", "label", "x"]), st.one_of(
    st.lists(st.binary(max_size=200), max_size=3), st.lists(st.integers(-5, 5), max_size=3),
    st.lists(st.floats(allow_nan=True), max_size=3)), max_size=3)


def _example(values):
    example = tf.train.Example()
    for key, value in values.items():
        feature = example.features.feature[key]
        if value and isinstance(value[0], bytes):
            feature.bytes_list.value.extend(value)
        elif value and isinstance(value[0], int):
            feature.int64_list.value.extend(value)
        elif value:
            feature.float_list.value.extend(value)
    return example


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(examples=st.lists(features, max_size=4), context=st.one_of(st.none(), features),
       signature=st.sampled_from(["classification", "classify_text", "serving_default", ""]),
       raw=st.lists(st.binary(max_size=80), max_size=3))
def test_grpc_classify_and_serialized_examples_fuzz(live_server, examples, context, signature, raw):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, signature
    if context is None:
        for values in examples:
            request.input.example_list.examples.add().CopyFrom(_example(values))
    else:
        request.input.example_list_with_context.context.CopyFrom(_example(context))
        for values in examples:
            request.input.example_list_with_context.examples.add().CopyFrom(_example(values))
    COUNTS["grpc_classify"] += 1
    _check_grpc(live_server["stub"], live_server["stub"].Classify, request)
    # Serialized tf.Examples (valid or random bytes) to the example-based Predict signature.
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name, predict.model_spec.signature_name = MODEL, "serving_default"
    serialized = [_example(v).SerializeToString() for v in examples] + raw
    predict.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized or [b""], dtype=tf.string))
    COUNTS["grpc_predict"] += 1
    _check_grpc(live_server["stub"], live_server["stub"].Predict, predict)


# JSON text may escape lone surrogates ("\ud800"), which Python decodes but no UTF-8 encodes.
json_texts = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=30)
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), json_texts,
                                     st.fixed_dictionaries({"b64": st.text(max_size=12)})),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=12)
bodies = st.one_of(
    st.fixed_dictionaries({"instances": json_values}, optional={"signature_name": st.sampled_from(
        ["classify_text", "serving_default", 3, ""])}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"instances": st.lists(st.fixed_dictionaries(
        {"text": json_texts}, optional={"other": st.text(max_size=5)}), min_size=1, max_size=4)}),
    json_values)


def _rest(port, method, path, body: bytes, headers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_SECONDS)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        return response.status, payload
    finally:
        connection.close()


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, raw=st.one_of(st.none(), st.binary(max_size=200), st.just(b"[" * 5000 + b"]" * 5000)),
       length=st.one_of(st.none(), st.just("abc"), st.just("-5"), st.integers(0, 10 ** 12).map(str)),
       method=st.sampled_from(["POST", "GET", "PUT"]),
       path=st.sampled_from([f"/v1/models/{MODEL}:predict", f"/v1/models/{MODEL}/versions/1:predict",
                             f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/metadata", "/v1/models/nope:predict",
                             "/v1/other", f"/v1/models/{MODEL}/versions/99999999999999999999:predict"]))
def test_rest_fuzz(live_server, body, raw, length, method, path):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if length == "exact" or length is None:
        headers["Content-Length"] = str(len(data))
    elif int(length) if length.lstrip("-").isdigit() else False:
        headers["Content-Length"] = length if int(length) <= len(data) else str(len(data))
    else:
        headers["Content-Length"] = length
    COUNTS["rest"] += 1
    started = time.monotonic()
    status, payload = _rest(live_server["rest_port"], method, path, data if method != "GET" else b"", headers)
    assert time.monotonic() - started < ANSWER_SECONDS
    assert status < 500, (status, payload[:300])
    assert "error" in json.loads(payload) if status >= 400 else True


def test_hostile_cases_from_the_report(live_server):
    stub = live_server["stub"]
    huge = predict_pb2.PredictRequest()
    huge.model_spec.name, huge.model_spec.signature_name = MODEL, "classify_text"
    proto = huge.inputs["text"]
    proto.dtype = types_pb2.DT_STRING
    proto.tensor_shape.dim.add(size=300_000)
    proto.string_val.append(b"one value")
    assert huge.ByteSize() < 100
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(huge, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() - started < 1.0
    proto.tensor_shape.dim[0].size = 3
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(huge, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "carries 1" in err.value.details()
    proto.tensor_shape.dim[0].size = -1
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(huge, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "negative" in err.value.details()
    port = live_server["rest_port"]
    path = f"/v1/models/{MODEL}:predict"
    for body, expected in ((b'{"instances": [["a", "b"], ["c"]]}', 400),
                           (b'{"instances": [{"text": "a"}, {"other": "b"}]}', 400),
                           (b"[" * 100000 + b"]" * 100000, 400),
                           (b'{"instances": ["not a serialized tf.Example"]}', 400),
                           (b'{"signature_name": "classify_text", "instances": ["a"]}', 200)):
        status, payload = _rest(port, "POST", path, body, {"Content-Length": str(len(body))})
        assert status == expected, payload[:200]
    # A lone surrogate escaped in JSON decodes to a Python str that no UTF-8 encodes.
    body = b'{"signature_name": "classify_text", "instances": [{"text": "ok \\ud800"}]}'
    status, payload = _rest(port, "POST", path, body, {"Content-Length": str(len(body))})
    assert status == 400 and b"not valid Unicode text" in payload, payload[:200]
    # Invalid UTF-8 in ModelSpec.name (a proto3 string): the bytes do not parse as a PredictRequest.
    predict = live_server["channel"].unary_unary("/tensorflow.serving.PredictionService/Predict",
                                                 request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.RpcError) as err:
        predict(b"\x0a\x04\x0a\x02\xff\xfe", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid tensorflow.serving.PredictRequest" in err.value.details()
    status, payload = _rest(port, "POST", path, b"{}", {"Content-Length": "twelve"})
    assert status == 400 and b"not a number" in payload
    status, payload = _rest(port, "POST", path, b'{"instances": ["x"]}', {"Content-Length": "20"})
    assert status == 400 and b"Could not parse example input" in payload


def test_compressed_requests_and_long_names_cannot_inflate_or_hide_the_status(live_server):
    # gRPC inflates a compressed message whole before it checks --max-request-bytes: 64 MB of zeros
    # gzip to 64 KB. The server accepts no request compression, so it refuses before inflating.
    raw = live_server["channel"].unary_unary("/tensorflow.serving.PredictionService/Predict",
                                             request_serializer=bytes, response_deserializer=bytes)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "\0" * (64 << 20)
    before = rss_mb(live_server["proc"].pid)
    for compression in (grpc.Compression.Gzip, grpc.Compression.Deflate):
        with pytest.raises(grpc.RpcError) as err:
            raw(request.SerializeToString(), timeout=30, compression=compression)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "is disabled" in err.value.details()
    assert rss_mb(live_server["proc"].pid) - before < 32
    # A status message quotes the name it did not find; a client refuses a trailer over 16 KiB, which
    # would have turned NOT_FOUND into RESOURCE_EXHAUSTED ("received metadata size exceeds hard limit").
    for name, signature in (("m" * 100_000, "classify_text"), ("\U0001F600" * 30_000, "classify_text"),
                            ("\u00e9" * 50_000, "classify_text"), (MODEL, "s" * 100_000)):
        request = live_server["good"].__deepcopy__()
        request.model_spec.name, request.model_spec.signature_name = name, signature
        with pytest.raises(grpc.RpcError) as err:
            live_server["stub"].Predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()[:200]
        assert "characters cut" in err.value.details() and len(err.value.details().encode()) < 6000
    body = b'{"signature_name": "classify_text", "instances": ["a"]}'
    status, payload = _rest(live_server["rest_port"], "POST", f"/v1/models/{MODEL}:predict", body,
                            {"Content-Length": str(len(body)), "Content-Encoding": "gzip"})
    assert status == 415 and b"Content-Encoding 'gzip' is not supported" in payload, payload
    live_server["stub"].Predict(live_server["good"], timeout=30)
