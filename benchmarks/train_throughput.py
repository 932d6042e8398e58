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
so rw-tf does slightly more work per step.

MFU: model FLOPs per step (6 x non-embedding parameters x tokens + 12 x layers x hidden x length x
tokens for attention + 6 x hidden x vocabulary x masked tokens for the tied output layer) divided
by the step time and by this machine's matmul peak, measured in the same run for float32 and
bfloat16 (a 2048^3 matmul in a tf.function, best of 5). Tokens/s counts every position of the
padded batch; ratios, not absolute numbers, are the figures to compare on a shared machine.
``--peak-rss`` trains each precision in a fresh process and reports its peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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


def time_steps(model, batches, steps: int, repeats: int) -> float:
    signature = tf.nest.map_structure(tf.TensorSpec.from_tensor, batches[0])
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature).cache().repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)       # trace, compile, warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def step_flops(sizes: EncoderConfig, batch: int, length: int, masked: int) -> float:
    h, layers, inter = sizes.hidden_size, sizes.num_layers, sizes.intermediate_size
    params = layers * (4 * h * h + 2 * h * inter)          # attention projections + feed-forward
    tokens = batch * length
    return 6 * params * tokens + 12 * layers * h * length * tokens + 6 * h * sizes.vocab_size * masked


def measure_row(preset, length, precision, batch_size, tokenizer, steps, repeats, jit, peaks):
    keras.mixed_precision.set_global_policy(precision)
    try:
        sizes = EncoderConfig.preset_for_length(preset, tokenizer.vocab_size, length)
        batches = real_batches(tokenizer, length, batch_size, 4)
        masked = int(sum(float(tf.reduce_sum(w["mlm"])) for _, _, w in batches) / len(batches))
        flops = step_flops(sizes, batch_size, length, masked)
        peak = peaks["bfloat16" if "bfloat16" in precision else "float32"]
        row = {"preset": preset, "length": length, "precision": precision, "batch": batch_size}
        for kind, data in (("rw-tf", batches), ("KerasHub", keras_hub_batches(batches))):
            keras.utils.set_random_seed(0)
            model = build(kind, sizes, jit)
            seconds = time_steps(model, data, steps, repeats)
            row[kind] = {"tokens_per_s": batch_size * length / seconds, "mfu": flops / seconds / peak}
            del model
            keras.backend.clear_session()
        row["ratio"] = row["rw-tf"]["tokens_per_s"] / row["KerasHub"]["tokens_per_s"]
        return row
    finally:
        keras.mixed_precision.set_global_policy("float32")


def peak_rss_child(args) -> None:
    """Trains rw-tf's model for a few steps in this process and prints its peak RSS (MiB)."""
    tokenizer = WordPieceTokenizer(args.vocab)
    keras.mixed_precision.set_global_policy(args.precisions[0])
    sizes = EncoderConfig.preset_for_length(args.presets[0], tokenizer.vocab_size, args.lengths[0])
    batches = real_batches(tokenizer, args.lengths[0], args.batch_size, 2)
    time_steps(build("rw-tf", sizes, args.jit_compile), batches, args.steps, 1)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--batch-tokens", type=int, default=4096, help="batch size = batch tokens / length")
    parser.add_argument("--batch-size", type=int, default=None, help="overrides --batch-tokens")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
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
          f"GFLOP/s; XLA {'on' if args.jit_compile else 'off'}; {args.steps} steps, best of {args.repeats}\n")
    print("| preset | length | batch | precision | rw-tf tokens/s | KerasHub tokens/s | ratio | rw-tf MFU | "
          "KerasHub MFU |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for preset in args.presets:
        for length in args.lengths:
            batch = args.batch_size or max(1, args.batch_tokens // length)
            for precision in args.precisions:
                row = measure_row(preset, length, precision, batch, tokenizer, args.steps, args.repeats,
                                  args.jit_compile, peaks)
                rows.append(row)
                print(f"| {preset} | {length} | {batch} | {precision} | {row['rw-tf']['tokens_per_s']:,.0f} | "
                      f"{row['KerasHub']['tokens_per_s']:,.0f} | {row['ratio']:.2f}x | {row['rw-tf']['mfu']:.1%} | "
                      f"{row['KerasHub']['mfu']:.1%} |", flush=True)
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
