"""Text extraction bounded in time (``rw_tf.refine.extraction.BoundedExtractor``: trafilatura in a
child process, killed after ``--timeout`` seconds on one page) vs. trafilatura called in-process,
as the refinement did before, in one run: time over the pages of the embedded web sample, and time
and outcome on pages whose markup trafilatura's parsers are quadratic in.

    .venv/bin/python benchmarks/bounded_extraction.py [--timeout 10] [--attributes 100000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.refine.extraction import BoundedExtractor, extract_text  # noqa: E402
from rw_tf.refine.pipeline import expand_inputs  # noqa: E402
from rw_tf.refine.readers import iter_records  # noqa: E402
from rw_tf.refine.web_sample import write_web_sample  # noqa: E402


def sample_pages(folder: str):
    return [page for path in expand_inputs(write_web_sample(folder)["inputs"])
            for kind, page in iter_records(path) if kind == "page" and "html" in page]


def hostile_pages(attributes: int):
    return {f"one tag of {attributes:,} attributes": "<html><body><p " + " ".join(
                f"a{i}='x'" for i in range(attributes)) + ">hi</p></body></html>",
            f"{attributes * 2:,} unclosed list items": "<html><body><ul>" + "<li>word " * (attributes * 2)
            + "</ul></body></html>"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--attributes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bounded = BoundedExtractor(args.timeout)
    bounded.extract("<html></html>")   # the child's start (once per worker) is not a page's cost
    with tempfile.TemporaryDirectory() as folder:
        pages = sample_pages(folder)
    size = sum(len(p["html"].encode()) for p in pages) / 1e6
    best = {"in-process (peer)": float("inf"), "bounded": float("inf")}
    for _ in range(args.repeat):
        start = time.perf_counter()
        ours = [extract_text(p["html"], p["url"]) for p in pages]
        best["in-process (peer)"] = min(best["in-process (peer)"], time.perf_counter() - start)
        start = time.perf_counter()
        theirs = [bounded.extract(p["html"], p["url"])[0] for p in pages]
        best["bounded"] = min(best["bounded"], time.perf_counter() - start)
    assert ours == theirs, "the child extracted other text"
    print("| pages | extraction | seconds | per page (ms) | outcome |\n|---|---|---|---|---|")
    for name, seconds in best.items():
        ratio = f" ({seconds / best['in-process (peer)']:.2f}x)" if name == "bounded" else ""
        print(f"| web sample, {len(pages)} pages, {size:.1f} MB | {name} | {seconds:.2f}{ratio} | "
              f"{1000 * seconds / len(pages):.1f} | same text |")
    for name, html in hostile_pages(args.attributes).items():
        start = time.perf_counter()
        text = extract_text(html)
        peer = time.perf_counter() - start
        start = time.perf_counter()
        _, outcome = bounded.extract(html)
        seconds = time.perf_counter() - start
        size = len(html.encode()) / 1e6
        print(f"| {name}, {size:.1f} MB | in-process (peer) | {peer:.1f} | | "
              f"{'text' if text else 'no text'} |")
        print(f"| | bounded, {args.timeout:g} s | {seconds:.1f} ({seconds / peer:.2f}x) | | {outcome} |")
    bounded.close()


if __name__ == "__main__":
    main()
