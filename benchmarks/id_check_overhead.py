"""The cost of checking id inputs (``rw_tf.layers.id_checks``) in a pretraining train step.

    .venv/bin/python benchmarks/id_check_overhead.py [--presets tiny small] [--batch-size 32] [--length 128]

The peer is the same step without the checks: the encoder's embeddings and the masked-LM head's
gather with ``checked_ids`` replaced by the identity, which is Keras's ``Embedding`` as KerasHub
uses it. Each (preset, mode, checks) runs in a fresh process, on and off alternating, ``--rounds``
times; a row reports the median step time of each and their ratio (1.00 = no cost). Modes: a
``tf.function`` graph (the checks run as ``Assert`` ops) and XLA (which compiles them away).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

STEP = r"""
import json, sys, time
import numpy as np, keras, tensorflow as tf
import rw_tf
import rw_tf.heads.masked_lm, rw_tf.layers.embeddings
preset, mode, checks, batch, length, steps = sys.argv[1:7]
batch, length, steps = int(batch), int(length), int(steps)
if checks == "off":
    for module in (rw_tf.layers.embeddings, rw_tf.heads.masked_lm):
        module.checked_ids = lambda ids, *args, **kwargs: ids
encoder = rw_tf.TransformerEncoder.from_preset(preset, vocab_size=30522)
head = rw_tf.MaskedLMHead(encoder.token_embedding)
rng = np.random.default_rng(0)
x = {"token_ids": tf.constant(rng.integers(0, 30522, (batch, length)), tf.int32),
     "segment_ids": tf.constant(np.repeat([[0] * (length // 2) + [1] * (length - length // 2)], batch, 0), tf.int32),
     "padding_mask": tf.ones((batch, length), tf.int32)}
positions = tf.constant(rng.integers(0, length, (batch, 20)), tf.int32)
labels = tf.constant(rng.integers(0, 30522, (batch, 20)), tf.int32)
optimizer = keras.optimizers.Adam(1e-4)

@tf.function(jit_compile=mode == "xla")
def step():
    with tf.GradientTape() as tape:
        logits = head(encoder(x, training=True)["sequence_output"], positions)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    weights = encoder.trainable_variables + head.trainable_variables
    optimizer.apply(tape.gradient(loss, weights), weights)
    return loss

for _ in range(3):
    step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    float(step())
    times.append(time.perf_counter() - start)
print(json.dumps(sorted(times)[len(times) // 2]))
"""


def step_time(preset: str, mode: str, checks: str, args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, "-c", STEP, preset, mode, checks, str(args.batch_size), str(args.length),
                          str(args.steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--modes", nargs="+", default=["graph", "xla"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'preset':<7} {'mode':<6} {'checked s/step':>15} {'unchecked s/step':>17} {'ratio':>6}")
    for preset in args.presets:
        for mode in args.modes:
            on, off = [], []
            for _ in range(args.rounds):
                on.append(step_time(preset, mode, "on", args))
                off.append(step_time(preset, mode, "off", args))
            checked, unchecked = statistics.median(on), statistics.median(off)
            print(f"{preset:<7} {mode:<6} {checked:>15.4f} {unchecked:>17.4f} {checked / unchecked:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
