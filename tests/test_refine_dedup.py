"""Deduplication against brute force: exact-substring removal against an exhaustive search of
repeated token windows, MinHash decisions against exact Jaccard similarities and the LSH formula."""
import random

import pytest

from rw_tf.refine.exact_substrings import marked_windows_in_memory, remove_marked, window_keys
from rw_tf.refine.minhash import (
    MinHashConfig,
    MinHasher,
    cluster_roots,
    duplicates_in_memory,
    jaccard,
    shingle_hashes,
)
from rw_tf.refine.text import token_spans

# Letters only: MinHash's normalisation folds digits (w1 and w2 would be the same word).
_LETTERS = random.Random(0)
WORDS = sorted({"".join(_LETTERS.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(6000)})


def brute_force_marks(texts, window):
    """Every window (doc, start) whose tokens occur at an earlier (doc, start) in id order."""
    tokens = {d: [texts[d][a:b] for a, b in token_spans(texts[d])] for d in texts}
    occurrences = [(d, i, tuple(tokens[d][i:i + window])) for d in sorted(texts)
                   for i in range(len(tokens[d]) - window + 1)]
    marks = {}
    for n, (d, i, gram) in enumerate(occurrences):
        if any(other == gram for _, _, other in occurrences[:n]):
            marks.setdefault(d, set()).add(i)
    return marks, tokens


def test_exact_substring_marks_equal_brute_force_and_spare_spans_of_50_tokens():
    rng = random.Random(1)
    fresh = lambda n: rng.sample(WORDS, n)  # noqa: E731
    shared = {length: fresh(length) for length in (30, 50, 51, 70)}
    texts = {
        "a": " ".join(fresh(20) + shared[50] + fresh(10) + shared[51] + fresh(15) + shared[70]),
        "b": " ".join(shared[51] + fresh(40) + shared[50]),
        "c": " ".join(fresh(5) + shared[70][10:] + fresh(5) + shared[30]),      # a 60-token part of the 70
        "d": " ".join(shared[30] + fresh(60) + shared[30]),
        "e": " ".join(fresh(10) + shared[70] + fresh(3) + shared[70]),          # repeated inside one document
    }
    marks = marked_windows_in_memory(texts, max_shared_tokens=50)
    expected, tokens = brute_force_marks(texts, 51)
    assert marks == expected
    after = {d: remove_marked(texts[d], marks.get(d, ()), 51) for d in texts}
    # The removed tokens are exactly those covered by marked windows (brute force, token by token).
    for d in texts:
        covered = {i for start in expected.get(d, ()) for i in range(start, start + 51)}
        kept = [t for i, t in enumerate(tokens[d]) if i not in covered]
        assert after[d].split() == kept
    assert " ".join(shared[51]) in after["a"] and " ".join(shared[51]) not in after["b"]   # first copy kept
    assert " ".join(shared[50]) in after["b"]             # 50 shared tokens: not "more than 50"
    assert " ".join(shared[30]) in after["d"]             # 30 tokens twice: kept
    assert " ".join(shared[70][10:]) not in after["c"]
    assert shared[70][0] not in after["e"].split()        # both copies in "e" come after the one in "a"


def test_window_keys_are_content_addressed():
    text = " ".join(WORDS[:60])
    keys = dict((start, key) for key, start in window_keys(text, 51))
    assert len(keys) == 10 and len(set(keys.values())) == 10
    moved = dict((start, key) for key, start in window_keys("x y " + text, 51))
    assert moved[2] == keys[0]


def test_remove_marked_keeps_line_structure():
    text = "intro line\n" + " ".join(WORDS[:60]) + "\nlast line"
    assert remove_marked(text, [1], 1) == "intro\n" + " ".join(WORDS[:60]) + "\nlast line"
    starts = range(2, 2 + 60 - 50)
    assert remove_marked(text, starts, 51) == "intro line\nlast line"


def near_duplicate(text: str, target: float, rng: random.Random):
    """A copy of ``text`` with words replaced until the exact Jaccard of the 5-gram sets reaches ``target``."""
    words = text.split()
    positions = list(range(len(words)))
    rng.shuffle(positions)
    for replaced in range(len(words)):
        changed = list(words)
        for i in positions[:replaced]:
            changed[i] = rng.choice(WORDS)
        if jaccard(text, " ".join(changed)) <= target:
            return " ".join(changed)
    raise AssertionError("unreachable")


def test_minhash_estimates_jaccard_and_lsh_follows_its_formula():
    rng = random.Random(5)
    config = MinHashConfig()
    hasher = MinHasher(config)
    ids, texts, pairs = [], [], []
    for n in range(60):
        target = [0.95, 0.9, 0.85, 0.5, 0.4, 0.2][n % 6]
        original = " ".join(rng.sample(WORDS, 200))
        copy = near_duplicate(original, target, rng)
        ids += [f"{n:03d}a", f"{n:03d}b"]
        texts += [original, copy]
        pairs.append((f"{n:03d}a", f"{n:03d}b", jaccard(original, copy)))
    # The signature agreement rate estimates the Jaccard similarity (9,000 functions: sd < 0.006).
    for (_, _, similarity), i in zip(pairs[:12], range(0, 24, 2)):
        agree = float((hasher.signature(texts[i]) == hasher.signature(texts[i + 1])).mean())
        assert agree == pytest.approx(similarity, abs=0.025)
    removed = duplicates_in_memory(ids, texts, config)
    # Brute force over every pair of documents: only the planted pairs are similar at all.
    exact = {(ids[i], ids[j]): jaccard(texts[i], texts[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))}
    assert max(v for (x, y), v in exact.items() if x[:3] != y[:3]) < 0.05
    for a, b, similarity in pairs:
        probability = config.candidate_probability(similarity)
        found = removed.get(b) == a
        if probability > 0.999:
            assert found, (a, similarity)
        if probability < 0.001:
            assert not found and b not in removed, (a, similarity)
    assert set(removed.values()) <= {a for a, _, _ in pairs}      # the smaller id of each pair survives


def test_clusters_are_transitive_and_keep_the_smallest_id():
    roots = cluster_roots([("c", "d"), ("b", "c"), ("x", "y"), ("a", "d"), ("y", "z")])
    assert roots == {"a": "a", "b": "a", "c": "a", "d": "a", "x": "x", "y": "x", "z": "x"}
    # a ~ b and b ~ c but a !~ c: one cluster all the same; only "a" survives.
    rng = random.Random(2)
    base = rng.sample(WORDS, 300)
    a = " ".join(base)
    b = " ".join(base[:150] + rng.sample(WORDS, 3) + base[153:])
    c = " ".join(base[:150] + rng.sample(WORDS, 3) + base[153:290] + rng.sample(WORDS, 40))
    assert jaccard(a, b) > 0.9 and jaccard(b, c) > 0.8
    removed = duplicates_in_memory(["a", "b", "c"], [a, b, c])
    assert removed == {"b": "a", "c": "a"}


def test_short_and_empty_documents():
    assert shingle_hashes("", 5).size == 0
    assert shingle_hashes("one two", 5).size == 1          # fewer words than n: one shingle
    assert MinHasher().text_band_keys("   ") == []
    assert duplicates_in_memory(["a", "b"], ["one two", "one two"]) == {"b": "a"}
