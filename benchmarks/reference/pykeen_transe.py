"""PyKEEN's TransE on a packaged dataset; run in .venv-ref by benchmarks/transe_vs_pykeen.py.

Prints one JSON line: filtered both-sides realistic MRR and Hits@k, and training seconds.
"""
import argparse
import json
import time

from pykeen.pipeline import pipeline

parser = argparse.ArgumentParser()
parser.add_argument("--dataset", default="kinships")
parser.add_argument("--dim", type=int, default=50)
parser.add_argument("--norm", type=int, default=1)
parser.add_argument("--margin", type=float, default=1.0)
parser.add_argument("--negatives", type=int, default=1)
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

start = time.perf_counter()
result = pipeline(
    dataset=args.dataset.capitalize(), model="TransE",
    model_kwargs=dict(embedding_dim=args.dim, scoring_fct_norm=args.norm),
    loss="MarginRankingLoss", loss_kwargs=dict(margin=args.margin),
    training_loop="sLCWA", negative_sampler="basic", negative_sampler_kwargs=dict(num_negs_per_pos=args.negatives),
    optimizer="Adam", optimizer_kwargs=dict(lr=args.lr),
    training_kwargs=dict(num_epochs=args.epochs, batch_size=args.batch_size, use_tqdm=False),
    evaluator_kwargs=dict(filtered=True), random_seed=args.seed, device="cpu", use_tqdm=False)
metrics = result.metric_results
print(json.dumps({
    "mrr": metrics.get_metric("both.realistic.inverse_harmonic_mean_rank"),
    "hits@1": metrics.get_metric("both.realistic.hits_at_1"),
    "hits@3": metrics.get_metric("both.realistic.hits_at_3"),
    "hits@10": metrics.get_metric("both.realistic.hits_at_10"),
    "train_seconds": result.train_seconds, "total_seconds": time.perf_counter() - start}))
