"""Request validation before anything is materialized: declared shapes against the values actually
present and against limits, dtypes, nesting. Every failure is a ``ServingError`` with TF Serving's
code, raised in microseconds: INVALID_ARGUMENT for malformed input, RESOURCE_EXHAUSTED for limits.

- gRPC ``TensorProto``: a known value dtype; a known rank of at most ``max_rank``; no negative
  dimension; the declared element count (computed with a cap, so a declared shape cannot overflow)
  at most ``max_elements`` (``max_texts`` for strings); exactly that many values present (TF would
  repeat the last value to fill a larger shape: a 100-byte request could ask for gigabytes).
- REST JSON: rectangular nesting of one kind of leaf (numbers, booleans, strings or ``{"b64": ...}``),
  at most ``max_json_depth`` levels, the same element and string limits; ``instances`` rows that
  are objects must all have the same keys. (A body whose JSON escapes a lone surrogate, which no
  UTF-8 encodes, is refused when it is parsed: ``rw_tf.data.jsonl.loads_text``.)

Example:
    >>> proto = tf.make_tensor_proto(["a", "b"])
    >>> array_from_tensor_proto("text", proto, ServerLimits()).shape
    (2,)
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from rw_tf.config import DictConfig
from rw_tf_serving.errors import invalid_argument, resource_exhausted


@dataclasses.dataclass
class ServerLimits(DictConfig):
    """Per-request limits of the local server (``rw-tf serve`` flags)."""

    max_text_bytes: int = 100_000                 # one string input of a raw-text signature
    max_request_bytes: int = 16 * 1024 * 1024     # a whole request (gRPC message or REST body)
    max_elements: int = 1_000_000                 # values of all inputs of one request
    max_texts: int = 4096                         # strings of all inputs of one request
    max_rank: int = 8
    max_json_depth: int = 32
    text_inputs: Tuple[str, ...] = ("text", "question", "context")

    # Numbers are checked as the configs' (rw_tf.config.check_numbers): integers > 0, and
    # max_request_bytes at most 2 GiB - 1, since gRPC takes the message size as a C int (a larger
    # one stopped the server with OverflowError) and protobuf messages cannot exceed 2 GiB anyway.

    def validate(self) -> None:
        # A str here would be read as its characters: "text" would hold the input names "t", "e", "x".
        if not (isinstance(self.text_inputs, tuple) and all(isinstance(n, str) and n for n in self.text_inputs)):
            raise TypeError(f"ServerLimits.text_inputs must be a tuple of input names, got {self.text_inputs!r}")


# The repeated field holding each value dtype's elements, and how many field entries one element takes.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", 1), types_pb2.DT_DOUBLE: ("double_val", 1),
    types_pb2.DT_INT32: ("int_val", 1), types_pb2.DT_INT16: ("int_val", 1), types_pb2.DT_INT8: ("int_val", 1),
    types_pb2.DT_UINT8: ("int_val", 1), types_pb2.DT_UINT16: ("int_val", 1), types_pb2.DT_INT64: ("int64_val", 1),
    types_pb2.DT_UINT32: ("uint32_val", 1), types_pb2.DT_UINT64: ("uint64_val", 1), types_pb2.DT_BOOL: ("bool_val", 1),
    types_pb2.DT_HALF: ("half_val", 1), types_pb2.DT_BFLOAT16: ("half_val", 1), types_pb2.DT_STRING: ("string_val", 1),
    types_pb2.DT_COMPLEX64: ("scomplex_val", 2), types_pb2.DT_COMPLEX128: ("dcomplex_val", 2),
}


def _element_count(name: str, dims: List[int], limit: int, carrier: str = "request") -> int:
    count = 1
    for size in dims:
        if size < 0:
            raise invalid_argument(f"{name} has a negative dimension {size} in shape {dims}")
        count *= size
        if count > limit:  # stop before a declared shape can grow the number without bound
            raise resource_exhausted(f"{name} declares shape {dims}: more than the {limit:,} elements "
                                     f"one {carrier} may carry")
    return count


def array_from_tensor_proto(name: str, proto, limits: ServerLimits, role: str = "input") -> np.ndarray:
    """The array of a wire ``TensorProto``, after the checks in the module docstring. ``role``
    names it in errors: a request's ``input``, or an ``output`` of an answer (the client checks
    those the same way: an answer declaring 10**8 values and carrying one made it build all of them)."""
    name = f"{role} {name!r}"
    if proto.dtype not in _VALUE_FIELDS:
        raise invalid_argument(f"{name} has unsupported dtype {types_pb2.DataType.Name(proto.dtype)}"
                               if proto.dtype in types_pb2.DataType.values() else
                               f"{name} has an unknown dtype number {proto.dtype}")
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument(f"{name} has an unknown rank; requests need a full shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    if len(dims) > limits.max_rank:
        raise invalid_argument(f"{name} has rank {len(dims)}; at most {limits.max_rank} is accepted")
    is_string = proto.dtype == types_pb2.DT_STRING
    declared = _element_count(name, dims, limits.max_texts if is_string else limits.max_elements,
                              "answer" if role == "output" else "request")
    field, per_element = _VALUE_FIELDS[proto.dtype]
    if proto.tensor_content:
        if is_string:
            raise invalid_argument(f"{name}: strings cannot travel as tensor_content")
        itemsize = np.dtype(tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype).itemsize
        present = len(proto.tensor_content) // itemsize
        exact = len(proto.tensor_content) % itemsize == 0
    else:
        entries = len(getattr(proto, field))
        present, exact = entries // per_element, entries % per_element == 0
    if present != declared or not exact:
        raise invalid_argument(f"{name} declares shape {dims} ({declared} values) but carries {present}")
    try:
        return tf.make_ndarray(proto)
    except Exception as err:  # noqa: BLE001 - anything else wrong with a wire proto is the client's
        raise invalid_argument(f"{name} is not a valid TensorProto: {err}") from None


def _leaf(value: Any) -> Tuple[str, Any]:
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, (int, float)):
        return "number", value
    if isinstance(value, str):   # Unicode text: the REST body parser refuses lone surrogates
        return "string", value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return "string", base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("a {\"b64\": ...} value is not valid base64") from None
    raise invalid_argument(f"unsupported JSON value {str(value)[:60]!r}: numbers, booleans, strings or "
                           f"{{\"b64\": ...}} are accepted")


def array_from_json(name: str, value: Any, limits: ServerLimits) -> np.ndarray:
    """The array of one REST input (a rectangular nest of lists), after the checks in the docstring."""
    shape: List[int] = []
    level, depth = [value], 0
    while level and isinstance(level[0], list):    # walk level by level: no recursion, bounded work
        depth += 1
        if depth > limits.max_json_depth:
            raise invalid_argument(f"input {name!r} is nested deeper than {limits.max_json_depth} levels")
        sizes = {len(v) if isinstance(v, list) else -1 for v in level}
        if len(sizes) != 1 or -1 in sizes:
            raise invalid_argument(f"input {name!r} is ragged: lists at depth {depth} differ in length or kind")
        shape.append(sizes.pop())
        if int(np.prod(shape, dtype=np.float64)) > limits.max_elements:
            raise resource_exhausted(f"input {name!r} has more than {limits.max_elements} elements")
        level = [item for v in level for item in v]
    if any(isinstance(v, list) for v in level):
        raise invalid_argument(f"input {name!r} is ragged: lists and values are mixed at depth {depth + 1}")
    leaves = [_leaf(v) for v in level]
    kinds = {kind for kind, _ in leaves}
    if len(kinds) > 1:
        raise invalid_argument(f"input {name!r} mixes {sorted(kinds)} values")
    kind = kinds.pop() if kinds else "number"
    if kind == "string" and len(leaves) > limits.max_texts:
        raise resource_exhausted(f"input {name!r} has {len(leaves)} strings; at most {limits.max_texts} per request")
    if kind == "string":
        flat = np.empty(len(leaves), dtype=object)
        flat[:] = [v for _, v in leaves]
    else:
        flat = np.array([v for _, v in leaves], dtype=bool if kind == "bool" else None)
    return flat.reshape(shape)


def as_input_dtype(name: str, array: np.ndarray, dtype: tf.DType) -> np.ndarray:
    """A REST input's array in its signature's dtype, as TF Serving's JSON mapping reads it: JSON
    numbers into a floating-point input (integers too), whole JSON numbers into an integer input
    (a value with a fraction or a decimal point, or outside the dtype's range, is refused rather
    than rounded or wrapped), booleans into a bool input. Anything else is left for the dtype check
    that names both types. A finite number too large for a float input is refused, not made inf."""
    if array.size == 0:   # `[]` carries no type of its own: the signature's (an empty batch is refused later)
        return np.empty(array.shape, dtype=dtype.as_numpy_dtype)
    if array.dtype == object and array.size and isinstance(array.flat[0], int):   # JSON integers past 64 bits
        if not dtype.is_floating:
            raise invalid_argument(f"input {name!r} has a value outside the range of {dtype.name}")
        try:
            array = array.astype(np.float64)
        except OverflowError:
            raise invalid_argument(f"input {name!r} has a value beyond the range of {dtype.name}") from None
    if array.dtype == object or array.dtype == bool or dtype in (tf.string, tf.bool):
        return array
    target = dtype.as_numpy_dtype
    if dtype.is_floating:
        with np.errstate(over="ignore"):
            converted = array.astype(target)
        if not np.array_equal(np.isfinite(converted), np.isfinite(array)):
            raise invalid_argument(f"input {name!r} has a value beyond the range of {dtype.name}")
        return converted
    if dtype.is_integer:
        if array.dtype.kind == "f":
            raise invalid_argument(f"input {name!r} is {dtype.name}: its JSON values must be whole numbers "
                                   "without a decimal point")
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise invalid_argument(f"input {name!r} has a value outside the range of {dtype.name} "
                                   f"[{info.min}, {info.max}]")
        return array.astype(target)
    return array


def inputs_from_instances(instances: Any, single_input: str, limits: ServerLimits) -> Dict[str, np.ndarray]:
    """REST row format: a list of rows, each a value of the one input or an object of named inputs."""
    if not isinstance(instances, list) or not instances:
        raise invalid_argument("'instances' must be a non-empty list")
    if isinstance(instances[0], dict) and set(instances[0]) != {"b64"}:
        keys = set(instances[0])
        for i, row in enumerate(instances):
            if not isinstance(row, dict) or set(row) != keys:
                raise invalid_argument(f"instance {i} has keys {sorted(row) if isinstance(row, dict) else type(row)}"
                                       f" but instance 0 has {sorted(keys)}")
        return {k: array_from_json(k, [row[k] for row in instances], limits) for k in sorted(keys)}
    if not single_input:
        raise invalid_argument("instances must be objects when the signature has several inputs")
    return {single_input: array_from_json(single_input, instances, limits)}
