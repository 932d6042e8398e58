"""Peak memory and time of printing a large server answer: ``print_json`` vs. one ``json.dumps`` string.

    .venv/bin/python benchmarks/answer_printing.py [--numbers 1000000 15000000] [--repeat 3]

What ``rw-tf predict`` does with an answer once it has decoded it: indented JSON on standard
output (here ``/dev/null``), with the characters a terminal acts on escaped. Each row runs in a
fresh process, since peak resident memory (``VmHWM``) is per process: the answer
``{"predictions": [0.5, ...]}`` of ``--numbers`` floats is decoded first, then printed; the table
shows the peak's growth over the decoded answer. Peer: ``print(json.dumps(answer, indent=2))`` with
the same escaping, the previous way, which builds the whole text as one string.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, re, sys, time
from rw_tf.cli.streams import print_json, stdout_writes_utf8
from rw_tf.errors import escape_unprintable
numbers, way = int(sys.argv[1]), sys.argv[2]
answer = json.loads(b'{"predictions": [' + b"0.5," * (numbers - 1) + b'0.5]}')
hwm = lambda: int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
before, real_stdout = hwm(), sys.stdout
sys.stdout = open("/dev/null", "w", encoding="utf-8")
start = time.perf_counter()
if way == "print_json":
    print_json(answer, indent=2)
else:
    print(escape_unprintable(json.dumps(answer, ensure_ascii=not stdout_writes_utf8(), indent=2),
                             lambda c: json.dumps(c)[1:-1]))
seconds = time.perf_counter() - start
real_stdout.write(json.dumps({"seconds": seconds, "growth_mb": (hwm() - before) / 1024}) + "\n")
"""

WAYS = (("json.dumps, one string (peer)", "dumps"), ("print_json", "print_json"))


def run(numbers: int, way: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(numbers), way], capture_output=True, text=True,
                         check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, nargs="+", default=[1_000_000, 15_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| answer | printer | seconds | peak growth MB |")
    print("|---|---|---|---|")
    for numbers in args.numbers:
        size_mb = (len(b'{"predictions": []}') + 4 * numbers) / 2**20
        peer = None
        for label, way in WAYS:
            runs = [run(numbers, way) for _ in range(args.repeat)]
            best = {"seconds": min(r["seconds"] for r in runs), "growth_mb": min(r["growth_mb"] for r in runs)}
            if peer is None:
                peer, ratio = best, ("", "")
            else:
                ratio = (f" ({best['seconds'] / peer['seconds']:.2f}x)",
                         f" ({best['growth_mb'] / max(peer['growth_mb'], 1e-9):.3f}x)")
            answer = f"{numbers:,} numbers ({size_mb:.0f} MB of JSON)" if way == "dumps" else ""
            print(f"| {answer} | {label} | {best['seconds']:.2f}{ratio[0]} | {best['growth_mb']:.1f}{ratio[1]} |",
                  flush=True)


if __name__ == "__main__":
    main()
