"""Text extraction bounded in time and memory (``rw_tf.refine.extraction.BoundedExtractor``:
trafilatura in a child process, killed after ``--timeout`` seconds on one page or past
``--memory-mb`` of resident memory) vs. trafilatura called in-process, as the refinement did before,
in one run: time over the pages of the embedded web sample; time and outcome on pages whose markup
trafilatura's parsers are quadratic in; time, peak memory and outcome on a page of ``<br>`` tags.

    .venv/bin/python benchmarks/bounded_extraction.py [--timeout 10] [--attributes 100000] [--repeat 3]
        [--memory-mb 1024] [--line-breaks 1600000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rw_tf.refine import extraction  # noqa: E402
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


# The peer: trafilatura in a fresh process of its own, so that its peak resident memory is the page's.
_IN_PROCESS = ("import importlib.util, resource, sys, time\n"
               "spec = importlib.util.spec_from_file_location('x', sys.argv[1])\n"
               "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
               "html = sys.stdin.read(); start = time.perf_counter(); text = module.extract_text(html)\n"
               "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, bool(text))\n")


def in_process_peak(html: str):
    """(seconds, peak resident MB, whether text came out) of trafilatura on ``html`` in a fresh process."""
    child = subprocess.Popen([sys.executable, "-c", _IN_PROCESS, extraction.__file__], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    seconds, peak_kb, text = child.communicate(html)[0].split()
    return float(seconds), int(peak_kb) / 1024, text == "True"


def bounded_peak(bounded: BoundedExtractor, html: str):
    """(seconds, peak resident MB of the child, outcome), the child's peak sampled every 5 ms."""
    bounded.extract("<html></html>")
    pid, peak, done = bounded.pid, [0], threading.Event()

    def watch():
        while not done.wait(0.005):
            peak[0] = max(peak[0], extraction.resident_bytes(pid))
    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    _, outcome = bounded.extract(html)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    return seconds, peak[0] / 2**20, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--attributes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--line-breaks", type=int, default=1_600_000, help="<br> tags of the memory page (8 MiB)")
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
    html = "<html><body><article>" + "w<br>" * args.line_breaks + "</article></body></html>"
    seconds, peak, text = in_process_peak(html)
    ours = bounded_peak(BoundedExtractor(timeout_seconds=3600, memory_mb=args.memory_mb), html)
    print(f"\n| page | extraction | seconds | peak resident MB | outcome |\n|---|---|---|---|---|\n"
          f"| {args.line_breaks:,} line breaks, {len(html) / 2**20:.1f} MiB | in-process (peer) | {seconds:.1f} | "
          f"{peak:,.0f} | {'text' if text else 'no text'} |\n"
          f"| | bounded, {args.memory_mb:,} MB | {ours[0]:.1f} ({ours[0] / seconds:.2f}x) | {ours[1]:,.0f} "
          f"({ours[1] / peak:.2f}x) | {ours[2]} |")


if __name__ == "__main__":
    main()
