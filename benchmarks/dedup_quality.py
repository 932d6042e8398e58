"""Deduplication quality against brute force: MinHash LSH on near-duplicates planted at known Jaccard
similarities, and exact-substring removal against an exhaustive search of repeated token windows.

    .venv/bin/python benchmarks/dedup_quality.py [--pairs-per-level 20] [--bands 450 --rows 20]

MinHash: every base document (news articles of the Lee corpus, 100 to 300 words) gets one copy
edited to a target Jaccard similarity of 5-gram shingles; the exact similarity of *every* pair of
documents is computed by brute force. A pair is a true duplicate when its exact Jaccard is at least
``--threshold`` (0.8: the similarity at which 450 x 20 bands have a 99.5% chance to collide);
predicted duplicates are the pairs MinHash puts in one cluster. Prints precision and recall, and
per similarity level the share of pairs detected next to the LSH formula 1 - (1 - J^r)^b.
Exact substrings: documents with planted shared spans of 30 to 120 tokens; the marked windows of
``rw_tf.refine.exact_substrings`` against a search over all windows of all documents.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.data.similarity_judgements import lee_data_dir  # noqa: E402
from rw_tf.refine.exact_substrings import marked_windows_in_memory  # noqa: E402
from rw_tf.refine.minhash import MinHashConfig, cluster_roots, duplicates_in_memory, shingle_hashes  # noqa: E402
from rw_tf.refine.text import token_spans  # noqa: E402

LEVELS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.3)


def base_documents():
    """Lee news articles of 100 to 300 words, without the corpus's own near-duplicates (a story
    repeated in it would be a duplicate pair nobody planted)."""
    texts, kept = [], []
    for name in ("lee_background.cor", "lee.cor"):
        with open(os.path.join(lee_data_dir(), name), encoding="latin-1") as f:
            texts += [line.strip() for line in f if 100 <= len(line.split()) <= 300]
    for text in texts:
        shingles = set(shingle_hashes(text, 5).tolist())
        if all(len(shingles & other) / len(shingles | other) < 0.3 for _, other in kept):
            kept.append((text, shingles))
    return [text for text, _ in kept]


def edited_copy(text, target, rng, vocabulary):
    """``text`` with random words replaced (binary search on how many) until the exact Jaccard of
    the shingle sets is closest to ``target``."""
    words = text.split()
    order = rng.sample(range(len(words)), len(words))
    shingles = set(shingle_hashes(text, 5).tolist())
    best = (text, 1.0)
    low, high = 0, len(words)
    while low <= high:
        middle = (low + high) // 2
        changed = list(words)
        for i in order[:middle]:
            changed[i] = rng.choice(vocabulary)
        other = set(shingle_hashes(" ".join(changed), 5).tolist())
        similarity = len(shingles & other) / len(shingles | other)
        if abs(similarity - target) < abs(best[1] - target):
            best = (" ".join(changed), similarity)
        if similarity > target:
            low = middle + 1
        else:
            high = middle - 1
    return best


def minhash_quality(args):
    rng = random.Random(args.seed)
    texts = base_documents()
    rng.shuffle(texts)
    vocabulary = sorted({w for t in texts for w in t.split() if w.isalpha()})
    ids, docs, level_of = [], [], {}
    needed = args.pairs_per_level * len(LEVELS)
    if len(texts) < needed:
        raise SystemExit(f"only {len(texts)} distinct base documents for {needed} pairs: lower --pairs-per-level")
    for n, text in enumerate(texts[:needed]):
        target = LEVELS[n % len(LEVELS)]
        copy, _ = edited_copy(text, target, rng, vocabulary) if target < 1.0 else (text, 1.0)
        ids += [f"{n:04d}a", f"{n:04d}b"]
        docs += [text, copy]
        level_of[(f"{n:04d}a", f"{n:04d}b")] = target
    config = MinHashConfig(bands=args.bands, rows=args.rows)
    started = time.perf_counter()
    removed = duplicates_in_memory(ids, docs, config)
    seconds = time.perf_counter() - started
    # Brute force: the exact Jaccard similarity of every pair of documents.
    sets = [set(shingle_hashes(d, 5).tolist()) for d in docs]
    exact = {}
    for i, j in itertools.combinations(range(len(docs)), 2):
        union = len(sets[i] | sets[j])
        exact[(ids[i], ids[j])] = len(sets[i] & sets[j]) / union if union else 1.0
    roots = cluster_roots(removed.items())
    predicted = {pair for pair in exact if roots.get(pair[0], pair[0]) == roots.get(pair[1], pair[1])
                 and (pair[0] in roots or pair[1] in roots)}
    print(f"MinHash {args.bands} x {args.rows}, 5-gram shingles: {len(docs)} documents, {len(exact):,} pairs "
          f"compared by brute force, {seconds:.1f} s to deduplicate; {len(predicted)} pairs predicted")
    for threshold in sorted({args.threshold, 0.75, 0.7}, reverse=True):
        truth = {pair for pair, similarity in exact.items() if similarity >= threshold}
        hits = len(predicted & truth)
        print(f"  true duplicates = exact Jaccard >= {threshold:.2f}: {len(truth):>4} pairs; precision "
              f"{hits / max(1, len(predicted)):.3f}, recall {hits / max(1, len(truth)):.3f}")
    by_level = collections.defaultdict(list)
    for pair, target in level_of.items():
        by_level[target].append((exact[pair], pair in predicted))
    print(f"  {'target J':>8} {'mean exact J':>12} {'pairs':>5} {'detected':>8} {'LSH formula':>11}")
    for target in LEVELS:
        rows = by_level[target]
        mean = sum(s for s, _ in rows) / len(rows)
        expected = sum(config.candidate_probability(s) for s, _ in rows) / len(rows)
        print(f"  {target:>8.2f} {mean:>12.3f} {len(rows):>5} {sum(d for _, d in rows) / len(rows):>8.2f} "
              f"{expected:>11.2f}")
    unrelated = [s for pair, s in exact.items() if pair not in level_of]
    print(f"  unrelated pairs: {len(unrelated):,}, largest exact Jaccard {max(unrelated):.3f}, "
          f"predicted as duplicates {len([p for p in predicted if p not in level_of])}")


def exact_substring_quality(args):
    rng = random.Random(args.seed)
    words = sorted({w for t in base_documents() for w in t.split()})
    spans = {n: rng.sample(words, n) for n in (30, 50, 51, 60, 120)}
    texts = {}
    for d in range(40):
        parts = [rng.sample(words, rng.randint(20, 80))]
        for n in rng.sample(sorted(spans), 2):
            parts += [spans[n], rng.sample(words, rng.randint(5, 30))]
        texts[f"d{d:02d}"] = " ".join(w for part in parts for w in part)
    started = time.perf_counter()
    marks = marked_windows_in_memory(texts, args.max_shared_tokens)
    seconds = time.perf_counter() - started
    window = args.max_shared_tokens + 1
    tokens = {d: [t[a:b] for a, b in token_spans(t)] for d, t in texts.items()}
    seen, brute = set(), collections.defaultdict(set)
    for d in sorted(texts):
        for i in range(len(tokens[d]) - window + 1):
            gram = tuple(tokens[d][i:i + window])
            if gram in seen:
                brute[d].add(i)
            seen.add(gram)
    marked = sum(len(v) for v in marks.values())
    print(f"Exact substrings (spans of more than {args.max_shared_tokens} tokens): {len(texts)} documents, "
          f"{sum(map(len, tokens.values())):,} tokens; {marked} windows marked in {seconds:.2f} s; "
          f"brute force marks {sum(len(v) for v in brute.values())}; identical: {dict(brute) == marks}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs-per-level", type=int, default=20)
    parser.add_argument("--bands", type=int, default=450)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--max-shared-tokens", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    minhash_quality(args)
    exact_substring_quality(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
