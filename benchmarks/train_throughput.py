"""Training throughput side by side: rw-tf's PretrainingModel and KerasHub's BertMaskedLM.

    .venv/bin/python benchmarks/train_throughput.py [--presets tiny small base] [--lengths 128 512]
        [--precisions float32 mixed_bfloat16] [--batch-tokens 4096] [--steps 5] [--jit-compile]
    .venv/bin/python benchmarks/train_throughput.py --peak-rss --presets base --lengths 128 --batch-size 32

Peer: keras-hub 0.25.1 (the newest for Python 3.10), installed beside the locked stack with
``uv pip install --no-deps keras-hub==0.25.1``; ``BertBackbone`` + ``BertMaskedLM`` built from
arguments (no presets: they need a download). Both models get the same dimensions (rw-tf's preset),
batch, sequence length, Keras dtype policy, XLA setting, optimizer (AdamW 1e-4) and the same real
batches: pretraining examples of the embedded corpus made by rw-tf's input pipeline (cached, so the
input pipeline is not measured), the masked positions and weights fed to KerasHub's
``mask_positions`` / sample weights. rw-tf trains MLM + NSP + SOP (its objective), KerasHub MLM only,
so rw-tf does slightly more work per step. Each reports masked-LM accuracy with its own library's
metric: KerasHub's ``MaskedLM.compile`` default ``SparseCategoricalAccuracy`` (an arg-max over the
vocabulary), rw-tf's ``SparseTopLogitAccuracy`` (the same value unless logits tie; a third of the
cost on CPUs, worth 3-5% of a tiny-preset step and nothing measurable on small and base).

MFU: model FLOPs per step (6 x non-embedding parameters x tokens + 12 x layers x hidden x length x
tokens for attention + 6 x hidden x vocabulary x masked tokens for the tied output layer) divided
by the step time and by this machine's matmul peak, measured in the same run for float32 and
bfloat16 (a 2048^3 matmul in a tf.function, best of 5). Tokens/s counts every position of the
padded batch; ratios, not absolute numbers, are the figures to compare on a shared machine. For one
preset and length, all four models (two kinds x two precisions) are built first and their fits
interleaved; a row reports each model's median step time over ``--repeats x --steps`` steps.
``--peak-rss`` trains each precision in a fresh process and reports its peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from rw_tf.config import EncoderConfig, PretrainingDataConfig  # noqa: E402
from rw_tf.data.corpus import embedded_corpus  # noqa: E402
from rw_tf.data.pretraining_dataset import pretraining_dataset  # noqa: E402
from rw_tf.data.segment_pairs import segment_pair_candidates  # noqa: E402
from rw_tf.models import PretrainingModel  # noqa: E402
from rw_tf.networks import TransformerEncoder  # noqa: E402
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary  # noqa: E402


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype`` (best of ``repeats``)."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    step = tf.function(lambda x: tf.matmul(x, x))
    step(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def real_batches(tokenizer, length: int, batch_size: int, count: int):
    docs = embedded_corpus()
    pairs = segment_pair_candidates(docs, target_words=max(20, length // 3), seed=0)
    config = PretrainingDataConfig(max_sequence_length=length, max_predictions_per_seq=max(20, length * 15 // 100))
    batches = list(pretraining_dataset(pairs, tokenizer, config, batch_size).take(count))
    return batches


def keras_hub_batches(batches):
    out = []
    for x, y, w in batches:
        inputs = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        inputs["mask_positions"] = x["masked_positions"]
        out.append((inputs, y["mlm"], w["mlm"]))
    return out


def build(kind: str, sizes: EncoderConfig, jit: bool):
    if kind == "rw-tf":
        model = PretrainingModel(TransformerEncoder.from_encoder_config(sizes))
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=jit)
        return model
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=sizes.vocab_size, num_layers=sizes.num_layers, num_heads=sizes.num_heads,
        hidden_dim=sizes.hidden_size, intermediate_dim=sizes.intermediate_size,
        dropout=sizes.dropout, max_sequence_length=sizes.max_sequence_length)
    model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()], jit_compile=jit)
    return model


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (fit's per-batch hooks run after the step's ops finish)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def fit_dataset(batches):
    signature = tf.nest.map_structure(tf.TensorSpec.from_tensor, batches[0])
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature).cache().repeat()


def median_step_seconds(models: dict, datasets: dict, steps: int, repeats: int) -> dict:
    """Median step time of each model, the models' fits interleaved so that all see the same machine.

    ``models`` maps a key to ``(model, precision)``. The machine is shared: single steps are sometimes
    several times slower than their neighbours, so a best-of or a mean over a whole fit measures the
    neighbours as much as the model. Interleaving and the median over ``steps x repeats`` steps keep
    every model under the same conditions.
    """
    def fit(key, steps, callbacks=()):
        model, precision = models[key]
        keras.mixed_precision.set_global_policy(precision)
        model.fit(datasets[key], steps_per_epoch=steps, epochs=1, verbose=0, callbacks=list(callbacks))

    timers, unsupported = {}, {}
    for key in models:
        try:
            fit(key, 2)                                   # traces and warms up: not timed
            timers[key] = StepTimer()
        except tf.errors.UnimplementedError as error:     # XLA on CPU has no bfloat16 dot
            unsupported[key] = error.message.strip().splitlines()[-2 if "[[" in error.message else -1].strip()
    for _ in range(repeats):
        for key in timers:
            fit(key, steps, [timers[key]])
    keras.mixed_precision.set_global_policy("float32")
    return {key: statistics.median(timer.times) for key, timer in timers.items()} | unsupported


def step_flops(sizes: EncoderConfig, batch: int, length: int, masked: int) -> float:
    h, layers, inter = sizes.hidden_size, sizes.num_layers, sizes.intermediate_size
    params = layers * (4 * h * h + 2 * h * inter)          # attention projections + feed-forward
    tokens = batch * length
    return 6 * params * tokens + 12 * layers * h * length * tokens + 6 * h * sizes.vocab_size * masked


def measure_group(preset, length, precisions, batch_size, tokenizer, steps, repeats, jit, peaks):
    """Rows for one preset and length: both models in every precision, timed interleaved."""
    sizes = EncoderConfig.preset_for_length(preset, tokenizer.vocab_size, length)
    batches = real_batches(tokenizer, length, batch_size, 4)
    masked = int(sum(float(tf.reduce_sum(w["mlm"])) for _, _, w in batches) / len(batches))
    flops = step_flops(sizes, batch_size, length, masked)
    data = {"rw-tf": fit_dataset(batches), "KerasHub": fit_dataset(keras_hub_batches(batches))}
    models, datasets = {}, {}
    for precision in precisions:
        keras.mixed_precision.set_global_policy(precision)
        for kind in ("rw-tf", "KerasHub"):
            keras.utils.set_random_seed(0)
            models[kind, precision] = (build(kind, sizes, jit), precision)
            datasets[kind, precision] = data[kind]
    keras.mixed_precision.set_global_policy("float32")
    seconds = median_step_seconds(models, datasets, steps, repeats)
    rows = []
    for precision in precisions:
        peak = peaks["bfloat16" if "bfloat16" in precision else "float32"]
        row = {"preset": preset, "length": length, "precision": precision, "batch": batch_size}
        for kind in ("rw-tf", "KerasHub"):
            s = seconds[kind, precision]
            row[kind] = ({"tokens_per_s": batch_size * length / s, "mfu": flops / s / peak} if isinstance(s, float)
                         else {"tokens_per_s": float("nan"), "mfu": float("nan"), "error": s})
        row["ratio"] = row["rw-tf"]["tokens_per_s"] / row["KerasHub"]["tokens_per_s"]
        rows.append(row)
    del models
    keras.backend.clear_session()
    return rows


def peak_rss_child(args) -> None:
    """Trains rw-tf's model for a few steps in this process and prints its peak RSS (MiB)."""
    tokenizer = WordPieceTokenizer(args.vocab)
    keras.mixed_precision.set_global_policy(args.precisions[0])
    sizes = EncoderConfig.preset_for_length(args.presets[0], tokenizer.vocab_size, args.lengths[0])
    batches = real_batches(tokenizer, args.lengths[0], args.batch_size, 2)
    model = build("rw-tf", sizes, args.jit_compile)
    median_step_seconds({"rw-tf": (model, args.precisions[0])}, {"rw-tf": fit_dataset(batches)}, args.steps, 1)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--batch-tokens", type=int, default=4096, help="batch size = batch tokens / length")
    parser.add_argument("--batch-size", type=int, default=None, help="overrides --batch-tokens")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--peak-rss", action="store_true")
    parser.add_argument("--vocab", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return peak_rss_child(args)

    vocab = write_vocabulary(learn_vocabulary((s for d in embedded_corpus() for s in d), args.vocab_size),
                             "/tmp/rw_tf_bench_vocab.txt")
    if args.peak_rss:
        print("| preset | length | batch | precision | peak RSS (MiB) |\n|---|---|---|---|---|")
        for precision in args.precisions:
            batch = args.batch_size or args.batch_tokens // args.lengths[0]
            out = subprocess.run([sys.executable, __file__, "--child", "--vocab", vocab, "--presets", args.presets[0],
                                  "--lengths", str(args.lengths[0]), "--precisions", precision, "--batch-size",
                                  str(batch), "--steps", str(args.steps)],
                                 check=True, capture_output=True, text=True).stdout
            rss = json.loads(out.strip().splitlines()[-1])["peak_rss_mib"]
            print(f"| {args.presets[0]} | {args.lengths[0]} | {batch} | {precision} | {rss:,.0f} |", flush=True)
        return

    tokenizer = WordPieceTokenizer(vocab)
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    print(f"matmul peak: float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, bfloat16 {peaks['bfloat16'] / 1e9:.0f} "
          f"GFLOP/s; XLA {'on' if args.jit_compile else 'off'}; median of "
          f"{args.repeats} x {args.steps} steps per model, the models' fits interleaved\n")
    print("| preset | length | batch | precision | rw-tf tokens/s | KerasHub tokens/s | ratio | rw-tf MFU | "
          "KerasHub MFU |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for preset in args.presets:
        for length in args.lengths:
            batch = args.batch_size or max(1, args.batch_tokens // length)
            for row in measure_group(preset, length, args.precisions, batch, tokenizer, args.steps, args.repeats,
                                     args.jit_compile, peaks):
                rows.append(row)
                print(f"| {preset} | {length} | {batch} | {row['precision']} | {row['rw-tf']['tokens_per_s']:,.0f} | "
                      f"{row['KerasHub']['tokens_per_s']:,.0f} | {row['ratio']:.2f}x | {row['rw-tf']['mfu']:.1%} | "
                      f"{row['KerasHub']['mfu']:.1%} |", flush=True)
                for kind in ("rw-tf", "KerasHub"):
                    if "error" in row[kind]:
                        print(f"  ({kind}, {row['precision']}: {row[kind]['error']})", flush=True)
    print("\nmixed_bfloat16 / float32 (rw-tf tokens/s):")
    for r in rows:
        if r["precision"] == "mixed_bfloat16":
            base = next((b for b in rows if b["precision"] == "float32" and (b["preset"], b["length"]) ==
                         (r["preset"], r["length"])), None)
            if base:
                gain = r["rw-tf"]["tokens_per_s"] / base["rw-tf"]["tokens_per_s"]
                print(f"  {r['preset']} @ {r['length']}: {gain:.2f}x")


if __name__ == "__main__":
    main()
