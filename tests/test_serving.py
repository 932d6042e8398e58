"""The local server through TF Serving's official generated stubs, plus client, REST, configs, CLI."""
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from rw_tf_serving.batching import Batcher
from rw_tf_serving.client import RestError, ServingClient, rest_classify, rest_predict
from rw_tf_serving.config import BatchingParameters, ModelSpec, read_models_config
from rw_tf_serving.core import ServerLimits
from rw_tf_serving.server import LocalModelServer

MODEL = "rw_tf_finetune"
TEXTS = ["The while statement is used for repeated execution as long as an expression is true.",
         "Return a new sorted list from the items in iterable."]


@pytest.fixture(scope="module")
def base_path(pipeline_run, tmp_path_factory):
    """A private copy of the pushed fine-tuned model (version 1) that tests can add versions to."""
    _, summaries = pipeline_run
    base = tmp_path_factory.mktemp("models") / MODEL
    shutil.copytree(summaries["finetune"]["pushed_destination"], base / "1")
    return base


@pytest.fixture(scope="module")
def server(base_path):
    srv = LocalModelServer([ModelSpec(MODEL, str(base_path))], port=0, rest_port=0, poll_seconds=0.5,
                           limits=ServerLimits(max_text_bytes=2000, max_request_bytes=256 * 1024)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def predict_request(texts, signature="classify_text", name=MODEL, key="text", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    strings = texts and isinstance(texts[0], (str, bytes))
    request.inputs[key].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string if strings else None))
    return request


def test_metadata_lists_signatures(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = stub.GetModelMetadata(request, timeout=10)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sigs)
    assert {"serving_default", "classify_text", "classification", "transform_features"} <= set(sigs.signature_def)
    assert sigs.signature_def["classification"].method_name == "tensorflow/serving/classify"
    assert response.model_spec.version.value == 1


def test_raw_text_predict_matches_direct_savedmodel_call(stub, base_path):
    response = stub.Predict(predict_request(TEXTS), timeout=10)
    served = tf.make_ndarray(response.outputs["probabilities"])
    direct = tf.saved_model.load(str(base_path / "1")).signatures["classify_text"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served, direct["probabilities"].numpy(), rtol=1e-6, atol=1e-7)
    assert response.model_spec.signature_name == "classify_text"


def test_classify_on_serialized_examples(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classification"
    for text in TEXTS:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())
    response = stub.Classify(request, timeout=10)
    text_probs = tf.make_ndarray(stub.Predict(predict_request(TEXTS), timeout=10).outputs["probabilities"])
    assert len(response.result.classifications) == 2
    for row, result in enumerate(response.result.classifications):
        assert [c.label for c in result.classes] == ["0", "1"]
        np.testing.assert_allclose([c.score for c in result.classes], text_probs[row], atol=1e-5)


