"""sentence-transformers' MultipleNegativesRankingLoss on (query, item) pairs; run in .venv-ref by
benchmarks/contrastive_sts.py.

    python st_mnrl.py CHECKPOINT PAIRS.jsonl OUT_DIR --steps 100 --batch-size 32 --lr 3e-5
        [--max-length 64] [--seed 12345] [--symmetric]

Trains with a plain PyTorch loop (AdamW, constant learning rate, weight decay 0.01, no clipping:
rw-tf's sentence-embedding trainer defaults) on shuffled batches of the pairs, saves the model in
Hugging Face layout to OUT_DIR (so rw-tf evaluates it with its own code) and prints
{"train_seconds", "final_loss"} as the last line.
"""
import argparse
import json
import os
import random
import shutil
import time

import torch
from sentence_transformers import SentenceTransformer, losses

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("pairs")
parser.add_argument("out")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=3e-5)
parser.add_argument("--max-length", type=int, default=64)
parser.add_argument("--seed", type=int, default=12345)
parser.add_argument("--symmetric", action="store_true", help="MultipleNegativesSymmetricRankingLoss")
args = parser.parse_args()

torch.manual_seed(args.seed)
rng = random.Random(args.seed)
pairs = [json.loads(line) for line in open(args.pairs, encoding="utf-8")]
model = SentenceTransformer(args.checkpoint, device="cpu")
model.max_seq_length = args.max_length
loss_fn = (losses.MultipleNegativesSymmetricRankingLoss if args.symmetric
           else losses.MultipleNegativesRankingLoss)(model, scale=20.0)   # scale 20 = temperature 0.05
no_decay = ("bias", "LayerNorm.weight")
params = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
           "weight_decay": 0.01},
          {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0}]
optimizer = torch.optim.AdamW(params, lr=args.lr, eps=1e-8)
model.train()
order, step, loss = [], 0, None
start = time.perf_counter()
while step < args.steps:
    if len(order) < args.batch_size:
        extra = list(range(len(pairs)))
        rng.shuffle(extra)
        order += extra
    batch, order = [pairs[i] for i in order[:args.batch_size]], order[args.batch_size:]
    features = [model.tokenize([p["query"] for p in batch]), model.tokenize([p["item"] for p in batch])]
    loss = loss_fn(features, None)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    step += 1
seconds = time.perf_counter() - start
model.save(args.out)
shutil.copy(os.path.join(args.checkpoint, "vocab.txt"), args.out)  # unchanged; rw-tf's checkpoint import reads it
print(json.dumps({"train_seconds": seconds, "final_loss": float(loss)}))
