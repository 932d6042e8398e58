"""The ``rw-tf`` command line. Each subcommand has ``--help``.

    rw-tf vocab    --output vocab.txt [--input FILE ...] [--vocab-size N]
    rw-tf pretrain --output-dir DIR [--preset tiny|small|base] [--input FILE ...] [--epochs N] ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the terminal


def _add_vocab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="learn a WordPiece vocabulary from text files (or the embedded corpus)")
    p.add_argument("--output", required=True, help="where to write vocab.txt")
    p.add_argument("--input", nargs="*", default=[], help="UTF-8 text files; default: the embedded corpus")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--min-count", type=int, default=2, help="ignore words seen fewer times")
    p.add_argument("--no-lower-case", dest="lower_case", action="store_false",
                   help="keep case and accents (cased vocabulary)")
    p.set_defaults(func=_run_vocab)


def _run_vocab(args: argparse.Namespace) -> int:
    from rw_tf.data.corpus import embedded_corpus, read_text_files
    from rw_tf.tokenization import learn_vocabulary, write_vocabulary

    docs = read_text_files(args.input) if args.input else embedded_corpus()
    vocab = learn_vocabulary((s for d in docs for s in d), args.vocab_size, lower_case=args.lower_case,
                             min_count=args.min_count)
    write_vocabulary(vocab, args.output)
    print(f"wrote {len(vocab)} tokens learned from {len(docs)} documents to {args.output}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from rw_tf.config import ENCODER_PRESETS
    from rw_tf.training.pretrain import PretrainRunConfig
    from rw_tf.training.strategy import STRATEGIES

    p = sub.add_parser("pretrain", help="pretrain an encoder (MLM + NSP + SOP) with Keras fit")
    defaults = PretrainRunConfig(output_dir="")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--preset", choices=sorted(ENCODER_PRESETS), default=defaults.preset)
    p.add_argument("--input", dest="corpus_files", nargs="*", default=[],
                   help="UTF-8 text files (documents separated by '---' lines or two blank lines); "
                        "default: the embedded corpus (Python's own documentation)")
    p.add_argument("--vocab-file", help="use this vocabulary instead of learning one")
    p.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy)
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--whole-word-masking", action="store_true")
    p.add_argument("--no-lower-case", dest="lower_case", action="store_false")
    for field in ("max_documents", "vocab_size", "target_words", "max_sequence_length",
                  "max_predictions_per_seq", "batch_size", "epochs", "steps_per_epoch", "eval_batches",
                  "warmup_steps", "seed"):
        default = getattr(defaults, field)
        p.add_argument("--" + field.replace("_", "-"), type=int, default=default,
                       help=f"default: {default}")
    for field in ("learning_rate", "weight_decay", "nsp_weight", "sop_weight", "eval_fraction"):
        default = getattr(defaults, field)
        p.add_argument("--" + field.replace("_", "-"), type=float, default=default, help=f"default: {default}")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from rw_tf.training.pretrain import PretrainRunConfig, run_pretraining

    fields = {f.name for f in dataclasses.fields(PretrainRunConfig)}
    config = PretrainRunConfig(**{k: v for k, v in vars(args).items() if k in fields})
    result = run_pretraining(config)
    first, last = result["initial_eval"], result["final_eval"]
    print(json.dumps({
        "model": result["model_path"], "vocab": result["vocab_path"],
        "eval_mlm_loss": {"start": first and first["mlm_loss"], "end": last["mlm_loss"]},
        "eval_mlm_accuracy": {"start": first and first["mlm_accuracy"], "end": last["mlm_accuracy"]},
        "train_seconds": round(result["train_seconds"], 1),
    }, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rw-tf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_vocab(sub)
    _add_pretrain(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError) as err:
        # User errors get one clear line, not a traceback.
        print(f"rw-tf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
