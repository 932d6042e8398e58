"""The two-tower recommender against popularity, item-to-item co-occurrence and text-only
baselines on held-out interactions (leave-one-out), several seeds, in one run.

    .venv/bin/python benchmarks/recommendation_baselines.py [--seeds 0 1 2] [--epochs 3]
        [--datasets stdlib python]

Datasets (``rw_tf.data.interactions``): ``stdlib`` = the standard library's import graph (a
module is a user, the standard-library modules it imports are its history); ``python`` = the
same items with every module of this environment's site-packages as a user too. Users with the
same history are merged and held-out cases that are some other user's training example are left
out (both counted). Prints recall@10, NDCG@10 and MRR (mean and spread over the seeds; the
baselines do not depend on the seed) and the ratio of the model's MRR to the best baseline's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.tasks import RecommendationTask, RecommendationTaskConfig  # noqa: E402
from rw_tf.training import run_task  # noqa: E402

METRICS = ("recall@10", "ndcg@10", "mrr")


def run(dataset: str, seed: int, epochs: int, out: str, profile: bool) -> dict:
    def train(use_profile_text: bool) -> dict:
        task = RecommendationTask(RecommendationTaskConfig(include_site_packages=dataset == "python",
                                                           use_profile_text=use_profile_text))
        folder = os.path.join(out, f"{dataset}-{seed}{'-profile' if use_profile_text else ''}")
        return run_task(task, task.trainer_config(seed=seed, epochs=epochs), folder, verbose=0)

    result = train(False)
    row = {"data": result["data"], "model": result["after"], "untrained": result["before"],
           **result["details"]["baselines"], "train_seconds": result["train_seconds"]}
    if profile:
        row["model + profile text"] = train(True)["after"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=["stdlib", "python"], choices=["stdlib", "python"])
    parser.add_argument("--profile", action="store_true", help="also the two-tower model with profile texts")
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="rw_tf_recommend_"))
    args = parser.parse_args()
    results = {}
    for dataset in args.datasets:
        runs = []
        for seed in args.seeds:
            print(f"{dataset}: seed {seed}", flush=True)
            runs.append(run(dataset, seed, args.epochs, args.out, args.profile))
        results[dataset] = runs
        data = runs[0]["data"]
        print(f"\n{dataset}: {data['items']} items, {data['users']} users, {data['test_users']} held-out cases, "
              f"{data['train_examples']} training examples; removed {data['removed']}; seeds {args.seeds}")
        print(f"{'recommender':34s} " + " ".join(f"{m:>15s}" for m in METRICS))
        names = ["two-tower (rw-tf)"] + (["model + profile text"] if args.profile else []) + [
            "two-tower untrained", "popularity", "co-occurrence", "text only"]
        for name in names:
            key = {"two-tower (rw-tf)": "model", "two-tower untrained": "untrained"}.get(name, name)
            cells = []
            for metric in METRICS:
                values = [r[key][metric] for r in runs]
                spread = statistics.pstdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):8.3f} ±{spread:5.3f}")
            print(f"{name:34s} " + " ".join(f"{c:>15s}" for c in cells))
        best = max(("popularity", "co-occurrence", "text only"), key=lambda b: runs[0][b]["mrr"])
        ratio = statistics.mean(r["model"]["mrr"] for r in runs) / runs[0][best]["mrr"]
        print(f"MRR two-tower / best baseline ({best}): {ratio:.2f}x; training "
              f"{statistics.mean(r['train_seconds'] for r in runs):.1f} s per run")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nresults: {os.path.join(args.out, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
