"""Runs the pipelines with TFX's LocalDagRunner (MLMD in SQLite under the config's root).

    rw-tf pipeline run [--config cfg.json] [--kind pretrain|finetune|all] [--verbose]

Cron-friendly: re-running with unchanged inputs reuses cached component outputs, so a schedule
like ``0 3 * * * cd /srv/rw-tf && .venv/bin/rw-tf pipeline run --config prod.json`` only does
work when the data (or config) changed.

Example:
    >>> summaries = run_all(PipelineConfig(root="/tmp/rw"), ["pretrain", "finetune"])  # doctest: +SKIP
"""
from __future__ import annotations

import sys
from typing import Dict, List, Optional, TextIO

from tfx import v1 as tfx

from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.mlmd_queries import run_summary
from rw_tf_pipeline.pipeline import create_pipeline
from rw_tf_pipeline.progress import ComponentProgress


def run_pipeline(kind: str, config: PipelineConfig, out: Optional[TextIO] = None) -> Dict[str, Dict]:
    """Runs one pipeline to completion (raises if a component fails) and summarizes it per stage;
    with ``out``, prints a line per component as it starts and finishes."""
    pipeline = create_pipeline(kind, config)
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
    for kind in kinds:
        summaries.update(run_pipeline(kind, config, out))
    return summaries


if __name__ == "__main__":
    from rw_tf.cli.main import main

    sys.exit(main(["pipeline", "run", *sys.argv[1:]]))
