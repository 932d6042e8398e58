"""Compiles the pipelines for Kubeflow Pipelines v2 / Vertex AI Pipelines with KubeflowV2DagRunner.

    rw-tf pipeline compile --target kubeflow --image IMAGE [--pipeline-root gs://...] [--output FILE]

The image must contain this repository installed (``pip install .`` on top of a TFX 1.16 base
image). Upload the JSON to KFP and create a recurring run for scheduling, e.g.
``kfp.Client().create_recurring_run(experiment_id, job_name, cron_expression="0 0 3 * * *",
pipeline_package_path=FILE)``, or ``gcloud ai pipelines`` / a Vertex AI schedule.
"""
from __future__ import annotations

import dataclasses
import os

from tfx import v1 as tfx

from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline

DEFAULT_IMAGE = "gcr.io/tfx-oss-public/tfx:1.16.0"


def compile_kubeflow(kind: str, config: PipelineConfig, output_file: str, image: str = DEFAULT_IMAGE,
                     pipeline_root: str = "") -> str:
    """Writes the KFP v2 pipeline-spec JSON for ``kind``; returns its path."""
    if pipeline_root:
        # The runner stats the root: only point it at cloud storage where credentials exist.
        config = dataclasses.replace(config, root=pipeline_root)
    # Module files are referenced by path inside the image instead of being packaged as wheels.
    os.environ.setdefault("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", "1")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_file)
    runner.run(create_pipeline(kind, config))
    return output_file
