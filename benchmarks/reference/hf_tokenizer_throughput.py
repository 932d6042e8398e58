"""Hugging Face ``tokenizers``' BERT WordPiece on the same texts as rw-tf's tokenizer (run in .venv-ref).

    python hf_tokenizer_throughput.py VOCAB TEXTS.json OUT.json [--batch-size 1024] [--repeats 3]

Writes ``{"texts_per_s": {"threads": ..., "one_thread": ...}, "ids": [[...], ...]}``: the best of
``--repeats`` passes over all texts with ``encode_batch`` (no special tokens), once with the Rust
thread pool on every core (its default) and once on one thread (``TOKENIZERS_PARALLELISM=false``,
set before the import), and the token ids of every text to compare with rw-tf's.
"""
import argparse
import json
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("vocab")
parser.add_argument("texts")
parser.add_argument("out")
parser.add_argument("--batch-size", type=int, default=1024)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--one-thread-child", action="store_true", help=argparse.SUPPRESS)
args = parser.parse_args()

if args.one_thread_child:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import BertWordPieceTokenizer  # noqa: E402

with open(args.texts) as f:
    texts = json.load(f)
tokenizer = BertWordPieceTokenizer(args.vocab, lowercase=True, strip_accents=None, clean_text=True,
                                   handle_chinese_chars=True)
batches = [texts[i:i + args.batch_size] for i in range(0, len(texts), args.batch_size)]


def one_pass():
    return [e.ids for b in batches for e in tokenizer.encode_batch(b, add_special_tokens=False)]


ids = one_pass()
best = float("inf")
for _ in range(args.repeats):
    start = time.perf_counter()
    one_pass()
    best = min(best, time.perf_counter() - start)
if args.one_thread_child:
    print(json.dumps({"texts_per_s": len(texts) / best}))
    sys.exit(0)
child = subprocess.run([sys.executable, __file__, args.vocab, args.texts, os.devnull, "--batch-size",
                        str(args.batch_size), "--repeats", str(args.repeats), "--one-thread-child"],
                       check=True, capture_output=True, text=True).stdout
one_thread = json.loads(child.strip().splitlines()[-1])["texts_per_s"]
with open(args.out, "w") as f:
    json.dump({"texts_per_s": {"threads": len(texts) / best, "one_thread": one_thread}, "ids": ids}, f)
