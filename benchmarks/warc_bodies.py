"""Reading WARC response bodies sent with HTTP's chunked transfer coding and gzip content coding:
``rw_tf.refine.readers.content_stream`` (de-chunked a read at a time) vs. warcio's own
``record.content_stream()`` (the peer, which holds a whole chunk and inflates it at once), in one
run: time over the embedded web sample's pages re-encoded as chunked gzip bodies, and peak memory
(``tracemalloc``) and time on one record holding a single gzip chunk of zeros.

    .venv/bin/python benchmarks/warc_bodies.py [--bomb-mib 256] [--repeat 3]
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import tempfile
import time
import tracemalloc
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bounded_extraction import sample_pages  # noqa: E402
from warcio.archiveiterator import ArchiveIterator  # noqa: E402

from rw_tf.refine.readers import DEFAULT_MAX_PAGE_BYTES, _read_bounded, content_stream  # noqa: E402

READERS = {"warcio content_stream (peer)": lambda record: record.content_stream(),
           "rw-tf content_stream": content_stream}


def record_bytes(url: str, body: bytes) -> bytes:
    payload = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Encoding: gzip\r\n\r\n" + body)
    return (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + url.encode() + b"\r\nContent-Length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload + b"\r\n\r\n")


def chunked(data: bytes, size: int) -> bytes:
    return b"".join(b"%X\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def read_archive(data: bytes, open_body):
    """(bytes, whether past the page limit) of every record's body."""
    return [_read_bounded(open_body(record), DEFAULT_MAX_PAGE_BYTES) for record in ArchiveIterator(io.BytesIO(data))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bomb-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        pages = [page["html"].encode("utf-8") for page in sample_pages(folder)]
    archive = b"".join(record_bytes(f"http://a.example/{i}", chunked(gzip.compress(page), 8192))
                       for i, page in enumerate(pages))
    print("| records | reader | seconds | peak MB | outcome |\n|---|---|---|---|---|")
    peer_seconds = None
    for name, open_body in READERS.items():
        seconds = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            bodies = read_archive(archive, open_body)
            seconds = min(seconds, time.perf_counter() - start)
        peer_seconds = peer_seconds or seconds
        same = sum(body == page for (body, _), page in zip(bodies, pages))
        print(f"| web sample, {len(pages)} chunked gzip pages, {len(archive) / 1e6:.1f} MB | {name} | {seconds:.3f} "
              f"({seconds / peer_seconds:.2f}x) | | {same} of {len(pages)} pages as sent |")
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = (squeeze.compress(b"<p>") + b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(args.bomb_mib))
            + squeeze.flush())
    archive = record_bytes("http://a.example/bomb", b"%X\r\n%s\r\n0\r\n\r\n" % (len(bomb), bomb))
    peer_peak = None
    for name, open_body in READERS.items():
        tracemalloc.start()
        start = time.perf_counter()
        _, too_large = read_archive(archive, open_body)[0]
        seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        peer_peak = peer_peak or peak
        print(f"| one gzip chunk of {args.bomb_mib} MiB of zeros, {len(archive) / 1e6:.1f} MB | {name} | "
              f"{seconds:.2f} | {peak:,.0f} ({peak / peer_peak:.2f}x) | {'too_large' if too_large else 'read whole'} |")


if __name__ == "__main__":
    main()
