"""``rw-tf embed``: sentence embeddings of texts or a file from an exported model.

The model is an export folder (``export/1``), a folder of numbered versions (a Pusher output:
the newest is used) or a TFX Model artifact. The signature is ``embed_text`` (sentence-embedding
exports) or, failing that, ``encode_text`` (pretraining and retrieval exports). Input lines that
are empty, not UTF-8 or longer than 8 MiB are skipped and counted on stderr; embeddings are written
as JSON Lines (``{"text", "embedding"}``, also the default on stdout) or as a float32 ``.npy``
matrix. Input is read, embedded and written batch by batch: memory does not grow with its size.
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np

from rw_tf.atomic_write import partial_path
from rw_tf.cli.options import utf8_text
from rw_tf.cli.streams import require_standard_input, require_standard_output, stdout_writes_utf8
from rw_tf.data.lines import bounded_lines, open_input
from rw_tf.errors import UserError
from rw_tf.model_files import load_saved_model, version_folders
from rw_tf.path_checks import require_inputs_outside

SIGNATURES = ("embed_text", "encode_text")


# A batch's texts are held together (each up to MAX_LINE_BYTES): an unbounded --batch-size would read
# the whole --input into memory, which streaming it exists to avoid. 4,096: a served model's --max-texts.
MAX_TEXTS_PER_CALL = 4096


def add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="sentence embeddings of texts or a file from an exported model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="export folder, folder of numbered versions or Model artifact")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", nargs="+", type=utf8_text, help="texts to embed")
    src.add_argument("--input", help="a text file, one text per line ('-': standard input)")
    p.add_argument("--output", help="FILE.jsonl or FILE.npy (default: JSON Lines on stdout)")
    p.add_argument("--signature", choices=SIGNATURES, help="default: embed_text if the export has it")
    p.add_argument("--batch-size", type=int, default=64,
                   help=f"texts per call, 1 to {MAX_TEXTS_PER_CALL:,} (default: 64)")
    p.set_defaults(func=run_embed)


def saved_model_dir(path: str) -> str:
    """The SavedModel folder of an export, of the newest numbered version, or of a Model artifact."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no model folder at {path}")
    for candidate in (path, os.path.join(path, "Format-Serving")):
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    versions = version_folders(path)
    if not versions:
        raise FileNotFoundError(f"{path} holds no saved_model.pb, directly or in numbered version folders")
    return os.path.join(path, versions[max(versions)])


def read_lines(path: str, rejects: Dict[str, int]) -> Iterator[str]:
    """The non-empty lines of a text file ('-': standard input), read in bounded memory; lines that
    are empty, not UTF-8 or longer than ``MAX_LINE_BYTES`` are counted in ``rejects``."""
    if path == "-":
        require_standard_input()
    stream = sys.stdin.buffer if path == "-" else open_input(path, decompress=True)
    try:
        for raw, too_long in bounded_lines(stream, source="standard input" if path == "-" else path):
            if too_long:
                rejects["line_too_long"] = rejects.get("line_too_long", 0) + 1
                continue
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                rejects["invalid_utf8"] = rejects.get("invalid_utf8", 0) + 1
                continue
            if text:
                yield text
            else:
                rejects["empty_line"] = rejects.get("empty_line", 0) + 1
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def load_embedder(model_dir: str, signature: str = None):
    """``(function texts -> [n, dim] float32, signature name)`` of an export."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops the export uses

    loaded = load_saved_model(saved_model_dir(model_dir))
    names = [signature] if signature else [s for s in SIGNATURES if s in loaded.signatures]
    if not names or names[0] not in loaded.signatures:
        raise UserError(f"{model_dir} has no {' or '.join(names or SIGNATURES)} signature "
                        f"(it has {sorted(loaded.signatures)})")
    fn = loaded.signatures[names[0]]
    keys = [k for k in ("embedding", "mean_embedding") if k in fn.structured_outputs]
    if not keys:
        raise UserError(f"signature {names[0]} of {model_dir} has no embedding output "
                        f"(outputs: {sorted(fn.structured_outputs)})")
    key = keys[0]

    def embed(texts: List[str]) -> np.ndarray:
        return fn(text=tf.constant(texts))[key].numpy().astype(np.float32)

    embed.keepalive = loaded  # the concrete function needs its SavedModel object alive
    return embed, names[0]


def batches(texts: Iterable[str], size: int) -> Iterator[List[str]]:
    batch: List[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def npy_header(rows: int, dim: int) -> bytes:
    """NumPy's ``.npy`` header of a float32 ``[rows, dim]`` matrix."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
    return header.getvalue()


