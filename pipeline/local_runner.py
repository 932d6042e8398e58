"""Runs the pipelines with TFX's LocalDagRunner (MLMD in SQLite under the config's root).

    rw-tf pipeline run [--config cfg.json] [--kind pretrain|finetune|all] [--verbose]

Cron-friendly: re-running with unchanged inputs reuses cached component outputs, so a schedule
like ``0 3 * * * cd /srv/rw-tf && .venv/bin/rw-tf pipeline run --config prod.json`` only does
work when the data (or config) changed.

Example:
    >>> summaries = run_all(PipelineConfig(root="/tmp/rw"), ["pretrain", "finetune"])  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, TextIO

from tfx import v1 as tfx

from rw_tf.folder_lock import output_folder_lock
from rw_tf.process_limits import ensure_open_files
from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.mlmd_queries import run_summary
from rw_tf_pipeline.pipeline import create_pipeline
from rw_tf_pipeline.progress import ComponentProgress


@contextlib.contextmanager
def scratch_tempdir() -> Iterator[str]:
    """Points ``tempfile`` (and TMPDIR, which Beam's worker processes inherit) at a fresh directory
    and deletes it afterwards. Why: every Beam-based TFX executor whose args name no dependency
    package builds a ~40 MB source package of TFX under the temp dir and never deletes it; a local
    run of every kind left gigabytes in /tmp (and filled the disk of a CI machine)."""
    scratch = tempfile.mkdtemp(prefix="rw-tf-run-")
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = scratch, scratch
    try:
        yield scratch
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(scratch, ignore_errors=True)


def run_pipeline(kind: str, config: PipelineConfig, out: Optional[TextIO] = None) -> Dict[str, Dict]:
    """Runs one pipeline to completion (raises if a component fails) and summarizes it per stage;
    with ``out``, prints a line per component as it starts and finishes."""
    with output_folder_lock(config.root):   # one run per root: a second would share its store and pushes
        return _run_pipeline(kind, config, out)


def _run_pipeline(kind: str, config: PipelineConfig, out: Optional[TextIO]) -> Dict[str, Dict]:
    ensure_open_files("a TFX run on Beam's local runner")
    pipeline = create_pipeline(kind, config)
    with scratch_tempdir():
        if out is None:
            tfx.orchestration.LocalDagRunner().run(pipeline)
        else:
            out.write(f"{config.pipeline_name(kind)}\n")
            with ComponentProgress(out, prefix="  ").attached():
                tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary(config, kind)


def run_all(config: PipelineConfig, kinds: List[str], out: Optional[TextIO] = None) -> Dict[str, Dict]:
    """Runs each kind in order (a separate fine-tuning pipeline imports the newest pretraining
    push); returns stage -> summary."""
    summaries: Dict[str, Dict] = {}
    with output_folder_lock(config.root):   # held between the pipelines too
        for kind in kinds:
            summaries.update(run_pipeline(kind, config, out))
    return summaries


if __name__ == "__main__":
    from rw_tf.cli.main import main

    sys.exit(main(["pipeline", "run", *sys.argv[1:]]))
