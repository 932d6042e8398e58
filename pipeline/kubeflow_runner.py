"""Compiles the pipelines for Kubeflow Pipelines v2 / Vertex AI Pipelines (KubeflowV2DagRunner).

    rw-tf pipeline compile --target kubeflow --image IMAGE --pipeline-root gs://BUCKET/rw-tf \\
        [--kind recipe] [--schedule "0 3 * * *"] [--output-dir DIR]

What a cluster can run: the root is used verbatim (gs://, s3://, any URI); nothing of the
compiling machine is referenced: the data are prepared by the pipeline's first step from the
config's URIs, Transform and Trainer name functions by module path, and schemas are read from the
image (``IMAGE_SCHEMA_DIR``, where the repository's Dockerfile installs them). A local path in the
config (corpus, knowledge files, a pretrained model) is an error. Beside each ``<pipeline>.json``
the compiled spec is checked (``foreign_paths``: no path of this machine, no mangled URI) and
the compiler writes ``<pipeline>.schedule.json``: the cron expression and parameters that
``kfp.Client().create_recurring_run`` or a Vertex AI ``PipelineJobSchedule`` take (see the README).
RefineWebData's and PrepareData's caches are off in the spec (``ALWAYS_RUN``): a cluster's cache
key holds the config's URIs, not what they hold, so new or edited files under the same URIs (a
scheduled run's new web pages) would be left unread. Run every time, RefineWebData refines only
when its inputs' names, sizes or times or its settings changed (else it copies its newest output),
PrepareData rewrites only the data whose sources or settings changed, and ExampleGen's pre-cache
driver fingerprints the data folders, so the steps after it run again only when the data did.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Dict, List

from tfx import v1 as tfx

from rw_tf.errors import UserError
from rw_tf_pipeline.configs import DEFAULT_IMAGE, PipelineConfig, is_remote
from rw_tf_pipeline.pipeline import create_pipeline

IMAGE_ROOT = "/opt/rw-tf"  # the Dockerfile's WORKDIR: the repository inside the image
IMAGE_SCHEMA_DIR = f"{IMAGE_ROOT}/schemas"
PATH_FIELDS = ("alias_file", "knowledge_dir", "pretrained_model_uri", "data_root")
# Tasks whose cache the compiled spec turns off (see the module docstring).
ALWAYS_RUN = ("RefineWebData", "PrepareData")


def cluster_config(config: PipelineConfig, pipeline_root: str) -> PipelineConfig:
    """``config`` as the cluster sees it; raises ``UserError`` for paths only this machine has."""
    config = dataclasses.replace(config, root=pipeline_root or config.root, schema_dir=IMAGE_SCHEMA_DIR)
    if not is_remote(config.root):
        raise UserError(f"the pipeline root {config.root} is a path of this machine",
                        hint="pass --pipeline-root gs://BUCKET/PATH (or another URI the cluster can read)")
    local = [f"{name}={getattr(config, name)}" for name in PATH_FIELDS + config.user_file_fields
             if getattr(config, name) and not is_remote(getattr(config, name))]
    local += [f"{name}={uri}" for name in ("corpus_uris", "web_inputs") for uri in getattr(config, name)
              if not is_remote(uri)]
    local += [f"refine_config.url_filter.{key}={path}" for key, path in
              config.refine_config.get("url_filter", {}).items() if key.endswith("_file") and path
              and not is_remote(path)]
    if local:
        raise UserError(f"the config names paths of this machine: {', '.join(local)}",
                        hint="copy them to the pipeline root's bucket and give their URIs")
    return config


# The five fields of a cron expression: name, range, and the names a field may use instead of numbers.
_CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
                ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
                ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_CRON_ITEM = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\d+))?$", re.ASCII)   # cron takes ASCII digits


def check_cron(cron: str) -> None:
    """A ``UserError`` unless ``cron`` is a 5-field cron expression both KFP's scheduler and Vertex
    AI accept: per field ``*``, a value, a range ``a-b``, each with an optional step ``/n``, or a list
    of those; values in the field's range (months and weekdays may be named: ``jan``, ``mon``)."""
    fields = cron.split()
    if len(fields) != 5:
        raise UserError(f"--schedule takes a 5-field cron expression (minute hour day month weekday), got {cron!r}")
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for item in text.split(","):
            match = _CRON_ITEM.match(item.lower())
            if not match:
                raise UserError(f"--schedule {cron!r}: {name} {item!r} is not *, a value, a range a-b or a step x/n")
            _, start, end, step = match.groups()
            values = [names.index(v) + low if v in names else (int(v) if v.isdigit() else None)
                      for v in (start, end) if v is not None]
            if None in values or not all(low <= v <= high for v in values):
                raise UserError(f"--schedule {cron!r}: {name} {item!r} is outside {low}-{high}")
            if (len(values) == 2 and values[0] > values[1]) or (step is not None and int(step) < 1):
                raise UserError(f"--schedule {cron!r}: {name} {item!r} is an empty range or a step below 1")


