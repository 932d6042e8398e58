"""ExampleGen executor for JSON Lines files: one JSON object per line -> one tf.Example.

Values become features by type (str -> bytes, ``{"b64": "..."}`` -> the decoded bytes (binary
data such as images, TF Serving's REST convention), int/bool -> int64, float -> float, lists of
one type likewise, ``null`` -> an empty feature). Unlike ``tfx...utils.dict_to_example``, 0 and ""
are kept as values (that helper treats every falsy value as missing, which would erase label 0).
Lines that are not valid UTF-8 JSON objects are *rejected*, never dropped silently: counted in the
Beam counter ``rw_tf_jsonl/rejected_lines``, written with their reason to
``<examples uri>/rejected_lines/`` and totalled in the Examples artifact's custom property
``rejected_lines`` (which ``rw-tf pipeline run`` reports in its summary).

Use with ``FileBasedExampleGen(custom_executor_spec=executor_spec.BeamExecutorSpec(Executor))``.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import artifact_utils, standard_component_specs

REJECTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "rejected_lines")
ACCEPTED = beam.metrics.Metrics.counter("rw_tf_jsonl", "examples")
REJECTS_DIR = "rejected_lines"
REJECTED_TAG = "rejected"


def _binary(value: Any) -> Optional[bytes]:
    """The bytes of a ``{"b64": "..."}`` value (TF Serving's REST convention), else None."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise ValueError("a {\"b64\": ...} value is not valid base64") from None
    return None


def _feature(key: str, value: Any) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    if value is None or not values:
        return tf.train.Feature()
    binary = [_binary(v) for v in values]
    if all(b is not None for b in binary):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=binary))
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


def parse_json_line(line: Any) -> Iterator[Any]:
    """Yields the Example of a valid line, or a tagged ``{"reason", "line"}`` for a rejected one."""
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
