"""rw-tf's TransE vs. PyKEEN's TransE on the same dataset and settings, side by side.

    .venv/bin/python benchmarks/transe_vs_pykeen.py [--dataset kinships] [--dim 50] [--norm 1]
        [--margin 1.0] [--negatives 1] [--epochs 100] [--batch-size 256] [--lr 0.01] [--seeds 0 1 2]

PyKEEN runs in .venv-ref (created by scripts/ensure_reference_env.sh). Both evaluate filtered,
both-sides, realistic ranks on the test split (filtered by train + valid + test). Prints a table
and the ratios; run several seeds to see the spread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from rw_tf.knowledge import TransE, filtered_ranks, load_pykeen_dataset, rank_metrics  # noqa: E402
from rw_tf.knowledge.evaluation import transe_scores  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ours(args, seed: int) -> dict:
    train, valid, test = load_pykeen_dataset(args.dataset)
    keras.utils.set_random_seed(seed)
    model = TransE(train.num_entities, train.num_relations, args.dim, args.norm, args.margin, args.negatives, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    start = time.perf_counter()
    model.fit(train.triples, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    ranks = filtered_ranks(transe_scores(model), test.triples, [train.triples, valid.triples, test.triples])
    return {**rank_metrics(ranks), "train_seconds": seconds}


def run_pykeen(args, seed: int) -> dict:
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure_reference_env.sh")], check=True)
    cmd = [os.path.join(ROOT, ".venv-ref", "bin", "python"),
           os.path.join(ROOT, "benchmarks", "reference", "pykeen_transe.py"), json.dumps({**vars(args), "seed": seed})]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="kinships")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--norm", type=int, default=1)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    rows = {"rw-tf TransE (Keras 3)": [run_ours(args, s) for s in args.seeds],
            "PyKEEN TransE (PyTorch)": [run_pykeen(args, s) for s in args.seeds]}
    print(f"\n{args.dataset}: dim={args.dim} L{args.norm} margin={args.margin} negatives={args.negatives} "
          f"epochs={args.epochs} batch={args.batch_size} Adam lr={args.lr}, seeds {args.seeds} (mean)")
    print(f"{'implementation':26s} {'MRR':>7s} {'H@1':>7s} {'H@3':>7s} {'H@10':>7s} {'train s':>8s}")
    means = {}
    for name, runs in rows.items():
        keys = ("mrr", "hits@1", "hits@3", "hits@10", "train_seconds")
        means[name] = {k: statistics.mean(r[k] for r in runs) for k in keys}
        m = means[name]
        print(f"{name:26s} {m['mrr']:7.3f} {m['hits@1']:7.3f} {m['hits@3']:7.3f} {m['hits@10']:7.3f} "
              f"{m['train_seconds']:8.1f}")
    ours, peer = means.values()
    print(f"MRR difference (rw-tf - PyKEEN): {ours['mrr'] - peer['mrr']:+.3f}; "
          f"training time ratio (rw-tf / PyKEEN): {ours['train_seconds'] / peer['train_seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
