"""Time to build a task's datasets: one traced input function per tokenizer vs. a trace per dataset.

    python benchmarks/dataset_build_time.py [--datasets 8] [--repeats 3]

A task builds its datasets several times in one run (the model's input spec, the token-rate probe,
``fit``, each evaluation and calibration pass: 8 for pretraining). The peer is the plain tf.data
way, ``ds.map(PretrainingExampleBuilder(...))`` and ``ds.map(lambda t: single_segment_inputs(...))``,
which traces tokenization and masking into every dataset; rw-tf's ``pretraining_features`` and
``single_segment_encoder`` trace once per tokenizer and settings (``rw_tf.data.traced``). Both build
the same datasets (checked on the first batch) and the table gives the seconds to build ``--datasets``
of them and read one batch from each, and the ratio.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.corpus import embedded_corpus
from rw_tf.data.masking import PAIR_TEXT_FEATURES, PretrainingExampleBuilder
from rw_tf.data.pretraining_dataset import pretraining_features
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.data.text_inputs import single_segment_encoder, single_segment_inputs
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary


def traced_per_dataset_pretraining(columns, tokenizer, config, batch_size):
    texts = {k: tf.constant(list(columns[k])) for k in PAIR_TEXT_FEATURES}
    ds = tf.data.Dataset.from_tensor_slices(texts).repeat().batch(batch_size, drop_remainder=True)
    return ds.map(PretrainingExampleBuilder(tokenizer, config), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)


def traced_once_pretraining(columns, tokenizer, config, batch_size):
    return pretraining_features(columns, tokenizer, config, batch_size, shuffle=False)


def traced_per_dataset_text(texts, tokenizer, length, batch_size):
    return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(
        lambda t: single_segment_inputs(tokenizer, t, length))


def traced_once_text(texts, tokenizer, length, batch_size):
    return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(single_segment_encoder(tokenizer, length))


def seconds(build, count):
    started = time.perf_counter()
    first = [next(iter(build())) for _ in range(count)][0]
    return time.perf_counter() - started, {k: v.numpy() for k, v in first.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    documents = embedded_corpus(include_stdlib_docstrings=False)[:200]
    vocab = learn_vocabulary((s for d in documents for s in d), vocab_size=3000)
    tokenizer = WordPieceTokenizer(write_vocabulary(vocab, os.path.join(tempfile.mkdtemp(), "vocab.txt")))
    columns = segment_pair_candidates(documents, target_words=24, seed=0)
    texts = [s for d in documents for s in d][:2000]
    rows = []
    for repeat in range(args.repeats):
        # A new settings value each repeat, so the traced-once side pays its one trace every time.
        config = PretrainingDataConfig(max_sequence_length=128, seed=repeat)
        length = 64 + repeat
        cases = [("pretraining", lambda c=config: traced_per_dataset_pretraining(columns, tokenizer, c, 32),
                  lambda c=config: traced_once_pretraining(columns, tokenizer, c, 32)),
                 ("single segment", lambda n=length: traced_per_dataset_text(texts, tokenizer, n, 32),
                  lambda n=length: traced_once_text(texts, tokenizer, n, 32))]
        for name, peer, ours in cases:
            peer_s, peer_first = seconds(peer, args.datasets)
            ours_s, ours_first = seconds(ours, args.datasets)
            same = all(np.array_equal(peer_first[k], ours_first[k]) for k in peer_first)
            rows.append((name, repeat, peer_s, ours_s, same))
    print(f"{'inputs':<15} {'repeat':>6} {'trace per dataset s':>20} {'traced once s':>14} {'ratio':>7} "
          "same first batch")
    for name, repeat, peer_s, ours_s, same in rows:
        print(f"{name:<15} {repeat:>6} {peer_s:>20.2f} {ours_s:>14.2f} {peer_s / ours_s:>6.2f}x {same}")


if __name__ == "__main__":
    main()
