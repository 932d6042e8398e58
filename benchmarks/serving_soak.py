"""Soak: 16 clients send mixed good and hostile traffic to a real `rw-tf serve` for a fixed time.

    .venv/bin/python benchmarks/serving_soak.py [--model-base-path runs/pipeline/serving/rw_tf_finetune]
        [--seconds 60] [--clients 16]

Traffic mix (by weight): valid gRPC Predict and REST predict, and hostile requests (invalid UTF-8,
a tiny proto declaring 300,000 strings, a negative dimension, a wrong dtype, an over-long text, an
unknown model, ragged REST instances, deeply nested JSON, a non-numeric Content-Length). Prints,
per request kind, the count, p50/p99 latency and the status codes, then the errors by code and the
server's resident memory before and after. Needs a pushed classifier (``make run``).
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
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path", default="runs/pipeline/serving/rw_tf_finetune")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
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
    alive = server.poll() is None
    rss_after = rss_mb(server.pid) if alive else float("nan")
    print(f"\n{args.clients} clients for {args.seconds:.0f} s against {args.model_base_path}")
    print(f"{'request kind':16s} {'count':>6s} {'p50 ms':>8s} {'p99 ms':>8s}  status codes")
    by_code: collections.Counter = collections.Counter()
    for kind in population:
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
    faults = [code for code in by_code if code in ("INTERNAL", "UNKNOWN") or code.startswith("HTTP 5")]
    return 0 if alive and not faults else 1


if __name__ == "__main__":
    sys.exit(main())
