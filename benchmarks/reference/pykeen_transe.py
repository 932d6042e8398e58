"""PyKEEN's TransE on a packaged dataset; run in .venv-ref by benchmarks/transe_vs_pykeen.py.

Prints one JSON line: filtered both-sides realistic MRR and Hits@k, and training seconds.
"""
import argparse
import json
import sys
import time

from pykeen.pipeline import pipeline

# The settings of benchmarks/transe_vs_pykeen.py, as one JSON object (its argparse names).
args = argparse.Namespace(**json.loads(sys.argv[1]))

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
