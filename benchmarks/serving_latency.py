"""Serving latency and throughput: direct SavedModel calls vs. the local gRPC server, in one run.

    .venv/bin/python benchmarks/serving_latency.py [--model-base-path runs/pipeline/serving/rw_tf_finetune]
        [--signature classify_text] [--requests 300] [--clients 8]

Rows: batch-1 requests sent sequentially and from concurrent clients, calling the SavedModel
signature in-process (the peer) and over gRPC with server batching off and on. Prints p50/p99
latency and throughput, and the gRPC/direct ratios. Needs a pushed model (``make run``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from rw_tf.model_files import version_folders  # noqa: E402
from rw_tf_serving.config import BatchingParameters, ModelSpec  # noqa: E402
from rw_tf_serving.server import LocalModelServer  # noqa: E402

TEXTS = ["The while statement is used for repeated execution as long as an expression is true.",
         "Return a new sorted list from the items in iterable.",
         "Dictionaries map hashable keys to arbitrary objects.",
         "Create a new thread and return its identifier."]


def run_load(call: Callable[[int], None], requests: int, clients: int) -> Dict[str, float]:
    latencies: List[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            call(i)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    for i in range(min(20, requests)):  # warm-up (graph tracing, connections)
        call(i)
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
            "rps": len(ordered) / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path", default="runs/pipeline/serving/rw_tf_finetune")
    parser.add_argument("--signature", default="classify_text")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    args = parser.parse_args()
    versions = version_folders(args.model_base_path)
    if not versions:
        print(f"no pushed model under {args.model_base_path}; run `make run` first", file=sys.stderr)
        return 2
    path = os.path.join(args.model_base_path, versions[max(versions)])
    fn = tf.saved_model.load(path).signatures[args.signature]
    inputs = [tf.constant([t]) for t in TEXTS]

    def direct(i: int) -> None:
        fn(text=inputs[i % len(inputs)])

    rows = []
    for clients in (1, args.clients):
        rows.append(("direct SavedModel call", clients, "-", run_load(direct, args.requests, clients)))
    for batching in (None, BatchingParameters(args.max_batch_size, args.batch_timeout_micros, 100, 2)):
        with LocalModelServer([ModelSpec("m", os.path.abspath(args.model_base_path))], port=0,
                              batching=batching) as server:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            requests = []
            for text in TEXTS:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "m"
                request.model_spec.signature_name = args.signature
                request.inputs["text"].CopyFrom(tf.make_tensor_proto([text]))
                requests.append(request)

            def over_grpc(i: int, stub=stub, requests=requests) -> None:
                stub.Predict(requests[i % len(requests)], timeout=30)

            for clients in (1, args.clients):
                rows.append(("gRPC local server", clients, "on" if batching else "off",
                             run_load(over_grpc, args.requests, clients)))
            channel.close()

    print(f"\nmodel {path}, signature {args.signature}, batch-1 requests: {args.requests} per row")
    print(f"{'mode':24s} {'clients':>7s} {'batching':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s}")
    for mode, clients, batching, r in rows:
        print(f"{mode:24s} {clients:7d} {batching:>8s} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rps']:8.1f}")
    direct1, directn = rows[0][3], rows[1][3]
    print(f"gRPC overhead at 1 client (p50 gRPC / p50 direct): {rows[2][3]['p50_ms'] / direct1['p50_ms']:.2f}x")
    print(f"throughput at {args.clients} clients, gRPC / direct: "
          f"batching off {rows[3][3]['rps'] / directn['rps']:.2f}x, "
          f"batching on {rows[5][3]['rps'] / directn['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
