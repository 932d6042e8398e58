"""Contrastive sentence embeddings: rw-tf's SimCSE and supervised InfoNCE against
sentence-transformers' MultipleNegativesRankingLoss, and the effect of l3 L_NCE in pretraining.

    .venv/bin/python benchmarks/contrastive_sts.py [--steps 100] [--batch-size 32] [--lr 3e-5]
        [--pretrain-steps 600] [--nce-weight 0.1] [--out runs/bench/contrastive]

Every model is scored by the same rw-tf code (``SentenceEmbeddingTask.evaluate``): Spearman
against the human ratings of the Lee corpus (1,225 document pairs), and on held-out standard-library
docstring pairs (modules never trained on) recall@10, alignment and uniformity (Wang and Isola;
lower is better for both). Rows:
- all-MiniLM-L6-v2 as shipped, after unsupervised SimCSE on the embedded corpus (the language
  reference), and after supervised InfoNCE on the training docstring pairs;
- the sentence-transformers peer (.venv-ref, PyTorch): MultipleNegativesRankingLoss from the same
  checkpoint on the same training pairs, batch, steps and learning rate (one direction, scale 20 =
  temperature 0.05, as rw-tf's supervised run here);
- an rw-tf encoder pretrained here (tiny preset with dropout 0.1, MLM + NSP + SOP) before and
  after SimCSE;
- the same pretraining with + l3 L_NCE (same steps): masked-LM accuracy and Lee Spearman.
Published context, not a bar reachable here: unsupervised SimCSE-BERT-base reaches STS-B Spearman
76.85 (Gao et al. 2021) after 1M Wikipedia sentences on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.checkpoints import minilm_checkpoint_dir  # noqa: E402
from rw_tf.data.labelled import docstring_summary_pairs  # noqa: E402
from rw_tf.data.splits import split_by_group  # noqa: E402
from rw_tf.tasks import (  # noqa: E402
    PretrainingTask,
    PretrainingTaskConfig,
    SentenceEmbeddingTask,
    SentenceEmbeddingTaskConfig,
)
from rw_tf.training import run_task  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("lee_spearman", "recall@10", "alignment", "uniformity")


def train_embeddings(out: str, args, **config) -> dict:
    task = SentenceEmbeddingTask(SentenceEmbeddingTaskConfig(**config))
    trainer = task.trainer_config(steps_per_epoch=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                                  seed=args.seed)
    return run_task(task, trainer, out, verbose=0)


def score_checkpoint(path: str, args) -> dict:
    """The held-out metrics of a checkpoint as it is (no training)."""
    task = SentenceEmbeddingTask(SentenceEmbeddingTaskConfig(init_from=path))
    task.prepare(args.out, task.trainer_config(seed=args.seed, batch_size=args.batch_size))
    return task.evaluate(task.build_model())


def pretrain(out: str, args, nce_weight: float) -> dict:
    # dropout 0.1 in both runs: the tiny preset has none, and L_NCE's positives are dropout views.
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", nce_weight=nce_weight, dropout=0.1))
    trainer = task.trainer_config(epochs=1, steps_per_epoch=args.pretrain_steps, seed=args.seed)
    return run_task(task, trainer, out, verbose=0)


def run_peer(pairs_file: str, out: str, args) -> dict:
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure_reference_env.sh")], check=True)
    cmd = [os.path.join(ROOT, ".venv-ref", "bin", "python"),
           os.path.join(ROOT, "benchmarks", "reference", "st_mnrl.py"),
           minilm_checkpoint_dir(), pairs_file, out, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--seed", str(args.seed)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--nce-weight", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "bench", "contrastive"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows, seconds = {}, {}

    def step(name):
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)

    step("SimCSE (unsupervised) from all-MiniLM-L6-v2")
    simcse = train_embeddings(os.path.join(args.out, "minilm-simcse"), args, mode="unsupervised")
    rows["all-MiniLM-L6-v2 (as shipped)"] = simcse["before"]
    rows["  + rw-tf SimCSE, embedded corpus"] = simcse["after"]
    seconds["  + rw-tf SimCSE, embedded corpus"] = simcse["train_seconds"]

    step("supervised InfoNCE (docstring pairs) from all-MiniLM-L6-v2")
    supervised = train_embeddings(os.path.join(args.out, "minilm-supervised"), args, mode="supervised",
                                  symmetric=False)
    rows["  + rw-tf supervised pairs (InfoNCE)"] = supervised["after"]
    seconds["  + rw-tf supervised pairs (InfoNCE)"] = supervised["train_seconds"]

    step("sentence-transformers MultipleNegativesRankingLoss on the same pairs (.venv-ref)")
    train_pairs, _ = split_by_group(docstring_summary_pairs(seed=args.seed))
    pairs_file = os.path.join(args.out, "train_pairs.jsonl")
    with open(pairs_file, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in train_pairs)
    peer_dir = os.path.join(args.out, "st-mnrl")
    peer = run_peer(pairs_file, peer_dir, args)
    rows["  + sentence-transformers MNRL (peer)"] = score_checkpoint(peer_dir, args)
    seconds["  + sentence-transformers MNRL (peer)"] = peer["train_seconds"]

    step(f"pretraining an rw-tf encoder (tiny, {args.pretrain_steps} steps), without and with l3 L_NCE")
    base = pretrain(os.path.join(args.out, "pretrain"), args, 0.0)
    with_nce = pretrain(os.path.join(args.out, "pretrain-nce"), args, args.nce_weight)

    step("SimCSE from the rw-tf pretrained encoder")
    rw_simcse = train_embeddings(os.path.join(args.out, "rwtf-simcse"), args, mode="unsupervised",
                                 init_from=base["export_dir"])
    rows["rw-tf tiny pretrained (MLM+NSP+SOP)"] = rw_simcse["before"]
    rows["  + rw-tf SimCSE, embedded corpus (tiny)"] = rw_simcse["after"]
    seconds["  + rw-tf SimCSE, embedded corpus (tiny)"] = rw_simcse["train_seconds"]
    nce_scores = score_checkpoint(with_nce["export_dir"], args)
    rows[f"rw-tf tiny pretrained + {args.nce_weight} L_NCE"] = nce_scores

    order = ["all-MiniLM-L6-v2 (as shipped)", "  + rw-tf SimCSE, embedded corpus",
             "  + rw-tf supervised pairs (InfoNCE)",
             "  + sentence-transformers MNRL (peer)", "rw-tf tiny pretrained (MLM+NSP+SOP)",
             "  + rw-tf SimCSE, embedded corpus (tiny)", f"rw-tf tiny pretrained + {args.nce_weight} L_NCE"]
    print(f"\n{args.steps} steps, batch {args.batch_size}, lr {args.lr}, max length 64 (Lee documents 256), "
          f"seed {args.seed}; held-out pairs: {simcse['data']['eval_pairs']}")
    print(f"{'model':44s} {'Lee rho':>8s} {'R@10':>7s} {'align':>7s} {'uniform':>8s} {'train s':>8s}")
    for name in order:
        m = rows[name]
        print(f"{name:44s} {m['lee_spearman']:8.3f} {m['recall@10']:7.3f} {m['alignment']:7.3f} "
              f"{m['uniformity']:8.3f} {seconds.get(name, float('nan')):8.1f}")
    ours, theirs = "  + rw-tf supervised pairs (InfoNCE)", "  + sentence-transformers MNRL (peer)"
    print(f"supervised, rw-tf vs peer: Lee rho {rows[ours]['lee_spearman'] - rows[theirs]['lee_spearman']:+.3f}, "
          f"R@10 {rows[ours]['recall@10'] - rows[theirs]['recall@10']:+.3f}, training time ratio (rw-tf / peer) "
          f"{seconds[ours] / seconds[theirs]:.2f}x")
    print(f"\npretraining, same {args.pretrain_steps} steps:  {'MLM acc':>8s} {'Lee rho':>8s} {'train s':>8s}")
    for name, result, lee in (("L_MLM + L_NSP + L_SOP", base, rows[order[4]]["lee_spearman"]),
                              (f"  + {args.nce_weight} L_NCE", with_nce, nce_scores["lee_spearman"])):
        print(f"{name:42s} {result['after']['mlm_accuracy']:8.4f} {lee:8.3f} {result['train_seconds']:8.1f}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "seconds": seconds, "pretraining": {
            "base": base["after"], "with_nce": with_nce["after"]}, "args": vars(args)}, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
