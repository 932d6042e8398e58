"""``rw-tf serve``, ``rw-tf predict`` and ``rw-tf serving-config`` (registered through the
``rw_tf.cli`` entry point)."""
from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import threading

import grpc

from rw_tf.cli.options import utf8_text
from rw_tf.cli.streams import print_json, require_standard_output
from rw_tf.config import MAX_WAIT_SECONDS
from rw_tf.data.lines import read_bounded
from rw_tf.errors import UserError
from rw_tf_serving.client import (
    MAX_MESSAGE_BYTES,
    RestError,
    RestExchangeError,
    ServingClient,
    rest_base_url,
    rest_predict,
    server_text,
)
from rw_tf_serving.config import (
    BatchingParameters,
    ModelSpec,
    docker_command,
    read_models_config,
    write_serving_configs,
)
from rw_tf_serving.core import ServerLimits
from rw_tf_serving.protos import SSL_CONFIG, read_text_proto
from rw_tf_serving.server import LocalModelServer


def port_number(value: str) -> int:
    """argparse type of ports: gRPC would bind 99999 as 99999 - 65536 without a word."""
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 picks a free one)")
    return port


def number_in(kind: type, low: float, high: float):
    """argparse type of a ``kind`` number in [low, high]. The upper bounds matter: these flags become
    C ints (gRPC) and timer waits (Python), which overflow past them and stopped the server or killed
    its threads, and each worker is a thread started at once."""
    def parse(value: str):
        number = kind(value)
        if not low <= number <= high:   # also NaN and inf
            raise argparse.ArgumentTypeError(f"{value} is not in {low:,} to {high:,}")
        return number
    parse.__name__ = kind.__name__   # argparse's "invalid int value: 'abc'"
    return parse


