"""Image-text alignment and matching on held-out images, in one run:

1. retrieval (CLIP alignment only): image -> text and text -> image recall@1/5 of the trained
   model against the untrained model and chance;
2. image-text matching: the cross-attention (fused) head against image-only, text-only and
   late-fusion heads, the same split, seeds, steps and alignment loss for all four.

    .venv/bin/python benchmarks/multimodal_fusion.py [--seeds 0 1 2] [--steps 600]
        [--images digits] [--text-preset tiny | --pretrained-text]

Data: ``rw_tf.data.image_text`` (digits: 1,797 images, 20% of them held out, captions by a
template rule naming the digit). Matching pairs every held-out image with its own caption and a
caption of another class (chance 0.5). Prints mean and spread over the seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.tasks import ImageTextTask, ImageTextTaskConfig  # noqa: E402
from rw_tf.training import run_task  # noqa: E402

FUSIONS = ("cross_attention", "late", "image_only", "text_only")
RETRIEVAL = ("image_to_text_recall@1", "image_to_text_recall@5", "text_to_image_recall@1", "text_to_image_recall@5")


def train(out: str, seed: int, steps: int, text_preset, **task_options) -> dict:
    task = ImageTextTask(ImageTextTaskConfig(text_preset=text_preset, **task_options))
    folder = os.path.join(out, "-".join(f"{v}" for v in task_options.values()) + f"-{seed}")
    trainer = task.trainer_config(seed=seed, epochs=1, steps_per_epoch=steps,
                                  learning_rate=1e-3 if text_preset else 1e-4)
    return run_task(task, trainer, folder, verbose=0)


def cell(values) -> str:
    mean = statistics.mean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--images", default="digits", choices=["digits", "faces"])
    parser.add_argument("--text-preset", default="tiny", help="a fresh text encoder of this preset")
    parser.add_argument("--pretrained-text", action="store_true", help="all-MiniLM-L6-v2 as the text encoder")
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="rw_tf_multimodal_"))
    args = parser.parse_args()
    text_preset = None if args.pretrained_text else args.text_preset
    runs = {"untrained": [], "trained": [], **{f: [] for f in FUSIONS}}
    for seed in args.seeds:
        print(f"seed {seed}: alignment", flush=True)
        result = train(args.out, seed, args.steps, text_preset, images=args.images, objective="alignment")
        runs["untrained"].append(result["before"])
        runs["trained"].append(result["after"])
        for fusion in FUSIONS:
            print(f"seed {seed}: matching, {fusion}", flush=True)
            runs[fusion].append(train(args.out, seed, args.steps, text_preset, images=args.images,
                                      objective="matching", fusion=fusion)["after"])
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(runs, f, indent=1)
    n = len(args.seeds)
    print(f"\nRetrieval on held-out {args.images} images ({n} seeds, {args.steps} steps, "
          f"text encoder: {text_preset or 'all-MiniLM-L6-v2'})")
    print("| model | " + " | ".join(RETRIEVAL) + " |")
    print("|---" * (len(RETRIEVAL) + 1) + "|")
    chance = [cell([r[m.replace("recall", "chance")] for r in runs["trained"]]) for m in RETRIEVAL]
    print("| chance | " + " | ".join(chance) + " |")
    for name in ("untrained", "trained"):
        print(f"| {name} | " + " | ".join(cell([r[m] for r in runs[name]]) for m in RETRIEVAL) + " |")
    print("\nImage-text matching on the same held-out images (own caption vs another class's; chance 0.5)")
    print("| matching head | match_accuracy | match_ranking_accuracy | image_to_text_recall@1 |")
    print("|---|---|---|---|")
    for fusion in FUSIONS:
        rows = runs[fusion]
        print(f"| {fusion} | {cell([r['match_accuracy'] for r in rows])} | "
              f"{cell([r['match_ranking_accuracy'] for r in rows])} | "
              f"{cell([r['image_to_text_recall@1'] for r in rows])} |")
    fused = statistics.mean(r["match_accuracy"] for r in runs["cross_attention"])
    best = max(FUSIONS[1:], key=lambda f: statistics.mean(r["match_accuracy"] for r in runs[f]))
    other = statistics.mean(r["match_accuracy"] for r in runs[best])
    print(f"\ncross-attention vs the best baseline ({best}): {fused:.3f} vs {other:.3f} "
          f"({fused - other:+.3f}); results: {args.out}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
