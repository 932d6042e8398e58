"""ExampleGen executor for JSON Lines files: one JSON object per line -> one tf.Example.

Values become features by type (str -> bytes, int/bool -> int64, float -> float, lists of one
type likewise, ``null`` -> an empty feature). Unlike ``tfx...utils.dict_to_example``, 0 and ""
are kept as values (that helper treats every falsy value as missing, which would erase label 0). Lines that are not valid UTF-8 JSON objects are *rejected*: counted in the Beam
counter ``rw_tf_jsonl/rejected_lines`` and logged with their file offset, never dropped silently.

Use with ``FileBasedExampleGen(custom_executor_spec=executor_spec.BeamExecutorSpec(Executor))``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

REJECTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "rejected_lines")
ACCEPTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "examples")


def _feature(key: str, value: Any) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    if value is None or not values:
        return tf.train.Feature()
    if all(isinstance(v, str) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
    if all(isinstance(v, (bool, int)) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (bool, int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    raise TypeError(f"feature {key!r}: unsupported or mixed value types {sorted({type(v).__name__ for v in values})}")


def record_to_example(record: Dict[str, Any]) -> tf.train.Example:
    """A JSON object -> tf.Example (see the module docstring for the type rules)."""
    return tf.train.Example(features=tf.train.Features(
        feature={str(k): _feature(k, v) for k, v in record.items()}))


def parse_json_line(line: Any) -> Iterator[tf.train.Example]:
    """Yields the Example for a valid line; counts and logs a rejected one."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        if not text.strip():
            return
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        example = record_to_example(record)
    except (ValueError, UnicodeDecodeError, TypeError) as err:
        REJECTED.inc()
        logging.warning("rejected JSONL line (%s): %.200r", err, line)
        return
    ACCEPTED.inc()
    yield example


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _JsonlToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # noqa: N802 (Beam naming)
                    split_pattern: str) -> beam.pvalue.PCollection:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (pipeline
            | "ReadJsonl" >> beam.io.ReadFromText(pattern, coder=beam.coders.BytesCoder())
            | "ParseJsonl" >> beam.FlatMap(parse_json_line))


class Executor(BaseExampleGenExecutor):
    """TFX ExampleGen executor reading JSON Lines."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        return _JsonlToExample
