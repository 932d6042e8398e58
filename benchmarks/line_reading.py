"""Bounded line reading vs. Python's file iteration, ``.jsonl.gz`` decompression vs. Beam's, and
``rw-tf embed``'s memory vs. input size.

    .venv/bin/python benchmarks/line_reading.py [--lines 1000000] [--long-line-mb 200] [--bomb-mb 512]

Rows 1-2: lines/s and peak traced memory of ``rw_tf.data.lines.bounded_lines`` and of iterating
the file object (the peer: what the readers did before), over a JSON Lines file of ordinary rows
and over a file whose middle line is ``--long-line-mb`` MB long. Then the same bounded reader over
``.jsonl.gz`` files opened with Beam's ``FileSystems``: inflated by ``rw_tf.data.lines.decompressed``
(Python's gzip) vs. Beam's ``CompressionTypes.GZIP`` (the peer: what ``rw-tf refine`` did before),
on the rows compressed and on ``--bomb-mb`` MB of 4 MB lines that compress to under 1 MB. Then
the rows as gzip, bzip2 and xz files read through ``open_input(decompress=True)`` (the format told
by the first bytes) against the standard module's ``open`` (the peer). Then ``rw-tf embed --input``
peak traced memory for 10x and 100x more lines (a SavedModel that embeds a text as its length, so
only the reading and writing are measured). Memory is what ``tracemalloc`` sees (Python and NumPy).
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import os
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from apache_beam.io.filesystem import CompressionTypes  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

from rw_tf.cli.main import main as rw_tf_main  # noqa: E402
from rw_tf.data.lines import bounded_lines, decompressed, open_input  # noqa: E402


def measure(fn, *args):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def count_file_iteration(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def count_bounded(path):
    with open(path, "rb") as f:
        return sum(1 for _ in bounded_lines(f))


def count_beam_gzip(path):
    with FileSystems.open(path, compression_type=CompressionTypes.GZIP) as f:
        return sum(1 for _ in bounded_lines(f))


def count_python_gzip(path):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        return sum(1 for _ in bounded_lines(decompressed(raw, path)))


def count_module_open(module, path):
    with module.open(path, "rb") as f:
        return sum(1 for _ in bounded_lines(f))


def count_open_input(path):
    with open_input(path, decompress=True) as f:
        return sum(1 for _ in bounded_lines(f))


def compare(name, path, readers):
    """Best of three runs of each reader on ``path``; prints a row each and the ratio of the second
    (ours) to the first (the peer)."""
    results = []
    for reader, fn in readers:
        best = None
        for _ in range(3):
            n, seconds, peak = measure(fn, path)
            best = (n, seconds, peak) if best is None or seconds < best[1] else best
        results.append(best)
        n, seconds, peak = best
        print(f"{name:32s} {reader:18s} {n:9d} {seconds:8.3f} {n / seconds:11.0f} {peak / 1e6:8.1f}")
    (_, s_peer, m_peer), (_, s_ours, m_ours) = results
    print(f"{'':32s} {'ratio (ours/peer)':18s} {'':9s} {s_ours / s_peer:7.2f}x {'':11s} {m_ours / m_peer:7.3f}x")


class LengthEmbedder(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, text):
        length = tf.cast(tf.strings.length(text), tf.float32)
        return {"embedding": tf.stack([length, -length], axis=1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--long-line-mb", type=int, default=200)
    parser.add_argument("--bomb-mb", type=int, default=512)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rw_tf_line_bench_")
    rows = os.path.join(work, "rows.jsonl")
    with open(rows, "w") as f:
        for i in range(args.lines):
            f.write(json.dumps({"text": f"text number {i} " + "w" * (i % 200), "label": i % 3}) + "\n")
    long_file = os.path.join(work, "long.txt")
    with open(long_file, "wb") as f:
        f.write(b"before\n")
        for _ in range(args.long_line_mb):
            f.write(b"x" * 1_000_000)
        f.write(b"\nafter\n")
    print(f"{'input':32s} {'reader':18s} {'lines':>9s} {'seconds':>8s} {'lines/s':>11s} {'peak MB':>8s}")
    for name, path in ((f"{args.lines} JSON rows", rows), (f"one {args.long_line_mb} MB line", long_file)):
        compare(name, path, (("file iteration", count_file_iteration), ("bounded_lines", count_bounded)))
    rows_gz, bomb = rows + ".gz", os.path.join(work, "bomb.jsonl.gz")
    with open(rows, "rb") as f, gzip.open(rows_gz, "wb") as out:
        out.write(f.read())
    with gzip.open(bomb, "wb") as out:
        for _ in range(args.bomb_mb // 4):
            out.write(b"x" * (4 << 20) + b"\n")
    print(f"\n.jsonl.gz ({os.path.getsize(rows_gz) / 1e6:.1f} MB and {os.path.getsize(bomb) / 1e6:.1f} MB on disk)")
    for name, path in ((f"{args.lines} JSON rows, gzip", rows_gz), (f"{args.bomb_mb} MB of 4 MB lines, gzip", bomb)):
        compare(name, path, (("Beam GZIP", count_beam_gzip), ("Python gzip", count_python_gzip)))
    # Text inputs opened with decompress=True (told by their first bytes) against the standard
    # module opened by name (the peer: what a reader that knew the format would do).
    print("\ncompressed text inputs: the same rows, each format")
    for kind, module in (("gzip", gzip), ("bzip2", bz2), ("xz", lzma)):
        packed = os.path.join(work, f"rows.{kind}")
        with open(rows, "rb") as f, module.open(packed, "wb") as out:
            out.write(f.read())
        compare(f"{args.lines} JSON rows, {kind}", packed,
                ((f"{module.__name__}.open", lambda path, m=module: count_module_open(m, path)),
                 ("open_input", count_open_input)))
    model = os.path.join(work, "model")
    module = LengthEmbedder()
    tf.saved_model.save(module, os.path.join(model, "1"), signatures={"embed_text": module.embed_text})
    print(f"\n{'rw-tf embed --input':32s} {'':18s} {'lines':>9s} {'seconds':>8s} {'lines/s':>11s} {'peak MB':>8s}")
    for n in (args.lines // 100, args.lines // 10, args.lines):
        texts = os.path.join(work, f"texts_{n}.txt")
        with open(texts, "w") as f:
            f.writelines(f"text number {i}\n" for i in range(n))
        argv = ["embed", "--model", model, "--input", texts, "--output", texts + ".npy", "--batch-size", "512"]
        code, seconds, peak = measure(rw_tf_main, argv)
        assert code == 0
        print(f"{'':32s} {'':18s} {n:9d} {seconds:8.3f} {n / seconds:11.0f} {peak / 1e6:8.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
