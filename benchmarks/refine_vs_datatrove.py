"""rw-tf's MacroData Refinement filters vs. datatrove 0.10.1 (the reference implementation) on the
same documents, in one run: keep/drop agreement per filter and documents per second of one process.

    .venv/bin/python benchmarks/refine_vs_datatrove.py [--bands 450 --rows 20] [--repeat 2]

Documents: the main text of every page of the embedded web sample (``rw_tf.refine.web_sample``:
Wikipedia articles, news, standard-library documentation, other languages, planted spam and
near-duplicates, the iana.org WARC), extracted once with rw-tf's extraction so both sides filter
the same text. Filters compared: Gopher quality, Gopher repetition, language (fastText lid.176,
score >= 0.65 for English), MinHash near-duplicates (5-grams, ``bands x rows``; datatrove's four
stages with one task vs. rw-tf's signatures, LSH buckets and clusters in memory; the signature
step is also timed alone). datatrove runs in .venv-datatrove (scripts/ensure_datatrove_env.sh):
it needs numpy >= 2. Disagreements are written to ``--details`` for inspection.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.refine.extraction import clean_text, extract_text  # noqa: E402
from rw_tf.refine.gopher import gopher_quality_reason, gopher_repetition_reason  # noqa: E402
from rw_tf.refine.language import DEFAULT_MODEL, LanguageIdentifier  # noqa: E402
from rw_tf.refine.minhash import MinHashConfig, MinHasher, duplicates_in_memory  # noqa: E402
from rw_tf.refine.pipeline import expand_inputs  # noqa: E402
from rw_tf.refine.readers import iter_records  # noqa: E402
from rw_tf.refine.web_sample import write_web_sample  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample_documents(folder: str):
    sample = write_web_sample(folder)
    docs = []
    for path in expand_inputs(sample["inputs"]):
        for kind, page in iter_records(path):
            if kind != "page":
                continue
            text = extract_text(page["html"], page["url"]) if "html" in page else clean_text(page["text"])
            if text:
                docs.append({"id": f"{len(docs):05d}", "text": text, "source": page["id"]})
    return docs


def timed(fn, docs, repeat):
    best, decisions = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        decisions = [fn(d["text"]) for d in docs]
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return best, decisions


def run_ours(docs, config: MinHashConfig, repeat: int):
    language = LanguageIdentifier(("en",), 0.65)
    language.identify("warm up the model")
    hasher = MinHasher(config)
    results = {}
    for name, fn in (("gopher_quality", gopher_quality_reason), ("gopher_repetition", gopher_repetition_reason),
                     ("language", language.reject_reason)):
        seconds, decisions = timed(fn, docs, repeat)
        results[name] = {"seconds": seconds, "decisions": decisions}
    results["minhash_signatures"] = {"seconds": timed(hasher.signature, docs, repeat)[0]}
    start = time.perf_counter()
    removed = duplicates_in_memory([d["id"] for d in docs], [d["text"] for d in docs], config)
    results["minhash"] = {"seconds": time.perf_counter() - start,
                          "decisions": ["near_duplicate" if d["id"] in removed else None for d in docs]}
    return results


def run_datatrove(docs_file: str, out: str, config: MinHashConfig, repeat: int) -> dict:
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure_datatrove_env.sh")], check=True)
    subprocess.run([os.path.join(ROOT, ".venv-datatrove", "bin", "python"),
                    os.path.join(ROOT, "benchmarks", "reference", "datatrove_filters.py"), docs_file, DEFAULT_MODEL,
                    out, "--bands", str(config.bands), "--rows", str(config.rows), "--repeat", str(repeat)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bands", type=int, default=450)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3,
                        help="both sides: best of this many passes (MinHash dedup end to end: one pass each)")
    parser.add_argument("--details", default="refine_vs_datatrove_details.json")
    args = parser.parse_args()
    config = MinHashConfig(bands=args.bands, rows=args.rows)
    work = tempfile.mkdtemp(prefix="refine-bench-")
    docs = sample_documents(os.path.join(work, "web"))
    docs_file = os.path.join(work, "docs", "docs.jsonl")
    os.makedirs(os.path.dirname(docs_file))
    with open(docs_file, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in docs))
    words = sum(len(d["text"].split()) for d in docs)
    print(f"{len(docs)} documents ({words:,} words) from the embedded web sample; MinHash {args.bands} x {args.rows}")
    ours = run_ours(docs, config, args.repeat)
    theirs = run_datatrove(docs_file, os.path.join(work, "datatrove.json"), config, args.repeat)
    rows, details = [], {}
    header = (f"{'filter':<20} {'agreement':>9} {'rw-tf drops':>11} {'datatrove drops':>15} "
              f"{'rw-tf docs/s':>12} {'datatrove docs/s':>16} {'ratio':>6}")
    print(header)
    for name in ("gopher_quality", "gopher_repetition", "language", "minhash", "minhash_signatures"):
        mine, ref = ours[name], theirs["filters"][name]
        rate_ours, rate_ref = len(docs) / mine["seconds"], len(docs) / ref["seconds"]
        if "decisions" in mine:
            same = [(a is None) == (b is None) for a, b in zip(mine["decisions"], ref["decisions"])]
            agreement = sum(same) / len(same)
            details[name] = [{"id": d["id"], "source": d["source"], "rw_tf": a, "datatrove": b,
                              "text": d["text"][:300]}
                             for d, a, b, s in zip(docs, mine["decisions"], ref["decisions"], same) if not s]
            drops = (sum(a is not None for a in mine["decisions"]), sum(b is not None for b in ref["decisions"]))
            cells = (f"{agreement:>9.2%}", f"{drops[0]:>11}", f"{drops[1]:>15}")
        else:
            agreement, cells = None, (f"{'-':>9}", f"{'-':>11}", f"{'-':>15}")
        line = (f"{name:<20} {cells[0]} {cells[1]} {cells[2]} {rate_ours:>12,.1f} {rate_ref:>16,.1f} "
                f"{rate_ours / rate_ref:>5.2f}x")
        print(line)
        rows.append({"filter": name, "agreement": agreement, "rw_tf_docs_per_s": rate_ours,
                     "datatrove_docs_per_s": rate_ref})
    with open(args.details, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "disagreements": details}, f, indent=1)
    print(f"disagreements: {args.details}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
