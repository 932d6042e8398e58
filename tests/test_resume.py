"""A training process killed with SIGKILL mid-epoch resumes from its last backup when the same
command runs again, and ends with the weights of an uninterrupted run (same data order)."""
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.training import run_task

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def rw_tf(*args):
    return [sys.executable, "-m", "rw_tf.cli.main", *args]


def kill_after_backup(command, state_file, min_step, max_step, timeout=600):
    """Starts ``command``, SIGKILLs it once its backup holds a step in [min_step, max_step]; returns that step."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            step = json.load(open(state_file))["global_step"]
        except (OSError, ValueError):
            step = -1
        if min_step <= step <= max_step:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return step
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"the run ended (rc {proc.returncode}) before a backup in [{min_step}, {max_step}] was seen")


def max_weight_difference(a, b):
    wa, wb = keras.saving.load_model(a).get_weights(), keras.saving.load_model(b).get_weights()
    return max(float(np.max(np.abs(x - y))) for x, y in zip(wa, wb))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_export")
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=30, vocab_size=1500,
                                                 max_sequence_length=64, target_words=12, eval_batches=1))
    run_task(task, task.trainer_config(epochs=1, steps_per_epoch=1, batch_size=8), str(out), verbose=0)
    return str(out)


# Two processes each (killed, then resumed) for minutes on 2 cores: with the slow tests. The default
# suite resumes from a backup in one process (test_runner.py).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["pretrain", "finetune_qa"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(name, tmp_path, vocab_file, tiny_export):
    if name == "pretrain":   # two epochs of 20 steps; killed in the second
        common = ["pretrain", "--preset", "small", "--max-documents", "60", "--vocab-file", vocab_file,
                  "--max-sequence-length", "32", "--max-predictions-per-seq", "5", "--target-words", "12",
                  "--eval-batches", "1", "--epochs", "2", "--steps-per-epoch", "20", "--batch-size", "8",
                  "--learning-rate", "1e-3", "--backup-every-steps", "3", "--no-keep-epoch-checkpoints"]
        window = (21, 36)
    else:                    # one long epoch (QA trains a single epoch), killed in the middle
        common = ["finetune", "--task", "qa", "--init-from", tiny_export, "--max-sequence-length", "64",
                  "--doc-stride", "24", "--max-question-length", "24", "--max-train-examples", "200",
                  "--max-eval-examples", "8", "--epochs", "1", "--steps-per-epoch", "60", "--batch-size", "8",
                  "--learning-rate", "1e-3", "--backup-every-steps", "5", "--no-keep-epoch-checkpoints"]
        window = (10, 50)
    reference, victim = tmp_path / "uninterrupted", tmp_path / "killed"
    done = subprocess.run(rw_tf(*common, "--output-dir", str(reference)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    killed_at = kill_after_backup(rw_tf(*common, "--output-dir", str(victim)), victim / "backup" / "state.json",
                                  *window)
    again = subprocess.run(rw_tf(*common, "--output-dir", str(victim)), env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    metrics = json.load(open(victim / "metrics.json"))
    difference = max_weight_difference(reference / "model.keras", victim / "model.keras")
    print(f"{name}: killed with the backup at step {killed_at}, resumed from step {metrics['resumed_from_step']}, "
          f"max |weights - uninterrupted| = {difference:.3g}")
    assert metrics["resumed_from_step"] >= killed_at and metrics["resumed_from_step"] >= window[0]
    assert difference < 1e-5
    if name == "pretrain":   # the resumed process ran only what was left of epoch 2
        assert len(metrics["history"]["loss"]) == 1