def test_model_status(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    channel.close()


@pytest.mark.parametrize("make_request, code", [
    (lambda: predict_request(TEXTS, name="nope"), grpc.StatusCode.NOT_FOUND),
    (lambda: predict_request(TEXTS, version=99), grpc.StatusCode.NOT_FOUND),
    (lambda: predict_request(TEXTS, signature="nope"), grpc.StatusCode.NOT_FOUND),
    (lambda: predict_request([1, 2]), grpc.StatusCode.INVALID_ARGUMENT),                 # wrong dtype
    (lambda: predict_request(TEXTS, key="txt"), grpc.StatusCode.INVALID_ARGUMENT),       # missing input
    (lambda: predict_request([]), grpc.StatusCode.INVALID_ARGUMENT),                     # empty batch
    (lambda: predict_request(["word " * 1000]), grpc.StatusCode.INVALID_ARGUMENT),       # text over limit
    (lambda: predict_request([b"bad \xff\xfe utf8"]), grpc.StatusCode.INVALID_ARGUMENT), # invalid UTF-8
    (lambda: predict_request(["x" * 1000] * 400), grpc.StatusCode.RESOURCE_EXHAUSTED),  # request too big
])
def test_bad_requests_get_status_codes_and_server_keeps_serving(stub, make_request, code):
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(make_request(), timeout=10)
    assert err.value.code() == code, err.value.details()
    assert stub.Predict(predict_request(TEXTS[:1]), timeout=10).outputs["probability"].float_val


def test_classify_errors(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classification"
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(request, timeout=10)                      # no examples
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request.model_spec.signature_name = "classify_text"         # a Predict signature
    request.input.example_list.examples.add()
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "method_name" in err.value.details()
    # The text features of examples are held to --max-text-bytes and UTF-8, as Predict's text inputs.
    request.model_spec.signature_name = "classification"
    for text, message in ((b"word " * 1000, "example 1 feature 'text'[0] is 5000 bytes; the limit is 2000"),
                          (b"bad \xff utf8", "example 1 feature 'text'[0] is not valid UTF-8 (invalid start byte")):
        del request.input.example_list.examples[:]
        for value in (b"fine", text):
            request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(value)
        with pytest.raises(grpc.RpcError) as err:
            stub.Classify(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()


def test_rest_classify_equals_grpc_classify_and_refuses_bad_examples(server, stub):
    base = f"http://127.0.0.1:{server.rest_port}"
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "classification"
    for text in TEXTS:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())
    expected = [[[c.label, c.score] for c in result.classes]
                for result in stub.Classify(request, timeout=10).result.classifications]
    result = rest_classify(base, MODEL, [{"text": t} for t in TEXTS])
    assert [[label for label, _ in row] for row in result] == [["0", "1"], ["0", "1"]]
    np.testing.assert_allclose([[s for _, s in row] for row in result], [[s for _, s in row] for row in expected],
                               atol=1e-6)
    # The context gives every example its feature; an example's own value replaces it.
    with_context = rest_classify(base, MODEL, [{}, {"text": TEXTS[0]}], context={"text": TEXTS[1]})
    np.testing.assert_allclose([[s for _, s in row] for row in with_context],
                               [[s for _, s in row] for row in expected[::-1]], atol=1e-6)
    bad = [({"examples": []}, 400, "non-empty list"), ({"examples": [1]}, 400, "not an object of features"),
           ({"examples": [{"text": [1, "a"]}]}, 400, "mixed value types"),
           ({"examples": [{"n": 2 ** 70}]}, 400, "outside int64"),
           ({"examples": [{"text": {"b64": "!!"}}]}, 400, "not valid base64"),
           ({"examples": [{"text": "a"}], "context": [1]}, 400, "'context' must be an object"),
           ({"signature_name": "classify_text", "examples": [{"text": "a"}]}, 400, "method_name"),
           ({"examples": [{"text": "a"}] * 5000}, 429, "at most")]
    for body, status, words in bad:
        with pytest.raises(RestError) as err:
            rest_classify(base, MODEL, body["examples"], context=body.get("context"),
                          signature=body.get("signature_name", "classification"))
        assert err.value.status == status and words in err.value.detail, (body, err.value.detail)
    for method, path, status, words in (("GET", ":classify", 405, "use POST"), ("POST", ":regress", 501, "regression"),
                                        ("GET", "/labels/stable", 400, "Unrecognized servable version label: stable")):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v1/models/{MODEL}{path}", method=method,
                                                          data=b"{}" if method == "POST" else None), timeout=10)
        assert err.value.code == status and words in err.value.read().decode(), path


def test_client_and_rest_agree(server):
    client = ServingClient(f"127.0.0.1:{server.grpc_port}")
    grpc_result = client.predict(MODEL, {"text": TEXTS}, signature="classify_text")
    rest = rest_predict(f"http://127.0.0.1:{server.rest_port}", MODEL, inputs={"text": TEXTS},
                        signature="classify_text")
    np.testing.assert_allclose(rest["outputs"]["probabilities"], grpc_result["probabilities"], atol=1e-6)
    rows = rest_predict(f"http://127.0.0.1:{server.rest_port}", MODEL, instances=TEXTS, signature="classify_text")
    assert len(rows["predictions"]) == 2 and "probability" in rows["predictions"][0]
    assert client.metadata(MODEL)["signatures"]["classify_text"]["inputs"] == {"text": "string"}
    assert client.status(MODEL)[0]["state"] == "AVAILABLE"
    assert client.classify(MODEL, [{"text": TEXTS[0]}])[0][1][0] == "1"
    with pytest.raises(RuntimeError, match="HTTP 404"):
        rest_predict(f"http://127.0.0.1:{server.rest_port}", "nope", instances=TEXTS)
    client.close()


