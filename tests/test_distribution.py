"""Distributed training computes what one device computes: MirroredStrategy over two logical CPUs
and two MultiWorkerMirroredStrategy workers on loopback reach the weights of a single-process run
over the same global batches (losses averaged over the global batch, clipping after the sum)."""
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.knowledge.training import TransEConfig, train_transe
from rw_tf.losses import BinaryLogitLoss, MaskedLMLoss
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder
from rw_tf.training import build_optimizer, create_strategy


def _train(strategy, initial, make_dataset, steps):
    with strategy.scope():
        model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=initial["vocab"]))
        # A small clip norm: clipping is active at every step. Adam's first steps move each weight by
        # about lr * sign(g), so a last-bit difference of a near-zero gradient would show as a full
        # step; a large epsilon makes the update proportional to the gradient and the comparison exact.
        model.compile(optimizer=build_optimizer(0.5, steps, warmup_steps=0, decay="constant", clipnorm=0.05,
                                                epsilon=1.0))
        model.build(initial["shapes"])
        model.build_for_training(next(iter(make_dataset())))   # as the runner does
    assert model.fully_built()
    model.set_weights(initial["weights"])
    history = model.fit(make_dataset(), steps_per_epoch=steps, epochs=1, verbose=0)
    return model.get_weights(), history.history


def test_mirrored_two_replicas_equal_one_device(tokenizer, pydoc_documents, logical_cpus):
    pairs = segment_pair_candidates(pydoc_documents[:40], target_words=12)
    # A new dataset per run: a seeded shuffle restarts its order only in a new dataset object.
    make_dataset = lambda: pretraining_dataset(pairs, tokenizer, PretrainingDataConfig(32, 6), batch_size=8)
    dataset = make_dataset()
    reference = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    x_spec = dataset.element_spec[0]
    shapes = {k: tuple(v.shape) for k, v in x_spec.items()}
    reference.build(shapes)
    initial = {"vocab": tokenizer.vocab_size, "shapes": shapes, "weights": reference.get_weights()}
    one, history_one = _train(create_strategy("default"), initial, make_dataset, steps=5)
    two, history_two = _train(create_strategy("mirrored", devices=logical_cpus), initial, make_dataset, steps=5)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(one, initial["weights"]))
    differ = max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
    print(f"largest weight change {moved:.3g}, largest difference one device vs two replicas {differ:.3g}")
    assert moved > 1e-3 and differ < 1e-5
    np.testing.assert_allclose(history_one["mlm_loss"], history_two["mlm_loss"], rtol=1e-5)


def test_global_mean_loss_is_the_mean_over_the_whole_batch(logical_cpus):
    strategy = create_strategy("mirrored", devices=logical_cpus)
    # Replica 0 holds 3 weighted positions, replica 1 holds 1: Keras' mean of replica means is not the mean.
    logits = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    ids = np.array([[1, 2, 3, 0], [4, 0, 0, 0]])
    weights = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], "float32")
    per_position = keras.losses.sparse_categorical_crossentropy(ids, logits, from_logits=True).numpy()
    expected = float((per_position * weights).sum() / weights.sum())
    data = tf.data.Dataset.from_tensor_slices((ids, logits, weights)).batch(2)

    @tf.function  # as in Keras' train step
    def step(batch):
        return strategy.run(lambda *parts: MaskedLMLoss()(*parts), args=batch)

    shares = strategy.experimental_local_results(step(next(iter(strategy.experimental_distribute_dataset(data)))))
    assert len(shares) == 2
    assert sum(float(s) for s in shares) == pytest.approx(expected, rel=1e-6)
    assert float(MaskedLMLoss()(ids, logits, weights)) == pytest.approx(expected, rel=1e-6)
    assert float(BinaryLogitLoss()(np.ones((2, 1)), np.zeros((2, 1)))) == pytest.approx(np.log(2), rel=1e-6)


