"""``rw-tf refine INPUT [INPUT ...] OUTPUT``: RefinedWeb's MacroData Refinement on web pages.

INPUT: file patterns of WARC archives, HTML files or JSON Lines (local or any Beam filesystem), or
``embedded`` for the offline web sample (written to ``OUTPUT/web``; see ``rw_tf.refine.web_sample``).
Prints a line per step and the per-stage table; Beam and TensorFlow logs go to ``OUTPUT/refine.log``
(``--verbose`` shows them). Outputs: ``OUTPUT/refined/*.jsonl`` (the corpus), ``OUTPUT/rejected``,
``OUTPUT/report.json`` and ``OUTPUT/report.png``.

    rw-tf refine embedded runs/refined
    rw-tf refine 'crawl/*.warc.gz' runs/refined --runner dask --workers 4
    rw-tf refine 'gs://b/crawl/*.warc.gz' gs://b/refined --runner beam \\
        --pipeline-args "--runner=DataflowRunner --project=P --region=R --temp_location=gs://b/tmp"
"""
from __future__ import annotations

import argparse
import os
import shlex
import threading
import time
from typing import List, Optional, TextIO

from rw_tf.cli.output import quiet_output
from rw_tf.errors import UserError
from rw_tf.folder_lock import output_folder_lock
from rw_tf.model_files import read_json_object
from rw_tf.path_checks import require_inputs_outside, require_pattern_free_folder
from rw_tf.refine import RefineConfig, RunnerConfig, run_refinement
from rw_tf.refine.pipeline import REPLACED_OUTPUTS, RUNNERS, expand_inputs
from rw_tf.refine.report import format_report
from rw_tf.refine.stages import STAGES
from rw_tf.refine.web_sample import write_web_sample

EMBEDDED = "embedded"


def add_refine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="refine web pages into a pretraining corpus (RefinedWeb's MDR, on Beam)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT",
                   help=f"input patterns (or '{EMBEDDED}'), then the output folder")
    p.add_argument("--config", help="JSON file of RefineConfig fields (thresholds of every stage)")
    p.add_argument("--languages", nargs="*", help="languages to keep (fastText codes; default: en)")
    p.add_argument("--blocklist", help="file of blocked domains, one per line")
    p.add_argument("--skip-stage", dest="skip_stages", nargs="*", default=None, choices=STAGES[1:],
                   help="stages to leave out")
    p.add_argument("--runner", choices=RUNNERS, default="direct",
                   help="direct: DirectRunner processes; dask: Beam's Dask runner; beam: --pipeline-args as given")
    p.add_argument("--workers", type=int, default=RunnerConfig.workers,
                   help="worker processes (direct, and a local dask cluster)")
    p.add_argument("--dask-address", help="scheduler of an existing dask.distributed cluster (default: start one)")
    p.add_argument("--pipeline-args", default="", help="Beam pipeline options, e.g. \"--runner=DataflowRunner ...\"")
    p.add_argument("--shards", type=int, default=4, help="files per output")
    p.add_argument("--verbose", action="store_true", help="show library logs instead of writing them to a file")
    p.set_defaults(func=run_refine)


def refine_config(args: argparse.Namespace, default_blocklist: Optional[str] = None) -> RefineConfig:
    """The ``--config`` file's settings under the options given; ``default_blocklist`` (the web
    sample's) only where neither ``--blocklist`` nor the file names one (it replaced the file's)."""
    values = {}
    if args.config:
        values = read_json_object(args.config, "refine settings")
    if args.languages is not None:
        values["languages"] = list(args.languages)
    if args.skip_stages is not None:
        values["skip_stages"] = list(args.skip_stages)
    url_filter = values.get("url_filter")
    named = isinstance(url_filter, dict) and url_filter.get("blocklist_file")
    blocklist = args.blocklist or (None if named else default_blocklist)
    if blocklist and (url_filter is None or isinstance(url_filter, dict)):   # else from_dict names the error
        values["url_filter"] = {**(url_filter or {}), "blocklist_file": blocklist}
    return RefineConfig.from_dict(values, args.config or "the command line")


def _heartbeat(out: TextIO, started: float, stop: threading.Event, every: float = 30.0) -> None:
    while not stop.wait(every):
        out.write(f"  ... running, {time.monotonic() - started:.0f} s\n")
        out.flush()


def run_refine(args: argparse.Namespace) -> int:
    if len(args.paths) < 2:
        raise UserError("give at least one input and the output folder", hint="rw-tf refine embedded runs/refined")
    *inputs, output = args.paths
    require_pattern_free_folder(output, "the output folder")   # before the lock, the web sample and the log go in
    # Held before anything is written: the web sample and refine.log below are in the folder too.
    with output_folder_lock(output):
        return _refine(args, inputs, output)


def _refine(args: argparse.Namespace, inputs: List[str], output: str) -> int:
    blocklist = None
    print(f"rw-tf refine -> {output}")
    if inputs == [EMBEDDED]:
        sample = write_web_sample(os.path.join(output, "web"))
        inputs, blocklist = sample["inputs"], sample["blocklist_file"]
        counts = ", ".join(f"{k} {v}" for k, v in sample["counts"].items())
        print(f"  wrote the embedded web sample: {counts}")
    elif EMBEDDED in inputs:
        raise UserError(f"'{EMBEDDED}' cannot be combined with other inputs")
    config = refine_config(args, blocklist)
    runner = RunnerConfig(runner=args.runner, workers=args.workers, dask_address=args.dask_address,
                          pipeline_args=tuple(shlex.split(args.pipeline_args)), output_shards=args.shards)
    files: List[str] = expand_inputs(inputs)
    require_inputs_outside(files, [os.path.join(output, name) for name in REPLACED_OUTPUTS],
                           "this run deletes and rewrites it")   # before refine.log is opened there
    print(f"  {len(files)} input files; stages: {', '.join(s for s in STAGES if s == 'read' or config.runs(s))}")
    where = {"direct": f"the DirectRunner, {runner.workers} processes",
             "dask": f"Beam's Dask runner, {runner.dask_address or f'a local cluster of {runner.workers} workers'}",
             "beam": f"Beam with {args.pipeline_args or 'its default runner'}"}[runner.runner]
    log_path = None if args.verbose or "://" in output else os.path.join(output, "refine.log")
    print(f"  running on {where}" + (f" (library logs: {log_path})" if log_path else ""))
    started = time.monotonic()
    with quiet_output(log_path) as terminal:
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(terminal, started, stop), daemon=True)
        beat.start()
        try:
            report = run_refinement(inputs, output, config, runner)
        except OSError as err:
            if runner.runner == "dask" and runner.dask_address:
                raise UserError(f"cannot use the dask scheduler at {runner.dask_address}: {err}",
                                hint="start it (dask scheduler) or drop --dask-address to start a local cluster"
                                ) from err
            raise
        finally:
            stop.set()
    stages = report["stages"]
    print(f"  done in {time.monotonic() - started:.1f} s\n")
    print(format_report(report))
    print(f"\nrefined corpus: {os.path.join(output, 'refined')} ({stages[-1]['documents_out']:,} documents, "
          f"{stages[-1]['words_out']:,} words)")
    print(f"report: {os.path.join(output, 'report.json')}, picture: {os.path.join(output, 'report.png')}")
    return 0
