"""Runs the pipelines with TFX's LocalDagRunner (MLMD in SQLite under the config's root).

    python -m pipeline.local_runner [--config cfg.json] [--kind pretrain|finetune|all]
    (same as: rw-tf pipeline run ...)

Cron-friendly: re-running with unchanged inputs reuses cached component outputs, so a schedule
like ``0 3 * * * cd /srv/rw-tf && .venv/bin/rw-tf pipeline run --config prod.json`` only does
work when the data (or code/config) changed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Dict, List, Optional

from absl import logging as absl_logging
from tfx import v1 as tfx

from pipeline.configs import KINDS, PipelineConfig
from pipeline.mlmd_queries import run_summary
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare_data


def run_pipeline(kind: str, config: PipelineConfig) -> Dict:
    """Runs one pipeline to completion (raises if a component fails) and summarizes the run."""
    absl_logging.set_verbosity(absl_logging.INFO)  # component start/finish lines are the progress view
    tfx.orchestration.LocalDagRunner().run(create_pipeline(kind, config))
    return run_summary(config.metadata_path, config.pipeline_name(kind), config.serving_dir(kind))


def run_all(config: PipelineConfig, kinds: List[str], corpus_files=()) -> Dict[str, Dict]:
    prepare_data(config, corpus_files)
    return {kind: run_pipeline(kind, config) for kind in kinds}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file with PipelineConfig fields")
    parser.add_argument("--kind", choices=KINDS + ("all",), default="all")
    args = parser.parse_args(argv)
    config = PipelineConfig.from_json_file(args.config) if args.config else PipelineConfig()
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    for kind, summary in run_all(config, kinds).items():
        logging.info("%s: %s", kind, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