# NumPy pads a header to a multiple of 64 bytes, so the header of any matrix up to this size has the
# length of this one: it is reserved before the rows are known and written over at the end.
_NPY_HEADER_BYTES = len(npy_header(10 ** 15, 10 ** 6))


class EmbeddingWriter:
    """Embeddings written batch by batch, so memory does not grow with the input: JSON Lines on
    stdout, or a file written under a name of its own (``<output>.<random>.partial``, so that two
    runs writing the same output never write into one file) and renamed when complete. A ``.npy``
    declares its shape before its data: its header's bytes are reserved and filled in at the end."""

    def __init__(self, output: Optional[str]) -> None:
        self.output, self.rows, self.dim = output, 0, None
        self._npy = bool(output) and output.endswith(".npy")
        self._partial, self._file = None, None
        # Decided once, not per row: a terminal that is not UTF-8 gets \u escapes (stays JSON).
        self._ensure_ascii = not output and not stdout_writes_utf8()
        if output:
            self._partial = partial_path(output)
            # O_EXCL: never another run's file; mode 0o666 less the umask, as open() would give the output.
            self._file = os.fdopen(os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
        if self._npy:
            self._file.write(b"\0" * _NPY_HEADER_BYTES)

    def write(self, texts: List[str], vectors: np.ndarray) -> None:
        self.rows, self.dim = self.rows + len(texts), vectors.shape[1]
        if self._npy:
            self._file.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
            return
        lines = "".join(json.dumps({"text": t, "embedding": [round(float(x), 6) for x in v]},
                                   ensure_ascii=self._ensure_ascii) + "\n" for t, v in zip(texts, vectors))
        if self._file is None:
            sys.stdout.write(lines)
        else:
            self._file.write(lines.encode("utf-8"))

    def close(self) -> None:
        if self._file is None:
            sys.stdout.flush()
            return
        if self._npy:
            header = npy_header(self.rows, self.dim)
            assert len(header) == _NPY_HEADER_BYTES, "more rows than a reserved .npy header can describe"
            self._file.seek(0)
            self._file.write(header)
        self._file.close()
        os.replace(self._partial, self.output)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            os.remove(self._partial)


def run_embed(args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= MAX_TEXTS_PER_CALL:
        raise UserError(f"--batch-size must be 1 to {MAX_TEXTS_PER_CALL:,}, got {args.batch_size:,}")
    if args.output and not args.output.endswith((".jsonl", ".npy")):
        raise UserError("--output must end in .jsonl or .npy")
    if not args.output:
        require_standard_output("give --output FILE.jsonl or FILE.npy")
    elif args.input and args.input != "-":
        require_inputs_outside([args.input], [args.output], "--output replaces it")
    rejects: Dict[str, int] = {}
    texts = iter([t for t in args.text if t.strip()] if args.text else read_lines(args.input, rejects))
    first = next(texts, None)
    if first is None:
        raise UserError(f"nothing to embed ({', '.join(f'{k}: {v}' for k, v in rejects.items()) or 'no texts'})")
    embed, signature = load_embedder(args.model, args.signature)
    writer = EmbeddingWriter(args.output)
    try:
        for batch in batches(itertools.chain([first], texts), args.batch_size):
            writer.write(batch, embed(batch))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    summary = f"embedded {writer.rows} texts ({writer.dim} dims, signature {signature})"
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(rejects.items()))
    print(summary + (f"; skipped {skipped}" if skipped else "") + (f" -> {args.output}" if args.output else ""),
          file=sys.stderr)
    return 0
