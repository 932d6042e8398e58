"""Per task: does the train step compile with XLA, and its step time with and without XLA.

    .venv/bin/python benchmarks/xla_step_time.py [--preset small] [--batch-size 16] [--steps 12]

Every task trains through the shared runner (``run_task``) on its own real data; the fine-tuning
tasks start from a randomly initialised encoder of the same preset (an rw-tf export made first),
so all four run the same encoder size. A step's time is the median of the timed steps after two
warm-up steps (which include XLA compilation). Prints a table with the XLA / no-XLA ratio; absolute
times on these shared machines are noise, ratios are the figure.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras

from rw_tf.tasks import TASKS, PretrainingTask, PretrainingTaskConfig
from rw_tf.training import run_task


class StepTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def make_tasks(preset: str, init_from: str, length: int):
    configs = {
        "pretraining": dict(preset=preset, max_sequence_length=length, max_documents=200, vocab_size=8000,
                            eval_batches=1),
        "classification": dict(init_from=init_from, max_sequence_length=length, max_examples_per_class=200),
        "qa": dict(init_from=init_from, max_sequence_length=length, doc_stride=48, max_question_length=32,
                   max_train_examples=200, max_eval_examples=8),
        "retrieval": dict(init_from=init_from, max_pairs=600, max_sequence_length=length),
    }
    return {name: TASKS[name](TASKS[name].config_class(**config)) for name, config in configs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rw_tf_xla_")
    seed = PretrainingTask(PretrainingTaskConfig(preset=args.preset, max_sequence_length=args.length,
                                                 max_documents=200, vocab_size=8000, eval_batches=1))
    run_task(seed, seed.trainer_config(epochs=1, steps_per_epoch=1, batch_size=args.batch_size), f"{work}/encoder",
             verbose=0)
    rows = []
    for name in ("pretraining", "classification", "qa", "retrieval"):
        median, compiled = {}, "yes"
        for jit in (False, True):
            task, timer = make_tasks(args.preset, f"{work}/encoder", args.length)[name], StepTimer()
            trainer = task.trainer_config(epochs=1, steps_per_epoch=args.steps + 2, batch_size=args.batch_size,
                                          jit_compile=jit, keep_epoch_checkpoints=False)
            try:
                run_task(task, trainer, f"{work}/{name}-{jit}", callbacks=[timer], verbose=0)
            except Exception as err:  # noqa: BLE001 - a step XLA cannot compile is a row of the table
                compiled = f"no: {type(err).__name__}"
                continue
            median[jit] = statistics.median(timer.times[2:])
        rows.append((name, compiled, median.get(False), median.get(True)))
    print(f"\npreset {args.preset}, batch {args.batch_size}, length {args.length}, median of {args.steps} steps")
    print(f"{'task':16s} {'XLA compiled':>12s} {'no XLA ms':>10s} {'XLA ms':>8s} {'XLA speed-up':>12s}")
    for name, compiled, plain, xla in rows:
        ratio = f"{plain / xla:11.2f}x" if plain and xla else "-"
        print(f"{name:16s} {compiled:>12s} {1000 * plain:10.1f} {1000 * (xla or 0):8.1f} {ratio}")


if __name__ == "__main__":
    main()
