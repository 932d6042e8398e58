"""Loading a ``.keras`` file with rw-tf's size checks vs. ``keras.saving.load_model`` alone.

    .venv/bin/python benchmarks/keras_file_checks.py [--preset base] [--bomb-mb 256]

Row 1: seconds to load an encoder of ``--preset`` saved with ``model.save`` (best of 3), through
``rw_tf.model_files.load_keras_file`` (which first checks the declared size of every archive member
and weight) and through ``keras.saving.load_model`` (the peer: what the check adds). Rows 2-4: a
decompression bomb of ``--bomb-mb`` MB in the config, in the weights member, and as a weight whose
HDF5 chunks were never written: seconds, peak traced memory (``tracemalloc``) and the outcome.
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import tracemalloc
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402

import rw_tf  # noqa: E402
from rw_tf.model_files import load_keras_file  # noqa: E402


def rewrite(source, target, name, change, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", compression) as out:
        for member in archive.namelist():
            data = archive.read(member)
            out.writestr(member, change(data) if member == name else data)
    return target


def never_written(mb):
    def change(weights):
        buffer = io.BytesIO(weights)
        with h5py.File(buffer, "a") as f:
            names = []
            f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
            del f[names[0]]
            f.create_dataset(names[0], shape=(mb << 18,), dtype="float32", chunks=(1 << 18,))
        return buffer.getvalue()
    return change


def attempt(load, path):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load(path)
        outcome = "loaded"
    except Exception as err:  # noqa: BLE001 - the outcome is what is measured
        outcome = f"{type(err).__name__}: {str(err).split(': ', 1)[-1][:60]}"
    seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--bomb-mb", type=int, default=256)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rw_tf_keras_files_")
    encoder = rw_tf.TransformerEncoder.from_preset(args.preset, vocab_size=30522)
    encoder.build({"token_ids": (None, None)})
    intact = os.path.join(work, "encoder.keras")
    encoder.save(intact)
    small = os.path.join(work, "small.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(small)
    bombs = {
        "config.json bomb": rewrite(small, os.path.join(work, "c.keras"), "config.json",
                                    lambda b: b" " * (args.bomb_mb << 20) + b, zipfile.ZIP_DEFLATED),
        "weights member bomb": rewrite(small, os.path.join(work, "w.keras"), "model.weights.h5",
                                       lambda b: b + bytes(args.bomb_mb << 20), zipfile.ZIP_DEFLATED),
        "never-written weight": rewrite(small, os.path.join(work, "d.keras"), "model.weights.h5",
                                        never_written(args.bomb_mb)),
    }
    loaders = (("keras.saving.load_model", lambda p: keras.saving.load_model(p, compile=False)),
               ("load_keras_file", load_keras_file))
    print(f"{'file':34s} {'loader':24s} {'seconds':>8s} {'peak MB':>8s}  outcome")
    name = f"{args.preset} encoder ({os.path.getsize(intact) / 1e6:.0f} MB)"
    best = {}
    for loader, load in loaders:
        best[loader] = min((attempt(load, intact) for _ in range(3)), key=lambda r: r[0])
        seconds, peak, outcome = best[loader]
        print(f"{name:34s} {loader:24s} {seconds:8.3f} {peak / 1e6:8.1f}  {outcome}")
    print(f"{'':34s} {'ratio (ours/peer)':24s} "
          f"{best['load_keras_file'][0] / best['keras.saving.load_model'][0]:7.3f}x")
    for name, path in bombs.items():
        label = f"{name} ({os.path.getsize(path) / 1e3:.0f} KB)"
        for loader, load in loaders:
            seconds, peak, outcome = attempt(load, path)
            print(f"{label:34s} {loader:24s} {seconds:8.3f} {peak / 1e6:8.1f}  {outcome}")


if __name__ == "__main__":
    main()
