"""``rw-tf embed``: sentence embeddings of texts or a file from an exported model.

The model is an export folder (``export/1``), a folder of numbered versions (a Pusher output:
the newest is used) or a TFX Model artifact. The signature is ``embed_text`` (sentence-embedding
exports) or, failing that, ``encode_text`` (pretraining and retrieval exports). Input lines that
are empty or not UTF-8 are skipped and counted on stderr; embeddings are written as JSON Lines
(``{"text", "embedding"}``, also the default on stdout) or as a float32 ``.npy`` matrix.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, Iterator, List, Tuple

import numpy as np

from rw_tf.cli.options import utf8_text
from rw_tf.errors import UserError
from rw_tf.model_files import load_saved_model

SIGNATURES = ("embed_text", "encode_text")


def add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="sentence embeddings of texts or a file from an exported model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="export folder, folder of numbered versions or Model artifact")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", nargs="+", type=utf8_text, help="texts to embed")
    src.add_argument("--input", help="a text file, one text per line ('-': standard input)")
    p.add_argument("--output", help="FILE.jsonl or FILE.npy (default: JSON Lines on stdout)")
    p.add_argument("--signature", choices=SIGNATURES, help="default: embed_text if the export has it")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=run_embed)


def saved_model_dir(path: str) -> str:
    """The SavedModel folder of an export, of the newest numbered version, or of a Model artifact."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no model folder at {path}")
    for candidate in (path, os.path.join(path, "Format-Serving")):
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()
                       and os.path.exists(os.path.join(path, d, "saved_model.pb"))), reverse=True)
    if not versions:
        raise FileNotFoundError(f"{path} holds no saved_model.pb, directly or in numbered version folders")
    return os.path.join(path, str(versions[0]))


def read_lines(path: str, rejects: Dict[str, int]) -> Iterator[str]:
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for raw in stream:
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


def embed_all(embed, texts: List[str], batch_size: int) -> np.ndarray:
    if batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    return np.concatenate([embed(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])


def run_embed(args: argparse.Namespace) -> int:
    rejects: Dict[str, int] = {}
    texts = [t for t in args.text if t.strip()] if args.text else list(read_lines(args.input, rejects))
    if not texts:
        raise UserError(f"nothing to embed ({', '.join(f'{k}: {v}' for k, v in rejects.items()) or 'no texts'})")
    if args.output and not args.output.endswith((".jsonl", ".npy")):
        raise UserError("--output must end in .jsonl or .npy")
    embed, signature = load_embedder(args.model, args.signature)
    vectors = embed_all(embed, texts, args.batch_size)
    write_embeddings(texts, vectors, args.output)
    summary = f"embedded {len(texts)} texts ({vectors.shape[1]} dims, signature {signature})"
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(rejects.items()))
    print(summary + (f"; skipped {skipped}" if skipped else "") + (f" -> {args.output}" if args.output else ""),
          file=sys.stderr)
    return 0


def write_embeddings(texts: List[str], vectors: np.ndarray, output: str = None) -> None:
    if output and output.endswith(".npy"):
        np.save(output, vectors)
        return
    rows: Tuple = (json.dumps({"text": t, "embedding": [round(float(x), 6) for x in v]}, ensure_ascii=False)
                   for t, v in zip(texts, vectors))
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.writelines(row + "\n" for row in rows)
    else:
        for row in rows:
            print(row)