def schedule_spec(config: PipelineConfig, pipeline_file: str, cron: str) -> Dict:
    """What a recurring run needs (kfp.Client().create_recurring_run / Vertex PipelineJobSchedule)."""
    check_cron(cron)
    return {"display_name": f"{os.path.basename(pipeline_file)[:-5]}-scheduled", "pipeline_package_path": pipeline_file,
            "pipeline_root": config.root, "cron_expression": cron,
            "kfp_cron_expression": "0 " + cron,  # KFP's scheduler takes seconds first
            "parameters": {}, "enable_caching": True}


_PATH = re.compile(r"(?<![A-Za-z0-9_:/.\-])(/[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-@]+)+)")
_MANGLED = re.compile(r"[a-z0-9]+:/(?!/)[^\s\"]*|/[A-Za-z0-9_]+:/+[^\s\"]*")


def foreign_paths(spec_text: str) -> Dict[str, List[str]]:
    """Paths a cluster could not resolve: absolute paths outside the image's ``IMAGE_ROOT`` (the
    compiling machine's) and URIs turned into paths (``/cwd/gs:/bucket``) or missing a slash."""
    absolute = sorted({p for p in _PATH.findall(spec_text) if not p.startswith(IMAGE_ROOT + "/")})
    return {"paths_of_this_machine": absolute, "mangled_uris": sorted(set(_MANGLED.findall(spec_text)))}


def compile_kubeflow(kind: str, config: PipelineConfig, output_file: str, image: str = DEFAULT_IMAGE,
                     pipeline_root: str = "", cron: str = "0 3 * * *") -> Dict[str, str]:
    """Writes the KFP v2 pipeline-spec JSON for ``kind`` and its schedule file; returns their paths."""
    check_cron(cron)   # before anything is written
    config = cluster_config(config, pipeline_root)
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_file)
    runner.run(create_pipeline(kind, config, orchestrator="kubeflow"))
    with open(output_file, encoding="utf-8") as f:
        job = json.load(f)
    for name, task in job["pipelineSpec"]["root"]["dag"]["tasks"].items():
        if name in ALWAYS_RUN:
            task["cachingOptions"] = {"enableCache": False}
    text = json.dumps(job, sort_keys=True)
    with open(output_file, "w", encoding="utf-8") as f:
        f.write(text)
    found = foreign_paths(text)
    if any(found.values()):
        raise RuntimeError(f"the compiled spec {output_file} names paths a cluster cannot read: {found}")
    schedule_file = output_file[:-len(".json")] + ".schedule.json"
    with open(schedule_file, "w", encoding="utf-8") as f:
        json.dump(schedule_spec(config, output_file, cron), f, indent=2)
    return {"pipeline": output_file, "schedule": schedule_file}
