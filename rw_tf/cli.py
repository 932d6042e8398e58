"""The ``rw-tf`` command line. Each subcommand has ``--help``.

    rw-tf vocab    --output vocab.txt [--input FILE ...] [--vocab-size N]
    rw-tf pretrain --output-dir DIR [--preset tiny|small|base] [--input FILE ...] [--epochs N] ...
    rw-tf pipeline run [--config cfg.json] [--kind pretrain|finetune|all]
    rw-tf pipeline compile --target kubeflow [--image IMAGE] [--output FILE]
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


def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run or compile the TFX pipelines")
    actions = p.add_subparsers(dest="action", required=True)
    for name, helptext in (("run", "run with LocalDagRunner (prepares data first)"),
                           ("prepare", "only write the pipelines' JSONL inputs and vocab.txt"),
                           ("compile", "compile for an orchestrator (Kubeflow Pipelines v2)")):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("--config", help="JSON file with PipelineConfig fields (see pipeline/configs.py)")
        a.add_argument("--root", help="override the config's root folder")
        a.add_argument("--kind", choices=("pretrain", "finetune", "all"), default="all")
        if name in ("run", "prepare"):
            a.add_argument("--input", dest="corpus_files", nargs="*", default=[],
                           help="text files instead of the embedded corpus")
        if name == "compile":
            a.add_argument("--target", choices=("kubeflow",), default="kubeflow")
            a.add_argument("--image", default=None, help="container image with rw-tf installed")
            a.add_argument("--pipeline-root", default="", help="e.g. gs://bucket/rw-tf (default: local root)")
            a.add_argument("--output-dir", default=".", help="where to write <pipeline>.json")
    p.set_defaults(func=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from pipeline.configs import KINDS, PipelineConfig

    overrides = {"root": args.root} if args.root else {}
    config = (PipelineConfig.from_json_file(args.config, **overrides) if args.config
              else PipelineConfig(**overrides))
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    if args.action == "prepare":
        from pipeline.prepare import prepare_data

        print(json.dumps(prepare_data(config, args.corpus_files), indent=2))
    elif args.action == "run":
        from pipeline.local_runner import run_all

        summaries = run_all(config, kinds, args.corpus_files)
        print(json.dumps(summaries, indent=2))
        return 0 if all(s["blessed"] for s in summaries.values()) else 3
    else:
        from pipeline.kubeflow_runner import DEFAULT_IMAGE, compile_kubeflow

        for kind in kinds:
            out = os.path.join(args.output_dir, f"{config.pipeline_name(kind)}.json")
            compile_kubeflow(kind, config, out, args.image or DEFAULT_IMAGE, args.pipeline_root)
            print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rw-tf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_vocab(sub)
    _add_pretrain(sub)
    _add_pipeline(sub)
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
