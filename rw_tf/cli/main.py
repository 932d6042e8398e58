"""The ``rw-tf`` command line. Each subcommand has ``--help``.

    rw-tf vocab     --output vocab.txt [--input FILE ...]
    rw-tf pretrain  --output-dir DIR [--preset tiny|small|base] [--input FILE ...] [--strategy ...]
    rw-tf finetune  --task classification|retrieval|qa|sentence_embedding|recommendation|image_text --output-dir DIR
    rw-tf embed     --model EXPORT_DIR (--text TEXT ... | --input FILE) [--output FILE.jsonl|.npy]
    rw-tf recipe    --output-dir DIR [--seeds 0 1 2]   (the three-stage recipe and its ablation table)
    rw-tf kg        train|eval ...
    rw-tf refine    INPUT... OUTPUT [--runner direct|dask|beam]   (web pages -> refined corpus, RefinedWeb's MDR)
and, from the packages that register command groups (entry points ``rw_tf.cli``):
    rw-tf pipeline  run|prepare|compile ...           (rw_tf_pipeline: the TFX pipelines)
    rw-tf serve | predict | serving-config ...         (rw_tf_serving: TF Serving)

Exit codes: 0 success; 2 a user error (bad option, missing file, unreachable workers or server),
printed on one line with a hint; 1 an unexpected failure, printed briefly with the path of a log
file holding the traceback; other codes are documented by their command.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import traceback
from importlib.metadata import entry_points
from typing import List, Optional

from rw_tf.cli.embed import add_embed
from rw_tf.cli.kg import add_kg
from rw_tf.cli.recipe import add_recipe
from rw_tf.cli.refine import add_refine
from rw_tf.cli.train import add_finetune, add_pretrain
from rw_tf.cli.vocab import add_vocab
from rw_tf.errors import UserError, runtime_user_error

PLUGIN_GROUP = "rw_tf.cli"  # entry points: a function taking the subparsers and adding commands
USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rw-tf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_vocab, add_pretrain, add_finetune, add_recipe, add_kg, add_embed, add_refine):
        add(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        plugin.load()(sub)
    return parser


def log_dir() -> str:
    base = os.environ.get("RW_TF_LOG_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rw-tf", "logs")
    os.makedirs(base, exist_ok=True)
    return base


def write_traceback(command: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(log_dir(), f"rw-tf-{command}-{stamp}-{os.getpid()}.log")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"rw-tf {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exc(file=f)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"rw-tf {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rw-tf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the user gets a short message, the log gets the traceback
        known = runtime_user_error(err)
        if known is not None:
            print(f"rw-tf {args.command}: error: {known}", file=sys.stderr)
            return 2
        path = write_traceback(args.command)
        print(f"rw-tf {args.command}: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
              f"\n  the traceback is in {path}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
