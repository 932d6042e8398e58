"""The model list and version labels changed while serving, as TF Serving changes them: a gRPC
HandleReloadConfigRequest, or the config file re-read every --model-config-file-poll-wait-seconds.
Each model version answers its own number, so every check names the version that answered."""
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from rw_tf.cli.main import main
from rw_tf_serving.client import ServingClient, rest_predict
from rw_tf_serving.config import ModelSpec, model_server_config, models_config_text, read_models_config
from rw_tf_serving.server import LocalModelServer


class _Versioned(tf.Module):
    """A model whose answer is its version number, one per text."""

    def __init__(self, version: int) -> None:
        super().__init__()
        self.version = tf.constant(version, tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def answer(self, text):
        return {"version": tf.fill(tf.shape(text), self.version)}


def _save(base, version: int) -> None:
    module = _Versioned(version)
    tf.saved_model.save(module, str(base / str(version)), signatures={"serving_default": module.answer})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model "m" with versions 1, 2 and 3, model "n" with version 7."""
    root = tmp_path_factory.mktemp("reload")
    for version in (1, 2, 3):
        _save(root / "m", version)
    _save(root / "n", 7)
    return root


def _replace(path, text: str) -> None:
    """Writes the whole file at once: a poll never reads half of it, unless a test means it to."""
    part = path.with_suffix(".partial")
    part.write_text(text)
    os.replace(part, path)


def _answer(client: ServingClient, model: str, **which) -> int:
    return client.predict(model, {"text": ["a"]}, **which)["version"][0]


def _code(call, *args, **kwargs) -> "tuple[grpc.StatusCode, str]":
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kwargs)
    return err.value.code(), err.value.details()


def test_reload_adds_removes_and_relabels_models_and_requests_in_flight_never_fail(models):
    m = ModelSpec("m", str(models / "m"), "specific", versions=(1, 2), version_labels=(("stable", 1),))
    # Labels at start point at versions not loaded yet: TF Serving refuses that without its flag.
    with pytest.raises(ValueError, match="version 1 of model m, which is not currently available.*"
                                         "--allow-version-labels-for-unavailable-models"):
        LocalModelServer([m], port=0)
    with LocalModelServer([m], port=0, rest_port=0, poll_seconds=0.2,
                          allow_labels_for_unavailable_models=True) as server:
        client = ServingClient(f"127.0.0.1:{server.grpc_port}", timeout=60)
        rest = f"http://127.0.0.1:{server.rest_port}"
        assert _answer(client, "m", label="stable") == 1 and _answer(client, "m") == 2
        assert rest_predict(rest, "m", inputs={"text": ["a"]}, label="stable")["outputs"] == [1]
        status = json.load(urllib.request.urlopen(f"{rest}/v1/models/m/labels/stable", timeout=10))
        assert [s["version"] for s in status["model_version_status"]] == ["1"]
        assert client.status("m", label="stable")[0]["version"] == 1
        assert client.metadata("m", label="stable")["version"] == 1

        failures, answered, stop = [], [], threading.Event()

        def keep_asking():   # m's latest version and its "stable" one, all through the reloads below
            ask = ServingClient(f"127.0.0.1:{server.grpc_port}", timeout=60)
            while not stop.is_set():
                for which in ({}, {"label": "stable"}):
                    try:
                        answered.append((bool(which), _answer(ask, "m", **which)))
                    except grpc.RpcError as err:
                        failures.append(err.details())
            ask.close()

        asker = threading.Thread(target=keep_asking, daemon=True)
        asker.start()
        try:
            manager = server.core.models["m"]
            # Move "stable" to 2, add "canary" and model n: versions already served stay loaded.
            client.reload_config([ModelSpec("m", str(models / "m"), "specific", versions=(1, 2),
                                            version_labels=(("canary", 2), ("stable", 2))),
                                  ModelSpec("n", str(models / "n"))])
            assert server.core.models["m"] is manager
            assert _answer(client, "m", label="stable") == 2 and _answer(client, "m", label="canary") == 2
            assert _answer(client, "n") == 7

            # A label may not move onto a version that is not served (requests for it would fail while
            # it loads): FAILED_PRECONDITION, and nothing changes.
            code, details = _code(lambda: client.reload_config([
                ModelSpec("m", str(models / "m"), "all", version_labels=(("stable", 3),))]))
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "version 3 of model m" in details, details
            assert _answer(client, "m", label="stable") == 2 and _answer(client, "n") == 7
            # Serve 3 first (n is dropped), then move the label onto it and drop 2 in one reload that
            # also loads n again: "stable" requests never meet 2 unloaded while the label still named it.
            client.reload_config([ModelSpec("m", str(models / "m"), "specific", versions=(2, 3),
                                            version_labels=(("stable", 2),))])
            assert _code(lambda: _answer(client, "n"))[0] == grpc.StatusCode.NOT_FOUND
            # (Three new models load after m: a second during which the label could still name 2.)
            client.reload_config([ModelSpec("m", str(models / "m"), "specific", versions=(3,),
                                            version_labels=(("stable", 3),))]
                                 + [ModelSpec(name, str(models / "n")) for name in ("n", "n2", "n3")])
            assert _answer(client, "m", label="stable") == 3 and _answer(client, "m", version=3) == 3
            assert [_answer(client, name) for name in ("n", "n2", "n3")] == [7, 7, 7]
            for gone in (1, 2):
                assert _code(_answer, client, "m", version=gone)[0] == grpc.StatusCode.NOT_FOUND
            code, details = _code(lambda: _answer(client, "m", label="canary"))   # dropped with its config
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "Unrecognized servable version label: canary" in details
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(urllib.request.Request(f"{rest}/v1/models/m/labels/canary:predict",
                                                              data=b'{"instances": ["a"]}'), timeout=10)
            assert err.value.code == 400
        finally:
            stop.set()
            asker.join(60)
        latest = {version for by_label, version in answered if not by_label}
        stable = {version for by_label, version in answered if by_label}
        assert not failures and latest <= {2, 3} and stable <= {1, 2, 3} and stable, (failures[:3], latest, stable)
        client.close()


def test_reload_refuses_bad_configs_without_changing_what_is_served(models, tmp_path):
    spec = ModelSpec("m", str(models / "m"))
    with LocalModelServer([spec], port=0, poll_seconds=0.2) as server:
        client = ServingClient(f"127.0.0.1:{server.grpc_port}", timeout=60)
        m = model_server_config([spec]).model_config_list.config[0]

        def config_of(*entries) -> model_server_config_pb2.ModelServerConfig:
            config = model_server_config_pb2.ModelServerConfig()
            for entry in entries:
                config.model_config_list.config.add().CopyFrom(entry)
            return config

        relative = model_server_config_pb2.ModelConfig(name="r", base_path="models/r")
        logged = model_server_config_pb2.ModelConfig(name="l", base_path=str(models / "n"))
        logged.logging_config.sampling_config.sampling_rate = 0.5
        labelled = model_server_config_pb2.ModelConfig(name="b", base_path=str(models / "n"))
        labelled.version_labels["a b"] = 7
        custom = model_server_config_pb2.ModelServerConfig()
        custom.custom_model_config.Pack(model_server_config_pb2.ModelConfig())
        refused = {"twice": (config_of(m, m), "a name of its own"),
                   "relative": (config_of(m, relative), "absolute base_path"),
                   "logging": (config_of(m, logged), "logging_config"),
                   "label": (config_of(m, labelled), "'a b' of model 'b' cannot be a TF Serving version label"),
                   "platform": (config_of(model_server_config_pb2.ModelConfig(
                       name="p", base_path=str(models / "n"), model_platform="pytorch")), "model_platform"),
                   "custom": (custom, "Only ModelConfigList"),
                   "too_many": (config_of(*[model_server_config_pb2.ModelConfig(
                       name=f"x{i}", base_path=str(models / "n")) for i in range(1001)]), "at most 1,000")}
        for case, (config, words) in refused.items():
            code, details = _code(client.reload_config, config)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details, (case, details)
            assert sorted(server.core.models) == ["m"] and _answer(client, "m") == 3, case
        # An empty config changes nothing (TF Serving's rule).
        client.reload_config(model_server_config_pb2.ModelServerConfig())
        assert sorted(server.core.models) == ["m"]
        # A new model with nothing to serve yet: UNKNOWN names it; the list is in place, and the
        # version poll loads it once it is pushed.
        later = tmp_path / "later"
        code, details = _code(lambda: client.reload_config([spec, ModelSpec("later", str(later))]))
        assert code == grpc.StatusCode.UNKNOWN and "1 model(s) did not become available: later (no complete" in details
        assert _code(lambda: _answer(client, "later"))[0] == grpc.StatusCode.NOT_FOUND
        _save(later, 5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not server.core.models["later"].versions_available():
            time.sleep(0.2)
        assert _answer(client, "later") == 5 and _answer(client, "m") == 3
        # An empty model list is a list: every model goes.
        empty = model_server_config_pb2.ModelServerConfig()
        empty.model_config_list.SetInParent()
        client.reload_config(empty)
        assert server.core.models == {} and _code(lambda: _answer(client, "m"))[0] == grpc.StatusCode.NOT_FOUND
        client.close()


def test_the_config_file_is_reread_and_a_broken_one_changes_nothing(models, tmp_path, caplog):
    config_file = tmp_path / "models.config"
    _replace(config_file, models_config_text([ModelSpec("m", str(models / "m"), "specific", versions=(1,))]))
    specs = read_models_config(str(config_file))
    with caplog.at_level(logging.INFO, logger="rw_tf.serving"), \
            LocalModelServer(specs, port=0, poll_seconds=0.2, config_file=str(config_file),
                             config_poll_seconds=0.2) as server:
        client = ServingClient(f"127.0.0.1:{server.grpc_port}", timeout=60)

        def wait_for(condition) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not condition():
                time.sleep(0.1)
            assert condition()

        assert _answer(client, "m") == 1
        _replace(config_file, models_config_text([
            ModelSpec("m", str(models / "m"), "specific", versions=(1, 2), version_labels=(("stable", 1),)),
            ModelSpec("n", str(models / "n"))]))
        wait_for(lambda: "n" in server.core.models)
        assert _answer(client, "n") == 7 and _answer(client, "m", label="stable") == 1
        # Half-written, then empty: the last config stays, and the error is logged once.
        _replace(config_file, 'model_config_list { config { name: "m" base_path: ')
        wait_for(lambda: any("not applied" in r.getMessage() for r in caplog.records))
        time.sleep(0.6)   # more polls of the same file: no second error line
        _replace(config_file, "")
        time.sleep(0.6)
        assert sorted(server.core.models) == ["m", "n"] and _answer(client, "m", label="stable") == 1
        errors = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
        assert len(errors) == 1 and "not a valid ModelServerConfig text proto" in errors[0], errors
        _replace(config_file, models_config_text([ModelSpec("n", str(models / "n"))]))
        wait_for(lambda: "m" not in server.core.models)
        assert _answer(client, "n") == 7
        client.close()


def test_serve_and_predict_commands_take_labels_and_the_config_poll(models, tmp_path, capsys):
    config_file = tmp_path / "models.config"
    _replace(config_file, models_config_text([
        ModelSpec("m", str(models / "m"), "all", version_labels=(("canary", 3), ("stable", 2)))]))
    serve = [sys.executable, "-m", "rw_tf.cli.main", "serve", "--port", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # In processes of their own: a server that wrongly starts is stopped by the timeout.
    for flags, words in ((["--model-config-file", str(config_file)], "--allow-version-labels-for-unavailable-models"),
                         (["--model-base-path", str(models / "m"), "--model-config-file-poll-wait-seconds", "5"],
                          "polls the --model-config-file")):
        refused = subprocess.run(serve + flags, capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr[-2000:]
    server = subprocess.Popen(serve + ["--model-config-file", str(config_file),
                                       "--allow-version-labels-for-unavailable-models",
                                       "--model-config-file-poll-wait-seconds", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        port = server.stdout.readline().split("127.0.0.1:")[1].strip()
        predict = ["predict", "--server", f"127.0.0.1:{port}", "--model", "m", "--signature", "serving_default", "a"]
        for label, version in (("stable", 2), ("canary", 3)):
            assert main(predict + ["--version-label", label]) == 0
            assert json.loads(capsys.readouterr().out)["version"] == [version]
        assert main(predict + ["--version-label", "beta"]) == 2
        assert "Unrecognized servable version label: beta" in capsys.readouterr().err
        # The file moves "stable" (3 is served): the next poll applies it.
        _replace(config_file, models_config_text([
            ModelSpec("m", str(models / "m"), "all", version_labels=(("canary", 3), ("stable", 3)))]))
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer != [3]:
            assert main(predict + ["--version-label", "stable"]) == 0
            answer = json.loads(capsys.readouterr().out)["version"]
            time.sleep(0.2)
        assert answer == [3]
    finally:
        server.terminate()
        server.wait(60)


def test_one_reload_at_a_time_and_requests_go_on_while_it_loads(models, monkeypatch):
    """A second reload while one loads is UNAVAILABLE at once (it used to be able to hold every
    request worker, each waiting for the one before); requests are answered meanwhile."""
    from rw_tf_serving.core import ServingCore
    from rw_tf_serving.errors import ServingError
    from rw_tf_serving.servables import ModelManager

    core = ServingCore([ModelSpec("m", str(models / "m"))])
    core.refresh()
    loading, release = threading.Event(), threading.Event()
    refresh = ModelManager.refresh

    def slow_refresh(manager):
        if manager.spec.name == "n":
            loading.set()
            release.wait(60)
        refresh(manager)

    monkeypatch.setattr(ModelManager, "refresh", slow_refresh)
    first = threading.Thread(target=core.reload, args=([ModelSpec("m", str(models / "m")),
                                                        ModelSpec("n", str(models / "n"))],))
    first.start()
    try:
        assert loading.wait(60)
        with pytest.raises(ServingError) as err:
            core.reload([ModelSpec("m", str(models / "m"))])
        assert err.value.code == grpc.StatusCode.UNAVAILABLE and "another config reload" in err.value.message
        _, _, outputs = core.predict("m", None, "", {"text": np.array([b"a"], dtype=object)})
        assert outputs["version"].tolist() == [3] and sorted(core.models) == ["m"]
    finally:
        release.set()
        first.join(60)
    assert sorted(core.models) == ["m", "n"] and core.servable("n", None).version == 7
    core.close()
