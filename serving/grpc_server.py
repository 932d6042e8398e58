"""TF Serving's gRPC API (PredictionService, ModelService) on the official generated stubs.

Input tensors are validated on the wire proto before they are materialized
(``rw_tf_serving.validation``). The server is gRPC's asyncio one: a call holds no thread until its
request message has arrived, so clients that open calls and never send (or send slowly) cannot
starve the workers, and a request that has not arrived within ``receive_timeout`` seconds ends the
call with DEADLINE_EXCEEDED. Then at most ``max_workers`` requests run at once and
``4 * max_workers`` are admitted (UNAVAILABLE beyond that; ``rw_tf_serving.workers``). At most
``open_call_limit`` calls are open at once, which bounds the request bytes gRPC buffers for them. (No per-connection
stream cap: with one, calls that the server has ended while their client still holds the stream
open count against it, and channels to one address share a connection, so other clients' calls
were refused with REFUSED_STREAM.) With an ``SSLConfig`` (TF Serving's ``--ssl_config_file`` format)
the port is TLS, optionally requiring client certificates signed by ``custom_ca``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import grpc
import tensorflow as tf
from google.protobuf import any_pb2, symbol_database
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
)

from rw_tf_serving.config import model_specs
from rw_tf_serving.core import ServingCore
from rw_tf_serving.errors import ServingError, bounded_message, invalid_argument, resource_exhausted
from rw_tf_serving.validation import array_from_tensor_proto
from rw_tf_serving.workers import RequestWorkers

log = logging.getLogger("rw_tf.serving")
# gRPC buffers each open call's request message as it arrives (up to max_request_bytes), so the
# calls open at once are bounded by this many buffered bytes: 128 calls at the default 16 MiB.
BUFFERED_REQUEST_BYTES = 2 * 1024 ** 3
# Each open call also holds gRPC's own state (kilobytes), and gRPC takes the limit as a C int:
# --max-request-bytes 1 asked for 2**31 calls, which stopped the server with OverflowError.
MAX_OPEN_CALLS = 65_536


def open_call_limit(max_workers: int, max_request_bytes: int) -> int:
    """Calls open at once, complete or still receiving (RESOURCE_EXHAUSTED beyond)."""
    return min(MAX_OPEN_CALLS, max(4 * max_workers, BUFFERED_REQUEST_BYTES // max_request_bytes))


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


def _service_handler(service, servicer, workers: RequestWorkers, receive_timeout: float) -> grpc.GenericRpcHandler:
    """The service's methods as the generated ``add_*Servicer_to_server`` registers them, with two
    differences. Each is registered as request-streaming (the wire format of a unary call is the
    same), so the handler starts when the call opens and can give up on a request that does not
    arrive within ``receive_timeout`` (a unary handler only starts once it has). Request bytes that
    do not parse reach the handler and get INVALID_ARGUMENT: gRPC itself would answer INTERNAL,
    which clients read as a server fault."""
    messages = symbol_database.Default()
    handlers = {m.name: grpc.stream_unary_rpc_method_handler(
        _on_workers(getattr(servicer, m.name), workers, receive_timeout),
        request_deserializer=_tolerant_parser(messages.GetSymbol(m.input_type.full_name)),
        response_serializer=messages.GetSymbol(m.output_type.full_name).SerializeToString)
        for m in service.methods if hasattr(servicer, m.name)}   # the others (Regress, ...) are UNIMPLEMENTED
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _on_workers(method: Callable, workers: RequestWorkers, receive_timeout: float) -> Callable:
    """The asyncio handler of one method: waits at most ``receive_timeout`` for the request, runs the
    method on the worker threads and turns ``ServingError`` into the matching gRPC status, anything
    else into INTERNAL."""
    async def handler(_requests, context):   # the request is read with context.read()
        try:
            request = await asyncio.wait_for(context.read(), receive_timeout)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"the request did not arrive within {receive_timeout:g} s")
        if request is grpc.aio.EOF:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without a request message")
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
        try:
            return await workers.run(method, request)
        except ServingError as err:
            await context.abort(err.code, err.message)
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, bounded_message(f"{type(err).__name__}: {err}"))
    return handler


def _version(core: ServingCore, model_spec) -> "int | None":
    """The version a request's ModelSpec names: its number, its label's version, or None (latest)."""
    if model_spec.WhichOneof("version_choice") == "version_label":
        return core.version_for(model_spec.name, None, model_spec.version_label)
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionServicer:
    """TF Serving's PredictionService; each method takes the request and returns the response."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core

    def _fill_spec(self, response_spec, request_spec, servable, signature: str) -> None:
        response_spec.name = servable.name
        response_spec.version.value = servable.version
        response_spec.signature_name = signature

    def Predict(self, request):  # noqa: N802 (gRPC method name)
        limits = self.core.limits
        texts = sum(len(v.string_val) for v in request.inputs.values())
        if texts > limits.max_texts:
            raise resource_exhausted(f"the request carries {texts} strings; at most {limits.max_texts}")
        inputs = {k: array_from_tensor_proto(k, v, limits) for k, v in request.inputs.items()}
        servable, key, outputs = self.core.predict(request.model_spec.name, _version(self.core, request.model_spec),
                                                   request.model_spec.signature_name, inputs,
                                                   list(request.output_filter))
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, request.model_spec, servable, key)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def Classify(self, request):  # noqa: N802
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
        spec = request.model_spec
        servable, key, classes, scores = self.core.classify(spec.name, _version(self.core, spec), spec.signature_name,
                                                            examples)
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

    def GetModelMetadata(self, request):  # noqa: N802
        fields = set(request.metadata_field)
        if fields != {"signature_def"}:
            raise invalid_argument(f"Metadata field(s) {sorted(fields - {'signature_def'}) or '(none)'} not supported; "
                                   "request 'signature_def'")
        servable = self.core.servable(request.model_spec.name, _version(self.core, request.model_spec))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec, request.model_spec, servable, "")
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelServicer:
    """TF Serving's ModelService: version states, and the model list replaced while serving."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core

    def HandleReloadConfigRequest(self, request):  # noqa: N802
        """Serves the request's ``model_config_list`` from now on (``ServingCore.reload``). An empty
        config changes nothing (TF Serving's rule); base paths must be absolute or URIs. Metrics
        named in ``metric_names`` are not collected by this server: the response lists none."""
        kind = request.config.WhichOneof("config")
        if kind is None:
            log.info("reload config: empty config, nothing changed")
        elif kind != "model_config_list":
            raise invalid_argument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                   "Only ModelConfigList is currently supported")
        else:
            try:
                specs = model_specs(request.config, "the ReloadConfigRequest", absolute_paths=True)
            except (ValueError, TypeError) as err:
                raise invalid_argument(str(err)) from None
            try:
                self.core.reload(specs)
            except ServingError as err:
                log.error("reload config failed: %s", err.message)
                raise
            log.info("reload config: serving %s", sorted(self.core.models))
        return model_management_pb2.ReloadConfigResponse()

    def GetModelStatus(self, request):  # noqa: N802
        manager = self.core.manager(request.model_spec.name)
        wanted = _version(self.core, request.model_spec)
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


async def start_grpc_server(core: ServingCore, host: str, port: int, workers: RequestWorkers, ssl_config=None,
                            receive_timeout: float = 30.0) -> "tuple[grpc.aio.Server, int]":
    """Starts the server on the running event loop, running requests on ``workers``; returns it and
    the bound port (0 picks a free one)."""
    options = [("grpc.max_receive_message_length", core.limits.max_request_bytes),
               ("grpc.max_send_message_length", 64 * 1024 * 1024),
               ("grpc.compression_enabled_algorithms_bitset", 1)]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=open_call_limit(
        workers.max_workers, core.limits.max_request_bytes))
    server.add_generic_rpc_handlers((
        _service_handler(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
                         PredictionServicer(core), workers, receive_timeout),
        _service_handler(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"], ModelServicer(core),
                         workers, receive_timeout)))
    address = f"{host}:{port}"
    try:
        bound = (server.add_secure_port(address, server_credentials(ssl_config)) if ssl_config is not None
                 else server.add_insecure_port(address))
    except RuntimeError:  # grpc.aio raises where the threaded server returned 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (gRPC): the address is in use or not this machine's")
    await server.start()
    return server, bound
