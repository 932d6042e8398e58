"""Soak: 16 clients send mixed good and hostile traffic to a real `rw-tf serve` for a fixed time.

    .venv/bin/python benchmarks/serving_soak.py [--model-base-path runs/pipeline/serving/rw_tf_finetune]
        [--seconds 60] [--clients 16] [--slow-clients 32]

Traffic mix (by weight): valid gRPC Predict and REST predict, and hostile requests (invalid UTF-8,
a tiny proto declaring 300,000 strings, a negative dimension, a wrong dtype, an over-long text, an
unknown model, ragged REST instances, deeply nested JSON, a non-numeric Content-Length). Prints,
per request kind, the count, p50/p99 latency and the status codes, then the errors by code and the
server's resident memory before and after. Meanwhile ``--slow-clients`` REST connections send
their request a byte every half second and as many gRPC calls stay open without sending theirs (twice
the server's 16 workers by default; each starts again when the server ends it): the rows
``slow_rest`` and ``stalled_grpc`` count how the server ended them, and the good rows show whether
they cost other clients anything. Needs a pushed classifier (``make run``).
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MODEL = "rw_tf_finetune"
TEXTS = ["The while statement repeats a suite.", "Return a new sorted list from the items in iterable.",
         "Dictionaries map hashable keys to arbitrary objects."]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def grpc_request(kind: str):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope" if kind == "unknown_model" else MODEL
    request.model_spec.signature_name = "classify_text"
    proto = request.inputs["text"]
    if kind == "good_grpc":
        proto.CopyFrom(tf.make_tensor_proto([random.choice(TEXTS)]))
    elif kind == "invalid_utf8":
        proto.CopyFrom(tf.make_tensor_proto([b"bad \xff\xfe"]))
    elif kind in ("declared_300k", "negative_dim"):
        proto.dtype = types_pb2.DT_STRING
        proto.tensor_shape.dim.add(size=300_000 if kind == "declared_300k" else -1)
        proto.string_val.append(b"one")
    elif kind == "wrong_dtype":
        proto.CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    elif kind == "over_long_text":
        proto.CopyFrom(tf.make_tensor_proto(["word " * 40_000]))
    else:
        proto.CopyFrom(tf.make_tensor_proto(TEXTS))
    return request


REST_BODIES = {"good_rest": json.dumps({"signature_name": "classify_text", "instances": TEXTS[:2]}).encode(),
               "ragged_rest": b'{"signature_name": "classify_text", "instances": [["a", "b"], ["c"]]}',
               "deep_json": b"[" * 50_000 + b"]" * 50_000, "bad_length": b"{}"}
KINDS = {"good_grpc": 5, "good_rest": 2, "invalid_utf8": 1, "declared_300k": 1, "negative_dim": 1, "wrong_dtype": 1,
         "over_long_text": 1, "unknown_model": 1, "ragged_rest": 1, "deep_json": 1, "bad_length": 1}


def rest_call(port: int, kind: str) -> str:
    body = REST_BODIES[kind]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", f"/v1/models/{MODEL}:predict")
        connection.putheader("Content-Length", "many" if kind == "bad_length" else str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return f"HTTP {response.status}"
    except OSError:   # includes timeouts: the server did not answer within 30 s
        return "no answer"
    finally:
        connection.close()


DRIPPED = f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nContent-Length: 400\r\n\r\n".encode() + b" " * 400


def slow_rest(port: int, stop: threading.Event, record) -> None:
    """Sends a request a byte every 0.5 s (it would take 4 minutes); records how the server ended it."""
    while not stop.is_set():
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(60)
            try:
                for byte in DRIPPED:
                    if stop.wait(0.5):
                        return
                    sock.sendall(bytes([byte]))
                code = "sent in full"
            except OSError:
                code = "closed by server"
            try:
                reply = sock.recv(100)
                code = reply.split(b"\r\n")[0].decode("latin-1").replace("HTTP/1.1 ", "HTTP ")[:8] or code
            except OSError:
                pass
        record("slow_rest", time.perf_counter() - started, code)


def stalled_grpc(channel: grpc.Channel, stop: threading.Event, record) -> None:
    """Opens a Predict call and never sends its request; records how the server ended it."""
    open_call = channel.stream_unary("/tensorflow.serving.PredictionService/Predict",
                                     request_serializer=bytes, response_deserializer=bytes)

    def never_sent():
        stop.wait()
        yield from ()

    while not stop.is_set():
        started = time.perf_counter()
        try:
            open_call(never_sent())
            code = "OK"
        except grpc.RpcError as err:
            code = err.code().name
        if not stop.is_set():
            record("stalled_grpc", time.perf_counter() - started, code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path", default="runs/pipeline/serving/rw_tf_finetune")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slow-clients", type=int, default=32, help="slow REST clients and stalled gRPC calls, each")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "rw_tf.cli.main", "serve", "--model-base-path",
                               args.model_base_path, "--model-name", MODEL, "--port", "0", "--rest-api-port", "0",
                               "--enable-batching"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    grpc_port, rest_port = map(int, re.findall(r":(\d+)", server.stdout.readline()))
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for _ in range(5):
        stub.Predict(grpc_request("good_grpc"), timeout=60)
    rss_before = rss_mb(server.pid)
    results = collections.defaultdict(list)
    lock = threading.Lock()
    population, weights = list(KINDS), list(KINDS.values())
    stop_at = time.monotonic() + args.seconds

    def record(kind: str, seconds: float, code: str) -> None:
        with lock:
            results[kind].append((seconds, code))

    stop_slow = threading.Event()
    slow_channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    slow = [threading.Thread(target=slow_rest, args=(rest_port, stop_slow, record)) for _ in range(args.slow_clients)]
    slow += [threading.Thread(target=stalled_grpc, args=(slow_channel, stop_slow, record))
             for _ in range(args.slow_clients)]
    for t in slow:
        t.start()
    time.sleep(1.0)   # the slow clients are connected before the others start

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            kind = rng.choices(population, weights)[0]
            started = time.perf_counter()
            if kind in REST_BODIES:
                code = rest_call(rest_port, kind)
            else:
                try:
                    stub.Predict(grpc_request(kind), timeout=30)
                    code = "OK"
                except grpc.RpcError as err:
                    code = err.code().name
            with lock:
                results[kind].append((time.perf_counter() - started, code))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop_slow.set()
    for t in slow:
        t.join()
    slow_channel.close()
    alive = server.poll() is None
    rss_after = rss_mb(server.pid) if alive else float("nan")
    print(f"\n{args.clients} clients for {args.seconds:.0f} s against {args.model_base_path}, with "
          f"{args.slow_clients} slow REST clients and {args.slow_clients} stalled gRPC calls")
    print(f"{'request kind':16s} {'count':>6s} {'p50 ms':>8s} {'p99 ms':>8s}  status codes")
    by_code: collections.Counter = collections.Counter()
    for kind in population + ["slow_rest", "stalled_grpc"]:
        rows = sorted(results[kind])
        if not rows:
            continue
        codes = collections.Counter(code for _, code in rows)
        by_code.update(codes)
        p50, p99 = rows[len(rows) // 2][0], rows[int(0.99 * (len(rows) - 1))][0]
        print(f"{kind:16s} {len(rows):6d} {1000 * p50:8.1f} {1000 * p99:8.1f}  {dict(codes)}")
    print(f"total {sum(by_code.values())} requests; by code: {dict(by_code)}")
    print(f"server alive: {alive}; resident memory {rss_before:.0f} MB -> {rss_after:.0f} MB")
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    channel.close()
    faults = [code for code in by_code if code in ("INTERNAL", "UNKNOWN", "no answer") or code.startswith("HTTP 5")]
    return 0 if alive and not faults else 1


if __name__ == "__main__":
    sys.exit(main())
