"""The shared runner's parts: optimizer schedule and exclusions, backup consistency, strategy errors,
and the export base (signatures, method names, assets, reloading an rw-tf export as a start point)."""
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.checkpoints import pretrained_encoder, pretrained_tokenizer
from rw_tf.errors import UserError
from rw_tf.export import ClassifierExport, save_export
from rw_tf.models import TextClassifier
from rw_tf.networks import TransformerEncoder
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.training import TrainerConfig, TrainingBackup, build_optimizer, create_strategy, run_task
from rw_tf.training.optimizer import learning_rate_schedule


def test_schedule_warms_up_then_decays():
    schedule = learning_rate_schedule(1e-3, total_steps=100, warmup_steps=10, decay="linear")
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-9)
    cosine = learning_rate_schedule(1e-3, total_steps=100, warmup_steps=10, decay="cosine")
    assert float(cosine(10)) == pytest.approx(1e-3) and float(cosine(100)) == pytest.approx(1e-4, rel=1e-3)
    assert learning_rate_schedule(2e-5, 100, 0, "constant") == 2e-5


def test_weight_decay_skips_layer_norms_and_biases():
    encoder = TransformerEncoder.from_preset("tiny", vocab_size=50)
    encoder.build({k: (None, 8) for k in ("token_ids", "segment_ids", "padding_mask")})
    optimizer = build_optimizer(1e-3, 10, weight_decay=0.1)
    decayed = {v.path for v in encoder.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed and not any(v.endswith(("gamma", "beta", "bias")) for v in decayed)
    assert any(v.endswith("kernel") for v in decayed) and any(v.endswith("embeddings") for v in decayed)
    # BERT decays every kernel and embedding and nothing else.
    expected = {v.path for v in encoder.trainable_variables if v.path.endswith(("kernel", "embeddings"))}
    assert decayed == expected


def _tiny_model():
    model = keras.Sequential([keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.1), "mse")
    model.build((None, 2))
    return model


def test_backup_restores_the_last_consistent_state(tmp_path):
    model = _tiny_model()
    backup = TrainingBackup(str(tmp_path), every_steps=2)
    model.fit(np.ones((8, 2)), np.zeros((8, 3)), batch_size=2, epochs=1, callbacks=[backup], verbose=0)
    state = json.load(open(tmp_path / "state.json"))
    assert state["global_step"] == 4
    assert sorted(os.listdir(tmp_path)) == sorted(["state.json", state["weights"], state["rng_states"]])
    # A kill while the next backup was being written leaves a partial file that restore ignores.
    (tmp_path / ".partial-step-0000000006.weights.h5").write_bytes(b"truncated")
    restored = _tiny_model()
    assert TrainingBackup(str(tmp_path)).restore(restored) == 4
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(restored.optimizer.iterations) == 4    # optimizer state is part of the backup


def test_strategy_errors_are_user_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown strategy"):
        create_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG"):
        create_strategy("multi_worker_mirrored")
    # TensorFlow took each of these (a float index as its integer part, "ps" and a missing type as a
    # worker) and then failed deep in start-up or waited for a worker that could not come.
    two = {"worker": ["a:1", "b:2"]}
    for cluster, task, message in [
            (two, {"type": "worker", "index": 1.7}, "task.index is 1.7: it must be an integer from 0 to 1"),
            (two, {"type": "worker", "index": True}, "task.index is True"),
            (two, {"type": "worker", "index": "1"}, "task.index is '1'"),
            ({"worker": ["a:1"]}, {"type": "worker", "index": 3}, r"task.index is 3: .* \(cluster.worker has 1\)"),
            (two, {"type": "ps", "index": 0}, r"task.type is 'ps', not one of the cluster's jobs \['worker'\]"),
            (two, {"index": 0}, "task.type is None"),
            ({"worker": ["a:1"], "ps": ["p:1"]}, {"type": "worker", "index": 0},
             r"cluster has the jobs \[.ps., .worker.\]: multi_worker_mirrored runs chief and worker"),
            ({"worker": ["a:1", "a:1"]}, {"type": "worker", "index": 0}, r"lists \['a:1'\] more than once"),
            ({"worker": ["a", "b:2"]}, {"type": "worker", "index": 0}, "has 'a', not a host:port address"),
            ({"worker": [1]}, {"type": "worker", "index": 0}, "has 1, not a host:port"),
            ({"worker": "a:1"}, {"type": "worker", "index": 0}, "cluster.worker must be a list"),
            ({"chief": ["c:1", "d:2"]}, {"type": "chief", "index": 0}, r"cluster.chief must be a list .* \(one\)"),
            ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 1}, r"\(cluster.chief has 1\)")]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        with pytest.raises(UserError, match="^TF_CONFIG .*" + message):
            create_strategy("multi_worker_mirrored", worker_timeout_seconds=1)
    for raw, message in [("[" * 100_000 + "]" * 100_000, r"is not JSON \(RecursionError"), ("[1]", "needs a"),
                         ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1e400}}',
                          "task.index is inf")]:
        monkeypatch.setenv("TF_CONFIG", raw)
        with pytest.raises(UserError, match="^TF_CONFIG .*" + message):
            create_strategy("multi_worker_mirrored", worker_timeout_seconds=1)
    with pytest.raises(UserError, match="no TPU reachable"):
        create_strategy("tpu", tpu_address="grpc://127.0.0.1:9")


