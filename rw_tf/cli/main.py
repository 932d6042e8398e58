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
file holding the traceback; 141 when the reader of standard output went away (`| head`),
silently, as other Unix tools; other codes are documented by their command.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import traceback
from importlib.metadata import entry_points
from typing import Dict, List, Optional

from rw_tf.cli.embed import add_embed
from rw_tf.cli.kg import add_kg
from rw_tf.cli.recipe import add_recipe
from rw_tf.cli.refine import add_refine
from rw_tf.cli.streams import (
    READER_GONE_EXIT,
    discard_standard_output,
    prepare_standard_streams,
    say,
    stdout_reader_gone,
)
from rw_tf.cli.train import add_finetune, add_pretrain
from rw_tf.cli.vocab import add_vocab
from rw_tf.errors import UserError, runtime_user_error
from rw_tf.path_checks import not_utf8

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
    """Writes the traceback being handled to a log file and returns its path: in ``log_dir()``, or
    the temporary folder when that cannot be written (a failure report must not fail too)."""
    name = f"rw-tf-{command}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (log_dir, tempfile.gettempdir):
        try:
            path = os.path.join(folder(), name)
            with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"rw-tf {' '.join(sys.argv[1:])}\n\n")
                traceback.print_exc(file=f)
            return path
        except OSError:
            continue
    return "nowhere: no log folder could be written (set RW_TF_LOG_DIR)"


# Options where an empty value means something: no Beam arguments, every network interface; blank
# texts are skipped and counted. Everywhere else "" is an unset shell variable
# ("--output-dir $OUT"), which the commands took for "not given" (a default root, a learned
# vocabulary instead of --vocab-file) or for the current folder (a model named "." served from it).
MAY_BE_EMPTY = frozenset({"pipeline_args", "host", "text", "texts"})


def _argument_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Dict[str, str]:
    """How the user wrote each destination of the command given: its first flag, or a positional's
    metavar (subcommands name a destination differently: ``--input`` is ``corpus_files`` here)."""
    names: Dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None))
            names.update(_argument_names(chosen, args) if chosen is not None else {})
        else:
            names[action.dest] = action.option_strings[0] if action.option_strings else action.metavar or action.dest
    return names


def refuse_unusable_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuses arguments that are not UTF-8 (paths too: TensorFlow's file system takes UTF-8 paths,
    and a path that is not fails every output naming it, after the work is done), and empty ones
    where an empty value means nothing (``MAY_BE_EMPTY``)."""
    for dest, value in vars(args).items():
        for text in value if isinstance(value, (list, tuple)) else [value]:
            reason = isinstance(text, str) and not_utf8(text)
            if reason:
                raise UserError(f"argument {reason}", hint="rename the file or folder; rw-tf reads every argument "
                                                           "as UTF-8")
            if text == "" and dest not in MAY_BE_EMPTY:
                name = _argument_names(parser, args).get(dest, dest)
                what = "has an empty value" if isinstance(value, (list, tuple)) else "is empty"
                raise UserError(f"{name} {what}", hint="give a value (is a shell variable unset?)")


def report_failure(command: str, err: Exception) -> int:
    """Prints what went wrong and returns the exit code (the module docstring lists them)."""
    if isinstance(err, BrokenPipeError) and stdout_reader_gone():   # `rw-tf embed ... | head`
        discard_standard_output()
        return READER_GONE_EXIT
    known = err if isinstance(err, USER_ERRORS) else runtime_user_error(err)
    if known is not None:
        say(f"rw-tf {command}: error: {known}")
        return 2
    path = write_traceback(command)
    say(f"rw-tf {command}: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        f"\n  the traceback is in {path}")
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    prepare_standard_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        refuse_unusable_arguments(args, parser)
        code = args.func(args)
        sys.stdout.flush()   # in here: a reader that left shows up on the last write
        return code
    except KeyboardInterrupt:
        say(f"rw-tf {args.command}: interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - the user gets a short message, the log gets the traceback
        return report_failure(args.command, err)


if __name__ == "__main__":
    sys.exit(main())
