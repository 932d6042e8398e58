"""TF Serving's gRPC API (PredictionService, ModelService) on the official generated stubs.

Input tensors are validated on the wire proto before they are materialized
(``rw_tf_serving.validation``). At most ``max_workers`` requests run at once and
``4 * max_workers`` are admitted (gRPC answers RESOURCE_EXHAUSTED beyond that). With an
``SSLConfig`` (TF Serving's ``--ssl_config_file`` format) the port is TLS, optionally requiring
client certificates signed by ``custom_ca``.
"""
from __future__ import annotations

import functools
import logging
from concurrent import futures
from typing import Callable

import grpc
import tensorflow as tf
from google.protobuf import any_pb2, symbol_database
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from rw_tf_serving.core import ServingCore
from rw_tf_serving.errors import ServingError, invalid_argument, resource_exhausted
from rw_tf_serving.validation import array_from_tensor_proto

log = logging.getLogger("rw_tf.serving")


class _Undecodable:
    """Request bytes that are not the method's message (see ``_service_handler``)."""

    def __init__(self, message_name: str, error: Exception) -> None:
        self.detail = f"the request is not a valid {message_name}: {error}"


def _tolerant_parser(message_class) -> Callable:
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception as err:  # noqa: BLE001 - DecodeError, e.g. invalid UTF-8 in a string field
            return _Undecodable(message_class.DESCRIPTOR.full_name, err)
    return parse


def _service_handler(service, servicer) -> grpc.GenericRpcHandler:
    """The service's methods as the generated ``add_*Servicer_to_server`` registers them, except that
    request bytes that do not parse reach the method (and get INVALID_ARGUMENT from ``_handled``):
    gRPC itself would answer INTERNAL, which clients read as a server fault."""
    messages = symbol_database.Default()
    handlers = {m.name: grpc.unary_unary_rpc_method_handler(
        getattr(servicer, m.name), request_deserializer=_tolerant_parser(messages.GetSymbol(m.input_type.full_name)),
        response_serializer=messages.GetSymbol(m.output_type.full_name).SerializeToString) for m in service.methods}
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _handled(method: Callable) -> Callable:
    """Turns ``ServingError`` into the matching gRPC status; anything else into INTERNAL."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        if isinstance(request, _Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
        try:
            return method(self, request, context)
        except ServingError as err:
            context.abort(err.code, err.message)
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
    return wrapper


def _version(model_spec) -> "int | None":
    if model_spec.WhichOneof("version_choice") == "version_label":
        raise invalid_argument("version labels are not supported by this server; use a version number")
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServingCore) -> None:
        self.core = core

    def _fill_spec(self, response_spec, request_spec, servable, signature: str) -> None:
        response_spec.name = servable.name
        response_spec.version.value = servable.version
        response_spec.signature_name = signature

    @_handled
    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        limits = self.core.limits
        texts = sum(len(v.string_val) for v in request.inputs.values())
        if texts > limits.max_texts:
            raise resource_exhausted(f"the request carries {texts} strings; at most {limits.max_texts}")
        inputs = {k: array_from_tensor_proto(k, v, limits) for k, v in request.inputs.items()}
        servable, key, outputs = self.core.predict(request.model_spec.name, _version(request.model_spec),
                                                   request.model_spec.signature_name, inputs,
                                                   list(request.output_filter))
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, request.model_spec, servable, key)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    @_handled
    def Classify(self, request, context):  # noqa: N802
        kind = request.input.WhichOneof("kind")
        if kind == "example_list":
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
        elif kind == "example_list_with_context":
            context_example = request.input.example_list_with_context.context
            examples = []
            for e in request.input.example_list_with_context.examples:
                merged = type(e)()
                merged.CopyFrom(context_example)
                merged.MergeFrom(e)
                examples.append(merged.SerializeToString())
        else:
            examples = []
        if len(examples) > self.core.limits.max_texts:
            raise resource_exhausted(f"{len(examples)} examples; at most {self.core.limits.max_texts} per request")
        servable, key, classes, scores = self.core.classify(
            request.model_spec.name, _version(request.model_spec), request.model_spec.signature_name, examples)
        response = classification_pb2.ClassificationResponse()
        self._fill_spec(response.model_spec, request.model_spec, servable, key)
        for row in range(len(examples)):
            result = response.result.classifications.add()
            n = scores.shape[1] if scores is not None else classes.shape[1]
            for j in range(n):
                cls = result.classes.add()
                if classes is not None:
                    label = classes[row][j]
                    cls.label = label.decode("utf-8") if isinstance(label, bytes) else str(label)
                if scores is not None:
                    cls.score = float(scores[row][j])
        return response

    @_handled
    def GetModelMetadata(self, request, context):  # noqa: N802
        fields = set(request.metadata_field)
        if fields != {"signature_def"}:
            raise invalid_argument(f"Metadata field(s) {sorted(fields - {'signature_def'}) or '(none)'} not supported; "
                                   "request 'signature_def'")
        servable = self.core.servable(request.model_spec.name, _version(request.model_spec))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec, request.model_spec, servable, "")
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServingCore) -> None:
        self.core = core

    @_handled
    def GetModelStatus(self, request, context):  # noqa: N802
        manager = self.core.manager(request.model_spec.name)
        wanted = _version(request.model_spec)
        states = manager.versions()
        if wanted is not None:
            if wanted not in states:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {wanted} of model {request.model_spec.name}")
            states = {wanted: states[wanted]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state in states.items():
            status = response.model_version_status.add(version=version)
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            error = manager.load_error(version)
            if error:
                status.status.error_code = 13  # INTERNAL, as in TF Serving's StatusProto
                status.status.error_message = error
        return response


def server_credentials(ssl_config) -> grpc.ServerCredentials:
    """TLS credentials from an ``SSLConfig`` (PEM strings, as in TF Serving's --ssl_config_file)."""
    if not ssl_config.server_key or not ssl_config.server_cert:
        raise ValueError("the SSL config needs server_key and server_cert")
    if ssl_config.client_verify and not ssl_config.custom_ca:
        raise ValueError("client_verify needs custom_ca (the CA that signs client certificates)")
    return grpc.ssl_server_credentials([(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
                                       root_certificates=ssl_config.custom_ca.encode() or None,
                                       require_client_auth=ssl_config.client_verify)


def build_grpc_server(core: ServingCore, host: str, port: int, max_workers: int = 16,
                      ssl_config=None) -> "tuple[grpc.Server, int]":
    """Creates (not starts) the server; returns it and the bound port (0 picks a free one)."""
    options = [("grpc.max_receive_message_length", core.limits.max_request_bytes),
               ("grpc.max_send_message_length", 64 * 1024 * 1024)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options,
                         maximum_concurrent_rpcs=4 * max_workers)
    server.add_generic_rpc_handlers((
        _service_handler(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
                         PredictionServicer(core)),
        _service_handler(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"], ModelServicer(core))))
    address = f"{host}:{port}"
    bound = (server.add_secure_port(address, server_credentials(ssl_config)) if ssl_config is not None
             else server.add_insecure_port(address))
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    return server, bound