def test_export_base_writes_signatures_methods_assets_and_reloads(tmp_path, tokenizer):
    encoder = TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size)
    model = TextClassifier(encoder, num_classes=3)
    model.build({k: (None, 16) for k in ("token_ids", "segment_ids", "padding_mask")})
    export_dir = save_export(ClassifierExport(model, tokenizer, 16, temperature=2.0), str(tmp_path / "1"))
    loaded = tf.saved_model.load(export_dir)
    assert sorted(loaded.signatures) == ["classify_text", "serving_default"]
    texts = tf.constant(["Lists are mutable.", "A tuple is immutable."])
    out = loaded.signatures["classify_text"](text=texts)
    from rw_tf.data.text_inputs import single_segment_inputs
    expected = tf.nn.softmax(model(single_segment_inputs(tokenizer, texts, 16)) / 2.0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected.numpy(), atol=1e-6)
    # An rw-tf export is a start point: encoder and tokenizer come back identical.
    again, tok = pretrained_encoder(export_dir), pretrained_tokenizer(export_dir)
    assert tok.vocabulary == tokenizer.vocabulary and tok.lower_case == tokenizer.lower_case
    for a, b in zip(again.get_weights(), encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="neither"):
        pretrained_encoder(str(tmp_path))


def test_classification_signature_has_the_classify_method(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    from rw_tf.export import set_signature_method

    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path), signatures={"classification": module.f})
    set_signature_method(str(tmp_path), "classification", tf.saved_model.CLASSIFY_METHOD_NAME)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(open(tmp_path / "saved_model.pb", "rb").read())
    assert saved.meta_graphs[0].signature_def["classification"].method_name == "tensorflow/serving/classify"