def rest_url(value: str) -> str:
    """argparse type of ``--rest``: an http(s) base URL (urllib would open ``file://`` paths too)."""
    try:
        rest_base_url(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    add_serve(sub)
    add_predict(sub)
    add_serving_config(sub)


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve SavedModels over TF Serving's gRPC (and REST) API")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-base-path", help="directory of numbered versions (a Pusher output)")
    src.add_argument("--model-config-file", help="TF Serving models.config (ModelServerConfig text proto)")
    p.add_argument("--model-config-file-poll-wait-seconds", type=number_in(float, 0, MAX_WAIT_SECONDS), default=0,
                   help="re-read --model-config-file this often and serve what it lists when it changes (TF "
                        "Serving's flag; 0, the default: read it once). gRPC HandleReloadConfigRequest works "
                        "either way")
    p.add_argument("--allow-version-labels-for-unavailable-models", action="store_true",
                   help="let a version label not yet assigned point at a version not loaded yet, as the labels "
                        "of the config at start do (TF Serving's flag)")
    p.add_argument("--model-name", help="default: the base path's folder name")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=port_number, default=8500, help="gRPC port (0: any free port)")
    p.add_argument("--rest-api-port", type=port_number, default=None, help="also serve REST on this port")
    p.add_argument("--version-policy", choices=("latest", "all", "specific"), default="latest")
    p.add_argument("--num-versions", type=number_in(int, 1, 2**31 - 1), default=1, help="with --version-policy latest")
    p.add_argument("--versions", type=int, nargs="*", default=[], help="with --version-policy specific")
    p.add_argument("--enable-batching", action="store_true")
    p.add_argument("--batching-parameters-file", help="BatchingParameters text proto (implies batching)")
    p.add_argument("--max-batch-size", type=int,
                   help=f"with --enable-batching (default {BatchingParameters.max_batch_size})")
    p.add_argument("--batch-timeout-micros", type=int,
                   help=f"with --enable-batching (default {BatchingParameters.batch_timeout_micros})")
    p.add_argument("--file-system-poll-wait-seconds", type=number_in(float, 0.001, MAX_WAIT_SECONDS), default=2.0)
    limits = ServerLimits()
    for field in ("max_text_bytes", "max_request_bytes", "max_elements", "max_texts", "max_rank", "max_json_depth"):
        p.add_argument("--" + field.replace("_", "-"), type=int, default=getattr(limits, field),
                       help=f"per request (default {getattr(limits, field)})")
    p.add_argument("--max-workers", type=number_in(int, 1, 1024), default=16,
                   help="requests served at once per front end (threads, 1 to 1,024)")
    p.add_argument("--request-timeout-in-ms", "--rest-api-timeout-in-ms", dest="request_timeout_in_ms",
                   type=number_in(int, 1, 1000 * MAX_WAIT_SECONDS), default=30000,
                   help="time for a request to arrive in full (then REST 408, gRPC DEADLINE_EXCEEDED) and for a "
                        "REST answer to be read; TF Serving's --rest_api_timeout_in_ms is accepted too")
    p.add_argument("--ssl-config-file", help="TF Serving SSLConfig text proto: server_key, server_cert (PEM), "
                                             "custom_ca and client_verify for mutual TLS; TLS on the gRPC port")
    p.add_argument("--shutdown-grace-seconds", type=number_in(float, 0.001, MAX_WAIT_SECONDS), default=10.0,
                   help="on SIGTERM or Ctrl-C: new requests are refused at once, those in flight get this long "
                        "to finish (default 10; Kubernetes waits 30 s before SIGKILL)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.model_config_file:
        given = [flag for flag, value, default in (("--model-name", args.model_name, None),
                                                    ("--version-policy", args.version_policy, "latest"),
                                                    ("--num-versions", args.num_versions, 1),
                                                    ("--versions", args.versions, [])) if value != default]
        if given:   # each model's name and version policy are the config file's
            raise UserError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} read with --model-base-path only",
                            hint="set each model's name and model_version_policy in the --model-config-file")
        specs = read_models_config(args.model_config_file)
    else:
        if args.allow_version_labels_for_unavailable_models:
            raise UserError("--allow-version-labels-for-unavailable-models is read with --model-config-file only "
                            "(version labels are set there)")
        name = args.model_name or os.path.basename(os.path.normpath(args.model_base_path))
        specs = [ModelSpec(name, os.path.abspath(args.model_base_path), args.version_policy, args.num_versions,
                           tuple(args.versions))]
    batching = None
    flags = {k: v for k, v in (("max_batch_size", args.max_batch_size),
                               ("batch_timeout_micros", args.batch_timeout_micros)) if v is not None}
    if flags and (args.batching_parameters_file or not args.enable_batching):
        raise UserError(f"{' and '.join('--' + k.replace('_', '-') for k in flags)} "
                        f"{'are' if len(flags) > 1 else 'is'} read with --enable-batching only",
                        hint="put batching settings in --batching-parameters-file, or give them with "
                             "--enable-batching and no file")
    if args.batching_parameters_file:
        batching = BatchingParameters.from_file(args.batching_parameters_file)
    elif args.enable_batching:
        batching = BatchingParameters(**flags)
    limits = ServerLimits(**{f: getattr(args, f) for f in ("max_text_bytes", "max_request_bytes", "max_elements",
                                                           "max_texts", "max_rank", "max_json_depth")})
    ssl_config = None
    if args.ssl_config_file:
        ssl_config = read_text_proto(args.ssl_config_file, SSL_CONFIG)
    if args.model_config_file_poll_wait_seconds and not args.model_config_file:
        raise UserError("--model-config-file-poll-wait-seconds polls the --model-config-file; give one")
    server = LocalModelServer(specs, args.host, args.port, args.rest_api_port, batching, limits,
                              args.file_system_poll_wait_seconds, args.max_workers, ssl_config,
                              args.request_timeout_in_ms / 1000, args.model_config_file,
                              args.model_config_file_poll_wait_seconds or None,
                              args.allow_version_labels_for_unavailable_models)
    # SIGTERM (docker stop, a Kubernetes rollout) ends the wait as Ctrl-C does: in-flight requests finish.
    # Installed before the models load, so a SIGTERM sent as soon as the server says it serves (or while
    # it loads) stops it cleanly rather than killing it. Python handles signals in the main thread only
    # (run_serve called from another thread skips this).
    handles_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: server.end_wait()) if handles_signals else None
    try:
        server.start()
    except BaseException as err:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous)
        if isinstance(err, OSError):
            raise UserError(str(err), hint="choose another --port or --rest-api-port (0 picks a free one)") from None
        raise
    try:   # the line inside: a Ctrl-C sent as soon as it is read may interrupt the print's return
        print(f"serving {[s.name for s in specs]} on {args.host}:{server.grpc_port}"
              + (f", REST on {args.host}:{server.rest_port}" if args.rest_api_port is not None else ""), flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous)
        print(f"stopping: requests in flight get up to {args.shutdown_grace_seconds:g} s", flush=True)
        server.stop(args.shutdown_grace_seconds)
    print("stopped", flush=True)
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="send texts to a served model (gRPC, or REST with --rest)",
                       epilog="Signatures with several inputs: --input question='Who?' --input context='...' "
                              "(repeat a name for a batch).")
    p.add_argument("texts", nargs="*", type=utf8_text, help="values of --input-name (default input 'text')")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--server", default="127.0.0.1:8500", help="gRPC host:port")
    target.add_argument("--rest", type=rest_url, help="REST base URL, e.g. http://127.0.0.1:8501")
    p.add_argument("--model", required=True, type=utf8_text)
    p.add_argument("--signature", default="classify_text", type=utf8_text)
    p.add_argument("--input-name", type=utf8_text, help="the input the TEXT arguments fill (default 'text')")
    p.add_argument("--input", dest="named_inputs", action="append", default=[], metavar="NAME=VALUE", type=utf8_text,
                   help="a string input by name; repeatable")
    p.add_argument("--input-file", dest="file_inputs", action="append", default=[], metavar="NAME=PATH",
                   help="a binary input (e.g. an image) read from PATH: raw bytes over gRPC, {\"b64\": ...} "
                        "over REST; repeatable")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=number_in(int, 0, 2**63 - 1), help="a version number (int64, as TF Serving's)")
    which.add_argument("--version-label", type=utf8_text, help="a version label of the model's config (e.g. stable)")
    p.add_argument("--timeout", type=number_in(float, 0.001, MAX_WAIT_SECONDS), default=10.0,
                   help="seconds the whole call may take (default 10)")
    p.set_defaults(func=run_predict)