WORKER = """
import json, sys, numpy as np, keras
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.training import run_task

class Weights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(sys.argv[2], *self.model.get_weights())

task = PretrainingTask(PretrainingTaskConfig(**json.loads(sys.argv[3])))
result = run_task(task, task.trainer_config(**json.loads(sys.argv[4])), sys.argv[1], callbacks=[Weights()], verbose=0)
print(json.dumps({k: result[k] for k in ("chief", "model_path", "export_dir")}))
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_equal_one_process(tmp_path, vocab_file):
    task = {"preset": "tiny", "max_documents": 40, "vocab_file": vocab_file, "max_sequence_length": 32,
            "max_predictions_per_seq": 5, "target_words": 12, "eval_batches": 1}
    trainer = {"epochs": 1, "steps_per_epoch": 6, "batch_size": 8, "learning_rate": 0.5, "warmup_steps": 2,
               "clipnorm": 0.05, "adam_epsilon": 1.0, "keep_epoch_checkpoints": False}  # see _train
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs, scratch = [], [tmp_path / "tmp0", tmp_path / "tmp1"]   # each worker's temporary directory
    for folder in scratch:
        folder.mkdir()
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / f"w{index}"), str(tmp_path / f"w{index}.npz"),
             json.dumps(task), json.dumps({**trainer, "strategy": "multi_worker_mirrored"})],
            env=dict(env, TF_CONFIG=tf_config, TMPDIR=str(scratch[index])), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    single = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "single"), str(tmp_path / "single.npz"),
                             json.dumps(task), json.dumps(trainer)], env=env, capture_output=True, text=True,
                            timeout=600)
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    load = lambda name: [a for _, a in sorted(np.load(tmp_path / name).items(), key=lambda kv: int(kv[0][4:]))]
    w0, w1, ref = load("w0.npz"), load("w1.npz"), load("single.npz")
    between_workers = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, w1))
    versus_single = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, ref))
    print(f"max |w0 - w1| = {between_workers:.3g}, max |w0 - single process| = {versus_single:.3g}")
    assert between_workers == 0.0 and versus_single < 1e-5
    assert os.path.exists(tmp_path / "w0" / "metrics.json") and not os.path.exists(tmp_path / "w1" / "metrics.json")
    # Only the chief keeps outputs; the other worker's saves leave nothing behind and it names no paths.
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert reports[0] == {"chief": True, "model_path": str(tmp_path / "w0" / "model.keras"),
                          "export_dir": str(tmp_path / "w0" / "export" / "1")}
    assert reports[1] == {"chief": False, "model_path": None, "export_dir": None}
    assert os.listdir(scratch[1]) == [] and os.listdir(tmp_path / "w1") == []


def _two_workers(command, tmp_path, timeout=900):
    """Runs ``command`` (a Python ``-c`` program, then its arguments) as worker 0 and worker 1 of a
    loopback cluster, each with its own temporary directory; returns their (return code, stdout, stderr)."""
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, "-c", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=tf_config,
                                                          TMPDIR=str(scratch), RW_TF_LOG_DIR=str(scratch / "logs"))))
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


STRATEGY_TWICE = """
import sys
from rw_tf.training import create_strategy, wait_for_all_workers
first = create_strategy("multi_worker_mirrored", worker_timeout_seconds=60)
wait_for_all_workers(first)
second = create_strategy("multi_worker_mirrored")
wait_for_all_workers(second)
print(first is second, first.num_replicas_in_sync)
"""


def test_one_multi_worker_strategy_per_process_and_a_barrier(tmp_path):
    # A second MultiWorkerMirroredStrategy would configure collective ops again under the first's
    # tensors; commands that train several tasks in one process (rw-tf recipe) get the first back.
    results = _two_workers([STRATEGY_TWICE], tmp_path, timeout=300)
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert out.split() == ["True", "2"]


@pytest.mark.slow
def test_recipe_on_two_workers_sharing_an_output_folder(tmp_path):
    out = tmp_path / "recipe"
    args = ["recipe", "--output-dir", str(out), "--seeds", "0", "--max-documents", "40", "--general-steps", "3",
            "--domain-steps", "3", "--finetune-steps", "3", "--transe-epochs", "3", "--batch-size", "8",
            "--strategy", "multi_worker_mirrored"]
    program = "import sys; from rw_tf.cli.main import main; sys.exit(main(sys.argv[1:]))"
    results = _two_workers([program, *args], tmp_path)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    (_, chief_out, _), (_, worker_out, _) = results
    # The workers trained in step: every stage's figures agree; the chief alone wrote files.
    table = lambda printed: [line for line in printed.splitlines() if line.startswith("| (")]
    figures = lambda printed: [line.rsplit("(", 1)[0] for line in printed.splitlines() if line.startswith("[seed")]
    assert len(table(chief_out)) == 5 and table(chief_out) == table(worker_out)
    assert len(figures(chief_out)) == 9 and figures(chief_out) == figures(worker_out)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["config"]["strategy"] == "multi_worker_mirrored"
    assert recipe["runs"]["0"]["d"]["export_dir"] == str(out / "seed-0" / "d" / "export" / "1")
    assert not [name for name in os.listdir(tmp_path / "tmp1") if name.startswith("rw_tf_worker_")]


TRANSE_WORKER = """
import json, sys
from rw_tf.knowledge.training import TransEConfig, train_transe
config = TransEConfig(dataset="nations", epochs=5, strategy="multi_worker_mirrored")
result = train_transe(config, sys.argv[1], verbose=0)
print(json.dumps({"mrr": result["test_metrics"]["mrr"], "final_loss": result["final_loss"]}))
"""


def test_transe_on_two_workers(tmp_path):
    # rw-tf kg train --strategy multi_worker_mirrored failed in Keras' reduction of the step's scalar
    # logs; the margin loss is now a share of the global mean, so the logged loss is one process's.
    results = _two_workers([TRANSE_WORKER, str(tmp_path / "kg")], tmp_path, timeout=300)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    chief, other = (json.loads(out.strip().splitlines()[-1]) for _, out, _ in results)
    single = train_transe(TransEConfig(dataset="nations", epochs=5), str(tmp_path / "single"), verbose=0)
    print(f"final loss: two workers {chief['final_loss']:.4f}, one process {single['final_loss']:.4f}")
    assert chief == other   # the workers hold the same weights
    assert chief["final_loss"] == pytest.approx(single["final_loss"], rel=0.25)
    assert sorted(os.listdir(tmp_path / "kg")) == ["entities.json", "metrics.json", "relations.json", "transe.keras"]
    assert not [name for name in os.listdir(tmp_path / "tmp1") if name.startswith("rw_tf_worker_")]
