"""Training throughput of the pretraining model: tokens/s with XLA off vs. on, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--preset small] [--batch-size 16] [--steps 20]

Both variants train the same model on the same cached batches of real pretraining examples
(the embedded corpus), so only the compilation mode differs. Prints a table and the XLA/eager-graph
ratio; absolute numbers on shared machines are noise, ratios are the figure to compare.
"""
from __future__ import annotations

import argparse
import os
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


def measure(preset: str, vocab_size: int, batches: tf.data.Dataset, steps: int, repeats: int,
            jit: bool, seq_len: int) -> dict:
    keras.utils.set_random_seed(0)
    cfg = EncoderConfig.preset(preset, vocab_size=vocab_size)
    model = PretrainingModel(TransformerEncoder.from_encoder_config(cfg))
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=jit)
    model.fit(batches, steps_per_epoch=3, epochs=1, verbose=0)  # compile + warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    best = min(times)
    batch = next(iter(batches))[0]["padding_mask"]
    real_tokens = float(tf.reduce_sum(batch)) * steps
    return {"mode": "XLA (jit_compile=True)" if jit else "tf.function graph (jit_compile=False)",
            "step_ms": 1000 * best / steps, "tokens_per_s": real_tokens / best,
            "padded_tokens_per_s": batch.shape[0] * seq_len * steps / best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()

    docs = embedded_corpus(include_stdlib_docstrings=False)
    vocab_path = write_vocabulary(learn_vocabulary((s for d in docs for s in d), args.vocab_size),
                                  "/tmp/rw_tf_bench_vocab.txt")
    tok = WordPieceTokenizer(vocab_path)
    pairs = segment_pair_candidates(docs, target_words=60)
    data_cfg = PretrainingDataConfig(max_sequence_length=args.seq_len, max_predictions_per_seq=20)
    # A few cached batches: the input pipeline is not what is measured here.
    batches = pretraining_dataset(pairs, tok, data_cfg, args.batch_size).take(4).cache().repeat()

    rows = [measure(args.preset, tok.vocab_size, batches, args.steps, args.repeats, jit, args.seq_len)
            for jit in (False, True)]
    print(f"\npreset={args.preset} batch={args.batch_size} seq_len={args.seq_len} steps={args.steps} "
          f"(best of {args.repeats}); devices: {[d.name for d in tf.config.list_logical_devices()]}")
    print(f"{'mode':40s} {'ms/step':>10s} {'tokens/s':>12s} {'padded tok/s':>14s}")
    for r in rows:
        print(f"{r['mode']:40s} {r['step_ms']:10.1f} {r['tokens_per_s']:12.0f} {r['padded_tokens_per_s']:14.0f}")
    print(f"XLA speed-up (tokens/s ratio, XLA / graph): {rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
