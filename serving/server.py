"""A local model server that speaks TF Serving's gRPC (and REST) API, for machines without TF Serving.

    rw-tf serve --model-base-path runs/pipeline/serving/rw_tf_finetune [--model-name NAME]
    rw-tf serve --model-config-file models.config [--batching-parameters-file batching.txt]

Loads every version the policy wants, polls the base paths for newly pushed versions
(``--file-system-poll-wait-seconds``), batches concurrent requests, binds 127.0.0.1 by default.
The model list changes while serving by a gRPC ``HandleReloadConfigRequest`` or, with
``--model-config-file-poll-wait-seconds``, when the config file changes (``ServingCore.reload``).

Example:
    >>> server = LocalModelServer([ModelSpec("m", "/models/m")], port=0).start()  # doctest: +SKIP
    >>> server.grpc_port                                                           # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Optional, Sequence

import grpc
from tensorflow_serving.config import model_server_config_pb2

from rw_tf.config import checks_number_arguments
from rw_tf_serving.config import BatchingParameters, ModelSpec, model_specs
from rw_tf_serving.core import ServerLimits, ServingCore
from rw_tf_serving.errors import ServingError
from rw_tf_serving.grpc_server import start_grpc_server
from rw_tf_serving.protos import read_text_proto
from rw_tf_serving.rest_server import RestFrontEnd
from rw_tf_serving.workers import EventLoopThread, RequestWorkers

log = logging.getLogger("rw_tf.serving")
SIGNAL_CHECK_SECONDS = 0.2


async def _together(coroutines) -> None:
    await asyncio.gather(*coroutines)


@checks_number_arguments(may_be_zero=("port", "rest_port"))   # port 0: any free port
class LocalModelServer:
    def __init__(self, specs: Sequence[ModelSpec], host: str = "127.0.0.1", port: int = 8500,
                 rest_port: Optional[int] = None, batching: Optional[BatchingParameters] = None,
                 limits: Optional[ServerLimits] = None, poll_seconds: float = 2.0, max_workers: int = 16,
                 ssl_config=None, request_timeout: float = 30.0, config_file: Optional[str] = None,
                 config_poll_seconds: Optional[float] = None,
                 allow_labels_for_unavailable_models: bool = False) -> None:
        if not specs:
            raise ValueError("no models to serve")
        if config_poll_seconds is not None and config_file is None:
            raise ValueError("config_poll_seconds needs the config_file to poll")
        self.core = ServingCore(specs, batching, limits, allow_labels_for_unavailable_models)
        # TF Serving's --model_config_file_poll_wait_seconds: None (its 0) reads the file once.
        self.config_file, self.config_poll_seconds = config_file, config_poll_seconds
        self.host, self.port, self.rest_port = host, port, rest_port
        self.poll_seconds = poll_seconds
        self.max_workers = max_workers
        self.ssl_config = ssl_config  # an SSLConfig message (rw_tf_serving.protos): TLS on the gRPC port
        self.request_timeout = request_timeout  # to receive a request (both APIs) and to send a REST answer
        self._stop = threading.Event()
        self._io: Optional[EventLoopThread] = None
        self._grpc = self._grpc_workers = self._rest = None
        self.grpc_port: Optional[int] = None

    def start(self) -> "LocalModelServer":
        self.core.refresh()  # the first load happens before the port opens
        for name, manager in self.core.models.items():
            if not manager.versions():
                log.warning("model %s has no loadable version under %s yet", name, manager.spec.base_path)
        # Both front ends receive on one event loop thread; requests run on each one's worker threads.
        self._io = EventLoopThread()
        self._grpc_workers = RequestWorkers(self.max_workers, 4 * self.max_workers, "grpc")
        try:
            self._grpc, self.grpc_port = self._io.run(start_grpc_server(
                self.core, self.host, self.port, self._grpc_workers, self.ssl_config, self.request_timeout))
            if self.rest_port is not None:
                self._rest = RestFrontEnd(self.core, self.max_workers, self.request_timeout)
                self.rest_port = self._io.run(self._rest.start(self.host, self.rest_port))
        except BaseException:
            self.stop()
            raise
        threading.Thread(target=self._poll, daemon=True, name="version-poll").start()
        if self.config_poll_seconds is not None:
            threading.Thread(target=self._poll_config, daemon=True, name="config-poll").start()
        log.info("serving %s on %s:%d (gRPC)%s", sorted(self.core.models), self.host, self.grpc_port,
                 f" and :{self.rest_port} (REST)" if self._rest else "")
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.core.refresh()
            except Exception:  # noqa: BLE001 - keep polling; the error is logged
                log.exception("version poll failed")

    def _poll_config(self) -> None:
        """Re-reads the config file and serves what it lists when that changes. A file that cannot
        be read or parsed (one half written, say) changes nothing and is logged once per error; an
        empty file changes nothing (TF Serving's rule)."""
        last_error = None
        while not self._stop.wait(self.config_poll_seconds):
            try:
                config = read_text_proto(self.config_file, model_server_config_pb2.ModelServerConfig)
                if config.WhichOneof("config") is None:
                    continue
                specs = model_specs(config, self.config_file)
                if {s.name: s for s in specs} != {name: m.spec for name, m in self.core.models.items()}:
                    self.core.reload(specs)
                    log.info("config %s reloaded: serving %s", self.config_file, sorted(self.core.models))
                last_error = None
            except (OSError, ValueError, TypeError, ServingError) as err:
                applied = isinstance(err, ServingError) and err.code == grpc.StatusCode.UNKNOWN
                error = (f"config {self.config_file} reloaded, but {err} (loaded once they are there)" if applied
                         else f"config {self.config_file} not applied (the last one stays; read again every "
                              f"{self.config_poll_seconds:g} s): {err}")
                if error != last_error:
                    log.error("%s", error)
                last_error = error
            except Exception:  # noqa: BLE001 - keep polling; the error is logged
                log.exception("config poll failed")

    def wait(self) -> None:
        """Returns after ``stop`` or ``end_wait``; Ctrl-C raises ``KeyboardInterrupt`` here."""
        # The kernel may hand a process's signal to any of its threads (gRPC's, TensorFlow's). Python
        # then only flags it for the main thread, which runs the handler when it next runs bytecode:
        # never, in a lock wait without a timeout. Waking now and then bounds how late it is handled.
        while not self._stop.wait(SIGNAL_CHECK_SECONDS):
            pass

    def end_wait(self) -> None:
        """Makes ``wait`` return (safe in a signal handler); ``stop`` then shuts the server down."""
        self._stop.set()

    def stop(self, grace: float = 2.0) -> None:
        """Refuses new requests at once and lets those in flight on either API finish for up to
        ``grace`` seconds; then closes everything."""
        self._stop.set()
        if self._io is not None:
            fronts = [self._grpc.stop(grace)] if self._grpc is not None else []
            if self._rest is not None:
                fronts.append(self._rest.close(grace))
            if fronts:
                self._io.run(_together(fronts))
            self._grpc_workers.close()
            self._io.close()
            # Released now: a gRPC server object left for the interpreter's exit is freed after
            # grpc's own module state, and printed a traceback (AttributeError ... 'POLLER').
            self._io = self._grpc = self._rest = None
        self.core.close()

    def __enter__(self) -> "LocalModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
