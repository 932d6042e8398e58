"""Peak memory and time of ``rw_tf.data.images.decode_images`` on large images vs. scaling before resizing.

    .venv/bin/python benchmarks/image_decode_memory.py [--side 6000] [--images 1 16]

Each row runs in a fresh process (peak resident memory, ``VmHWM``, is per process): a traced
``decode_images`` to 32 x 32 over a batch of ``--images`` PNGs of ``--side`` x ``--side`` zeros
(105 KB each at 6,000: what a request of a few hundred KB can ask a served model to decode).
Peer: the same function with the previous order, ``resize(cast(pixels) / 255)``, which holds a
second full-size float copy of each image.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, re, sys, time
import tensorflow as tf
import rw_tf.data.images as images
side, count, order = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if order == "scale_then_resize":
    def decode(data, size):
        pixels = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        pixels.set_shape([None, None, 3])
        scaled = tf.cast(pixels, tf.float32) / 255.0
        return tf.clip_by_value(tf.image.resize(scaled, [size, size], antialias=True), 0.0, 1.0)
    images._checked_decode = lambda data, size, max_pixels, max_bytes: decode(data, size)
png = tf.io.encode_png(tf.zeros([side, side, 3], tf.uint8)).numpy()
fn = tf.function(lambda b: images.decode_images(b, size=32), input_signature=[tf.TensorSpec([None], tf.string)])
fn(tf.constant([tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()]))   # traced and warm
before = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
start = time.perf_counter()
fn(tf.constant([png] * count))
seconds = time.perf_counter() - start
after = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"seconds": seconds, "peak_growth_mb": (after - before) / 1024, "png_bytes": len(png)}))
"""


def run(side: int, count: int, order: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(side), str(count), order], capture_output=True, text=True,
                         check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=6000)
    parser.add_argument("--images", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    print(f"{'images':>6s} {'order':22s} {'seconds':>8s} {'peak growth MB':>15s}")
    for count in args.images:
        peer, ours = run(args.side, count, "scale_then_resize"), run(args.side, count, "resize_then_scale")
        for name, row in (("scale, then resize", peer), ("resize, then scale", ours)):
            print(f"{count:6d} {name:22s} {row['seconds']:8.2f} {row['peak_growth_mb']:15.0f}")
        print(f"{'':6s} {'ratio (ours/peer)':22s} {ours['seconds'] / peer['seconds']:7.2f}x "
              f"{ours['peak_growth_mb'] / max(peer['peak_growth_mb'], 1):14.2f}x")


if __name__ == "__main__":
    main()