def predict_inputs(args: argparse.Namespace) -> dict:
    inputs: dict = {}
    if args.input_name is not None and not args.texts:
        raise UserError("--input-name names the input the TEXT arguments fill; give TEXT arguments "
                        "(or --input NAME=VALUE instead)")
    if args.texts:
        inputs[args.input_name or "text"] = list(args.texts)
    for item in args.named_inputs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--input expects NAME=VALUE, got {item!r}")
        inputs.setdefault(name, []).append(value)
    room = MAX_MESSAGE_BYTES   # what the files may hold together: they travel in one request
    for item in args.file_inputs:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise UserError(f"--input-file expects NAME=PATH, got {item!r}")
        try:
            data = read_bounded(path, room, "--input-file", ", more than one request can carry" if
                                room == MAX_MESSAGE_BYTES else " (the room the files before it left in one request)")
            room -= len(data)
        except OSError as err:
            raise UserError(f"cannot read --input-file {path}: {err.strerror}") from None
        except ValueError as err:
            raise UserError(str(err)) from None
        # TF Serving's REST API carries binary strings as {"b64": ...}; gRPC takes the bytes.
        inputs.setdefault(name, []).append({"b64": base64.b64encode(data).decode("ascii")} if args.rest else data)
    if not inputs:
        raise UserError("nothing to send: give TEXT arguments, --input NAME=VALUE or --input-file NAME=PATH")
    sizes = {name: len(values) for name, values in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise UserError(f"every input needs the same number of values, got {sizes}")
    return inputs


def run_predict(args: argparse.Namespace) -> int:
    require_standard_output("run it with its output redirected to a file")
    inputs = predict_inputs(args)
    if args.rest:
        try:
            result = rest_predict(args.rest, args.model, inputs=inputs, signature=args.signature,
                                  version=args.version, timeout=args.timeout, label=args.version_label)
        except RestError as err:
            raise UserError(str(err)) from None
        except RestExchangeError as err:
            raise UserError(f"no answer from {args.rest}: {err}", hint="is `rw-tf serve --rest-api-port` "
                                                                         "(or TF Serving) running there?") from None
    else:
        client = ServingClient(args.server, timeout=args.timeout)
        try:
            result = client.predict(args.model, inputs, args.signature, args.version, label=args.version_label)
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise UserError(f"cannot reach {args.server}: {err.code().name}",
                                hint="is `rw-tf serve` (or TF Serving) running there?") from None
            raise UserError(f"{err.code().name}: {server_text(err.details() or '')}") from None
        finally:
            client.close()
    print_json(result, indent=2)
    return 0


def add_serving_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serving-config", help="write TF Serving configs (models.config, batching, "
                                              "monitoring, Kubernetes) for a push directory")
    p.add_argument("--push-root", required=True, help="folder holding one folder per pushed model")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--models-mount", default="/models", help="where the push root is mounted in the container")
    p.add_argument("--num-versions", type=number_in(int, 1, 2**31 - 1), default=1,
                   help="latest versions each model serves (TF Serving's num_versions, an int32)")
    p.set_defaults(func=run_serving_config)


def run_serving_config(args: argparse.Namespace) -> int:
    written = write_serving_configs(args.push_root, args.output_dir, args.models_mount, num_latest=args.num_versions)
    print_json({"files": written.paths, "models": written.models, "skipped": written.skipped}, indent=2)
    print("TF Serving (docker):\n  " + docker_command(args.push_root, args.output_dir, models_mount=args.models_mount))
    return 0
