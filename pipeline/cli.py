"""``rw-tf pipeline run|prepare|compile`` (registered through the ``rw_tf.cli`` entry point).

``run`` prints one line per TFX component as it starts and finishes and ends with a summary table
(blessed, gate metric and bound, pushed version and path, rejected input lines); library logs
(TensorFlow, absl, Beam, MLMD) go to ``<root>/logs/run-<time>.log`` unless ``--verbose``. The
summary is also written to ``<root>/run_summary.json``. Exit code 3: a model was not blessed.
``prepare`` likewise sends the logs of its Beam refinement and TensorFlow to
``<root>/logs/prepare-<time>.log`` and prints the files it wrote.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
import warnings
from typing import Optional

from rw_tf.cli.output import quiet_output
from rw_tf.errors import UserError, runtime_user_error
from rw_tf.folder_lock import output_folder_lock
from rw_tf_pipeline.configs import DEFAULT_IMAGE, KINDS, STAGES, PipelineConfig
from rw_tf_pipeline.errors import DataAnomaliesError
from rw_tf_pipeline.progress import left_out_text, summary_table


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run or compile the TFX pipelines")
    actions = p.add_subparsers(dest="action", required=True)
    for name, helptext in (("run", "run with LocalDagRunner"),
                           ("prepare", "only write the pipelines' inputs (JSON Lines, vocab.txt, data_report.json)"),
                           ("compile", "compile for an orchestrator (Kubeflow Pipelines v2 / Vertex AI)")):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("--config", help="JSON file with PipelineConfig fields (see pipeline/configs.py)")
        a.add_argument("--root", help="override the config's root folder")
        a.add_argument("--kind", choices=KINDS + ("all",), default="recipe" if name == "compile" else "all",
                       help="all: the pretraining (web refinement first) then the fine-tuning pipeline; "
                            "recipe: both stages in one; refine: the web refinement alone")
        a.add_argument("--input", dest="corpus_uris", nargs="*", default=None,
                       help="text files or URIs (gs://...) instead of the embedded corpus")
        if name in ("run", "prepare"):
            a.add_argument("--verbose", action="store_true", help="show library logs instead of writing them to a file")
        if name == "compile":
            a.add_argument("--target", choices=("kubeflow",), default="kubeflow")
            a.add_argument("--image", default=DEFAULT_IMAGE, help="container image with rw-tf installed")
            a.add_argument("--pipeline-root", default="", help="e.g. gs://bucket/rw-tf (default: the config's root)")
            a.add_argument("--output-dir", default=".", help="where to write <pipeline>.json (created if missing)")
            a.add_argument("--schedule", default="0 3 * * *", help="cron expression of the recurring run")
    p.set_defaults(func=run_command)


def load_config(args: argparse.Namespace) -> PipelineConfig:
    overrides = {"root": args.root} if args.root else {}
    if args.corpus_uris:
        overrides["corpus_uris"] = list(args.corpus_uris)
    return PipelineConfig.from_json_file(args.config, **overrides) if args.config else PipelineConfig(**overrides)


def run_command(args: argparse.Namespace) -> int:
    # TFX takes ~15 s to import (and its cloud clients warn on import): it is imported by the
    # action that needs it, `pipeline run` inside the redirection of library output to the log.
    config = load_config(args)
    kinds = list(STAGES) if args.kind == "all" else [args.kind]
    if args.action == "prepare":
        return prepare_inputs(config, args.kind, args.verbose)
    if args.action == "compile":
        with warnings.catch_warnings():  # the Vertex and GCS clients' deprecation notices on import
            warnings.simplefilter("ignore", FutureWarning)
            from rw_tf_pipeline.kubeflow_runner import compile_kubeflow

        for kind in kinds:
            out = os.path.join(args.output_dir, f"{config.pipeline_name(kind)}.json")
            for name, path in compile_kubeflow(kind, config, out, args.image, args.pipeline_root,
                                               args.schedule).items():
                print(f"wrote {name}: {path}")
            print("checked: no path of this machine and no mangled URI in the spec")
        return 0
    return run_pipelines(config, kinds, args.verbose)


def _log_path(config: PipelineConfig, action: str, verbose: bool) -> Optional[str]:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return None if verbose else os.path.join(config.log_dir, f"{action}-{stamp}.log")


def prepare_inputs(config: PipelineConfig, kind: str, verbose: bool) -> int:
    log_path = _log_path(config, "prepare", verbose)
    print(f"rw-tf pipeline prepare: the pipelines' inputs under {config.data_dir}")
    if log_path:
        print(f"library logs: {log_path}")
    started = time.monotonic()
    with output_folder_lock(config.root):
        with quiet_output(log_path):   # a web refinement runs Beam workers, whose logs go there too
            from rw_tf_pipeline.prepare import KIND_DATA, prepare_kind_data, rows_rejected

            paths = prepare_kind_data(config, kind)
    print(f"done in {time.monotonic() - started:.0f} s")
    for name, path in paths.items():
        print(f"  {name:<22} {path}")
    for data_kind in KIND_DATA.get(kind, (kind,)):
        left_out, report = rows_rejected(config, data_kind)
        if left_out:
            print(f"{data_kind}: {left_out_text(left_out)}; report: {report}")
    return 0


def run_pipelines(config: PipelineConfig, kinds, verbose: bool) -> int:
    log_path = _log_path(config, "run", verbose)
    print(f"rw-tf pipeline run: {', '.join(config.pipeline_name(k) for k in kinds)} under {config.root}")
    if log_path:
        print(f"library logs: {log_path}")
    # Taken here, not only inside the run: a root in use is a user error (exit 2), not a failed run.
    with output_folder_lock(config.root):
        return _run_and_summarize(config, kinds, log_path)


def _run_and_summarize(config: PipelineConfig, kinds, log_path: Optional[str]) -> int:
    try:
        with quiet_output(log_path) as terminal:
            try:
                from rw_tf_pipeline.local_runner import run_all

                summaries = run_all(config, kinds, out=terminal)
            except Exception:
                traceback.print_exc()  # into the log file
                raise
    except DataAnomaliesError as err:
        print(f"rw-tf pipeline run: the data do not match the schema; stopped before Transform:\n{err}",
              file=sys.stderr)
        return 2
    except UserError:   # raised before a component ran (e.g. the open-file limit): main prints it, exit 2
        raise
    except Exception as err:  # noqa: BLE001 - a component failed: short message, traceback in the log
        known = runtime_user_error(err)
        if known is not None:   # a full disk, no memory: main prints it as the user's (exit 2)
            raise known from None
        where = f"; the traceback is in {log_path}" if log_path else ""
        print(f"rw-tf pipeline run: failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
              f"{where}", file=sys.stderr)
        return 1
    print()
    print(summary_table(summaries))
    summary_path = os.path.join(config.root, "run_summary.json")
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summaries, f, indent=2)
    print(f"\nsummary: {summary_path}")
    return 0 if all(s["blessed"] for s in summaries.values() if not s.get("refinement")) else 3