def test_client_retries_unavailable_then_fails():
    client = ServingClient("127.0.0.1:1", timeout=1, retries=2, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        client.status(MODEL)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() - start < 10


def test_new_version_is_picked_up_without_failed_requests(server, stub, base_path):
    errors, versions = [], []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                versions.append(stub.Predict(predict_request(TEXTS[:1]), timeout=10).model_spec.version.value)
            except grpc.RpcError as err:  # pragma: no cover - this is what the test guards against
                errors.append(err)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    staging = base_path / ".staging-2"
    shutil.copytree(base_path / "1", staging)
    os.rename(staging, base_path / "2")      # appears atomically, like a Pusher's final copy
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not versions or versions[-1] != 2):
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert versions[0] == 1 and versions[-1] == 2
    assert list(server.core.models[MODEL].versions()) == [2]   # latest policy unloaded version 1


def test_batching_combines_concurrent_requests(base_path):
    batching = BatchingParameters(max_batch_size=16, batch_timeout_micros=50_000, num_batch_threads=1)
    with LocalModelServer([ModelSpec(MODEL, str(base_path), "all")], port=0, batching=batching) as srv:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        stub_ = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        results = [None] * 8

        def call(i):
            results[i] = tf.make_ndarray(stub_.Predict(predict_request([TEXTS[i % 2]], version=1), timeout=20)
                                         .outputs["probabilities"])
        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = srv.core.models[MODEL].get(1).batch_stats()["classify_text"]
        assert stats["rows"] == 8 and stats["batches"] < 8
        for i in range(8):
            np.testing.assert_allclose(results[i], results[i % 2], atol=1e-5)
        assert sorted(srv.core.models[MODEL].versions()) == [1, 2]     # "all" policy
        channel.close()


def test_batcher_splits_results_and_runs_directly_when_closed():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}
    batcher = Batcher(run, max_batch_size=8, batch_timeout_micros=100_000)
    futures = [batcher.submit({"x": np.array([i, i])}) for i in range(3)]
    assert [f.result(5)["y"].tolist() for f in futures] == [[0, 0], [2, 2], [4, 4]]
    assert calls == [6]
    batcher.close()
    assert batcher.submit({"x": np.array([5])}).result(5)["y"].tolist() == [10]


def test_batcher_fails_only_the_bad_request_of_a_merged_batch():
    def run(inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2}
    batcher = Batcher(run, max_batch_size=8, batch_timeout_micros=100_000)
    futures = [batcher.submit({"x": np.array([v])}) for v in (1, -1, 3)]
    assert futures[0].result(5)["y"].tolist() == [2] and futures[2].result(5)["y"].tolist() == [6]
    with pytest.raises(ValueError, match="negative"):
        futures[1].result(5)
    batcher.close()


def test_serving_configs_and_cli(pipeline_run, tmp_path, capsys):
    from rw_tf.cli.main import main as cli_main

    config, _ = pipeline_run
    push_root = os.path.join(config.root, "serving")
    assert cli_main(["serving-config", "--push-root", push_root, "--output-dir", str(tmp_path)]) == 0
    assert "docker run" in capsys.readouterr().out
    specs = read_models_config(str(tmp_path / "models.config"))
    assert [s.name for s in specs] == ["rw_tf_finetune", "rw_tf_pretrain"]
    assert specs[0].base_path == "/models/rw_tf_finetune" and specs[0].version_policy == "latest"
    assert BatchingParameters.from_text((tmp_path / "batching_parameters.txt").read_text()) == BatchingParameters()
    assert "prometheus_config" in (tmp_path / "monitoring.config").read_text()
    assert "kind: Deployment" in (tmp_path / "kubernetes.yaml").read_text()
    local = read_models_config(str(tmp_path / "models.local.config"))
    with LocalModelServer(local, port=0) as srv:
        assert cli_main(["predict", "--server", f"127.0.0.1:{srv.grpc_port}", "--model", "rw_tf_pretrain",
                         "--signature", "encode_text", "Lists are mutable."]) == 0
        assert len(json.loads(capsys.readouterr().out)["mean_embedding"][0]) == 64
        assert cli_main(["predict", "--server", f"127.0.0.1:{srv.grpc_port}", "--model", "nope", "x"]) == 2
        assert "NOT_FOUND" in capsys.readouterr().err
