"""TF Serving's text-proto configuration messages that tensorflow-serving-api does not ship:
``SSLConfig`` (``--ssl_config_file``) and ``BatchingParameters`` (``--batching_parameters_file``),
built from descriptors with upstream's package, names and field numbers, so files written for TF
Serving parse here with the same rules (``google.protobuf.text_format``).

Example:
    >>> parse_text("max_batch_size { value: 16 } allowed_batch_sizes: 8", BATCHING_PARAMETERS).max_batch_size.value
    16
"""
from __future__ import annotations

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401 - registers google/protobuf/wrappers.proto in the pool
)

from rw_tf.data.lines import read_bounded

_F = descriptor_pb2.FieldDescriptorProto


def _messages():
    file = descriptor_pb2.FileDescriptorProto(name="rw_tf_serving/tf_serving_configs.proto",
                                              package="tensorflow.serving", syntax="proto3",
                                              dependency=["google/protobuf/wrappers.proto"])
    ssl = file.message_type.add(name="SSLConfig")
    for number, (name, kind) in enumerate((("server_key", _F.TYPE_STRING), ("server_cert", _F.TYPE_STRING),
                                           ("custom_ca", _F.TYPE_STRING), ("client_verify", _F.TYPE_BOOL)), 1):
        ssl.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    batching = file.message_type.add(name="BatchingParameters")
    for number, name in enumerate(("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                                   "num_batch_threads"), 1):
        batching.field.add(name=name, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                           type_name=".google.protobuf.Int64Value")
    batching.field.add(name="thread_pool_name", number=5, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                       type_name=".google.protobuf.StringValue")
    batching.field.add(name="allowed_batch_sizes", number=6, type=_F.TYPE_INT64, label=_F.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    factory = message_factory.MessageFactory(pool)  # protobuf 3.20 (TFX's pin) has no GetMessageClass
    return (factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in ("SSLConfig", "BatchingParameters"))


MAX_TEXT_PROTO_BYTES = 1 << 24   # a model config listing thousands of models is well under 1 MB
SSL_CONFIG, BATCHING_PARAMETERS = _messages()


def read_text_proto(path: str, message_class):
    """Parses a text-proto file; a file that is not UTF-8 or not that message is a ``ValueError``
    naming the file."""
    data = read_bounded(path, MAX_TEXT_PROTO_BYTES, "text-proto file")
    try:
        return parse_text(data.decode("utf-8"), message_class)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: {err}") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def parse_text(text: str, message_class):
    """Parses a text proto; a malformed file is a ``ValueError`` naming the problem."""
    try:
        return text_format.Parse(text, message_class())
    except text_format.ParseError as err:
        raise ValueError(f"not a valid {message_class.DESCRIPTOR.name} text proto: {err}") from None