def test_export_keeps_weights_but_not_optimizer_slots(tmp_path, tokenizer):
    """Adam's two moments per weight tripled every export's model.keras."""
    encoder = TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size)
    model = TextClassifier(encoder, num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    inputs = {k: np.ones((4, 16), np.int32) for k in ("token_ids", "padding_mask")}
    inputs["segment_ids"] = np.zeros((4, 16), np.int32)
    model.fit(inputs, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert len(model.optimizer.variables) > 2 * len(model.trainable_variables)
    export_dir = save_export(ClassifierExport(model, tokenizer, 16), str(tmp_path / "1"))
    with open(os.path.join(export_dir, "assets.extra", "model.keras"), "rb") as f:
        keras_bytes = len(f.read())
    weight_bytes = 4 * sum(int(np.prod(v.shape)) for v in model.variables)
    assert keras_bytes < 1.3 * weight_bytes, (keras_bytes, weight_bytes)
    # The trained model keeps its optimizer (training can go on), and the export reloads.
    assert model.optimizer is not None and model.optimizer.iterations.numpy() == 1
    reloaded = keras.saving.load_model(os.path.join(export_dir, "assets.extra", "model.keras"))
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            raise KeyboardInterrupt   # the process stopped here, its backup left behind


def test_a_stopped_run_continues_only_with_the_settings_it_started_with(tmp_path):
    """A backup was restored whatever the command now said: a stopped run re-run with another
    learning rate, batch size or corpus went on from its step with a schedule and data it had not
    started with, and reported one run."""
    task = lambda **c: PretrainingTask(PretrainingTaskConfig(**{  # noqa: E731
        "preset": "tiny", "max_documents": 30, "vocab_size": 1500, "max_sequence_length": 64, "target_words": 12,
        "eval_batches": 1, **c}))
    trainer = lambda **t: task().trainer_config(**{"epochs": 1, "steps_per_epoch": 6,  # noqa: E731
                                                   "batch_size": 8, "backup_every_steps": 1, **t})
    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        run_task(task(), trainer(), out, callbacks=[_StopAfter(3)], verbose=0)
    state = json.load(open(os.path.join(out, "backup", "state.json")))
    assert state["global_step"] == 3 and state["settings"]["trainer"]["learning_rate"] == 1e-3
    with pytest.raises(UserError, match=re.escape("holds an unfinished run with other settings: "
                                                  "trainer.batch_size 8 (now 4), trainer.learning_rate 0.001 "
                                                  "(now 0.0005)")):
        run_task(task(), trainer(learning_rate=5e-4, batch_size=4), out, verbose=0)
    with pytest.raises(UserError, match=re.escape("task_config.max_documents 30 (now 31)")):
        run_task(task(max_documents=31), trainer(), out, verbose=0)
    # What may change between attempts (backup interval, XLA, evaluation length) continues it.
    result = run_task(task(), trainer(backup_every_steps=2, validation_steps=1), out, verbose=0)
    assert result["resumed_from_step"] == 3 and not os.path.exists(os.path.join(out, "backup", "state.json"))
    # ... and ends where an uninterrupted run ends (the same batches, optimizer state and schedule).
    uninterrupted = run_task(task(), trainer(), str(tmp_path / "uninterrupted"), verbose=0)
    resumed = keras.saving.load_model(result["model_path"]).get_weights()
    reference = keras.saving.load_model(uninterrupted["model_path"]).get_weights()
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(resumed, reference)) < 1e-5


def test_epoch_checkpoints_keep_only_the_newest_and_batches_are_bounded(tmp_path):
    """Keras's ModelCheckpoint kept every epoch's weights: `--epochs 1000 --steps-per-epoch 1` filled
    the disk (66 GB in 8 minutes for MiniLM). And tf.data aborted the process (std::bad_alloc, exit
    134) on --batch-size 10**12 instead of raising."""
    with pytest.raises(ValueError, match="batch_size must be at most 1,048,576, got 1,000,000,000,000"):
        TrainerConfig(batch_size=10**12)
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=30, vocab_size=1500,
                                                 max_sequence_length=64, target_words=12, eval_batches=1))
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "epoch-001.weights.h5").write_bytes(b"an earlier attempt's file")
    (out / "checkpoints" / "notes.txt").write_text("not a checkpoint: kept")
    result = run_task(task, task.trainer_config(epochs=4, steps_per_epoch=1, batch_size=8, max_epoch_checkpoints=2),
                      str(out), verbose=0)
    assert sorted(os.listdir(out / "checkpoints")) == ["epoch-003.weights.h5", "epoch-004.weights.h5", "notes.txt"]
    model = keras.saving.load_model(result["model_path"])
    final = [w.copy() for w in model.get_weights()]
    model.load_weights(str(out / "checkpoints" / "epoch-003.weights.h5"))
    assert any(not np.array_equal(a, b) for a, b in zip(final, model.get_weights()))
    model.load_weights(str(out / "checkpoints" / "epoch-004.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(final, model.get_weights()))


def test_a_loss_that_becomes_nan_ends_the_run_before_it_is_backed_up_or_exported(tmp_path):
    """A learning rate of 1e308 trained on, then exported and calibrated the NaN weights (exit 0)."""
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=30, vocab_size=1500,
                                                 max_sequence_length=64, target_words=12, eval_batches=1))
    out = tmp_path / "run"
    trainer = task.trainer_config(epochs=1, steps_per_epoch=6, batch_size=8, backup_every_steps=1,
                                  learning_rate=1e30, clipnorm=0.0, warmup_steps=0)
    with pytest.raises(UserError, match=r"the training loss became (nan|inf) at step (\d)") as failed:
        run_task(task, trainer, str(out), verbose=0)
    step = int(re.search(r"at step (\d)", str(failed.value)).group(1))
    assert not (out / "export").exists() and not (out / "metrics.json").exists()
    state = json.load(open(out / "backup" / "state.json"))
    assert state["global_step"] == step - 1        # the newest backup is the last finite step
    model = task.build_model()
    model.load_weights(str(out / "backup" / state["weights"]))
    assert all(np.isfinite(w).all() for w in model.get_weights())
