"""Padding-aware input: fine-tuning throughput in *real* (non-padding) tokens per second with every
batch padded to ``max_sequence_length`` against length-bucketed batches (``--length-bucketing``),
same task, model, data, seed, batch size and number of steps, in one run.

    .venv/bin/python benchmarks/bucketing_throughput.py [--lengths 128 256] [--steps 30] [--batch-size 32]

Task: the default classification fine-tuning (all-MiniLM-L6-v2 on the documentation-source texts
of the embedded corpus). The first ``--warmup`` steps of each run (tracing, one compilation per
bucket shape) are not timed. Prints the real-token rate (share of non-padding positions), real
tokens/s and the ratio bucketed / padded.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from rw_tf.data.text_inputs import real_token_rate  # noqa: E402
from rw_tf.tasks import ClassificationTask, ClassificationTaskConfig  # noqa: E402


class StepTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def measure(length: int, bucketing: bool, steps: int, warmup: int, batch_size: int) -> dict:
    task = ClassificationTask(ClassificationTaskConfig(max_sequence_length=length, length_bucketing=bucketing))
    trainer = task.trainer_config(batch_size=batch_size, seed=0)
    task.prepare(tempfile.mkdtemp(prefix="rw_tf_bucketing_"), trainer)
    model = task.build_model()
    model.compile(optimizer=keras.optimizers.AdamW(2e-5))
    dataset = task.train_dataset(batch_size)
    timer = StepTimes()
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer])
    timed = timer.times[-1] - timer.times[warmup - 1] if warmup else timer.times[-1] - start
    # The same seeded batches again, to count what was trained on.
    masks = [x["padding_mask"].numpy() for x, *_ in dataset.take(warmup + steps)][warmup:]
    real = sum(int(m.sum()) for m in masks)
    lengths = sorted({m.shape[1] for m in masks})
    return {"real_token_rate": real_token_rate(dataset.skip(warmup), steps), "real_tokens_per_s": real / timed,
            "seconds": timed, "padded_lengths": lengths}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    rows = []
    for length in args.lengths:
        for bucketing in (False, True):
            print(f"max_sequence_length {length}, bucketing {'on' if bucketing else 'off'}", flush=True)
            rows.append((length, bucketing, measure(length, bucketing, args.steps, args.warmup, args.batch_size)))
    print(f"\nClassification fine-tuning (all-MiniLM-L6-v2), batch {args.batch_size}, {args.steps} timed steps")
    print("| max length | batches | padded lengths | real-token rate | real tokens/s | bucketed / padded |")
    print("|---|---|---|---|---|---|")
    for length, bucketing, r in rows:
        base = next(m for n, b, m in rows if n == length and not b)
        ratio = r["real_tokens_per_s"] / base["real_tokens_per_s"]
        print(f"| {length} | {'bucketed' if bucketing else 'padded to max'} | "
              f"{', '.join(map(str, r['padded_lengths']))} | {r['real_token_rate']:.3f} | "
              f"{r['real_tokens_per_s']:,.0f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
