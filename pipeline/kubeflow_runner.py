"""Compiles the pipelines for Kubeflow Pipelines v2 / Vertex AI Pipelines with KubeflowV2DagRunner.

    rw-tf pipeline compile --target kubeflow --image IMAGE [--pipeline-root gs://...] [--output-dir DIR]

The image must contain this repository installed (``pip install .`` on top of a TFX 1.16 base
image). Upload the JSON to KFP and create a recurring run for scheduling, e.g.
``kfp.Client().create_recurring_run(experiment_id, job_name, cron_expression="0 0 3 * * *",
pipeline_package_path=FILE)``, or ``gcloud ai pipelines`` / a Vertex AI schedule.
"""
from __future__ import annotations

import dataclasses
import os

from tfx import v1 as tfx

from rw_tf_pipeline.configs import DEFAULT_IMAGE, PipelineConfig
from rw_tf_pipeline.pipeline import create_pipeline


def compile_kubeflow(kind: str, config: PipelineConfig, output_file: str, image: str = DEFAULT_IMAGE,
                     pipeline_root: str = "") -> str:
    """Writes the KFP v2 pipeline-spec JSON for ``kind``; returns its path."""
    if pipeline_root:
        config = dataclasses.replace(config, root=pipeline_root)
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_file)
    runner.run(create_pipeline(kind, config))
    return output_file
