"""ExampleGen executor for JSON Lines files: one JSON object per line -> one tf.Example.

Values become features by type (``rw_tf.data.jsonl.example_from_json``: str -> bytes,
``{"b64": "..."}`` -> the decoded bytes, int/bool -> int64, float -> float, lists of one type
likewise, ``null`` -> an empty feature; 0 and "" are values).
Lines that are not valid UTF-8 JSON objects are *rejected*, never dropped silently: counted in the
Beam counter ``rw_tf_jsonl/rejected_lines``, written with their reason to
``<examples uri>/rejected_lines/`` and totalled in the Examples artifact's custom property
``rejected_lines`` (which ``rw-tf pipeline run`` reports in its summary).

Use with ``FileBasedExampleGen(custom_executor_spec=executor_spec.BeamExecutorSpec(Executor))``.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import artifact_utils, standard_component_specs

from rw_tf.data.jsonl import example_from_json, loads_text

REJECTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "rejected_lines")
ACCEPTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "examples")
REJECTS_DIR = "rejected_lines"
REJECTED_TAG = "rejected"


def parse_json_line(line: Any) -> Iterator[Any]:
    """Yields the Example of a valid line, or a tagged ``{"reason", "line"}`` for a rejected one."""
    try:
        raw = line if isinstance(line, bytes) else line.encode("utf-8")
        if not raw.strip():
            return
        record = loads_text(raw)
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        example = example_from_json(record)
    except (ValueError, UnicodeDecodeError, TypeError) as err:
        REJECTED.inc()
        yield beam.pvalue.TaggedOutput(REJECTED_TAG, json.dumps(
            {"reason": f"{type(err).__name__}: {err}"[:300], "line": repr(line[:200])}))
        return
    ACCEPTED.inc()
    yield example


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _JsonlToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # noqa: N802 (Beam naming)
                    split_pattern: str, rejects_prefix: Optional[str] = None) -> beam.pvalue.PCollection:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    parsed = (pipeline
              | "ReadJsonl" >> beam.io.ReadFromText(pattern, coder=beam.coders.BytesCoder())
              | "ParseJsonl" >> beam.FlatMap(parse_json_line).with_outputs(REJECTED_TAG, main="examples"))
    if rejects_prefix:
        _ = parsed[REJECTED_TAG] | "WriteRejected" >> beam.io.WriteToText(rejects_prefix, file_name_suffix=".jsonl")
    return parsed["examples"]


def count_rejected(examples_uri: str) -> int:
    folder = os.path.join(examples_uri, REJECTS_DIR)
    if not tf.io.gfile.isdir(folder):
        return 0
    total = 0
    for name in tf.io.gfile.listdir(folder):
        with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
            total += sum(1 for line in f if line.strip())
    return total


class Executor(BaseExampleGenExecutor):
    """TFX ExampleGen executor reading JSON Lines; records the rejected lines (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        self._rejects_prefix = os.path.join(examples.uri, REJECTS_DIR, "part")
        super().Do(input_dict, output_dict, exec_properties)
        examples.set_int_custom_property("rejected_lines", count_rejected(examples.uri))

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        return functools.partial(_JsonlToExample, rejects_prefix=getattr(self, "_rejects_prefix", None))
