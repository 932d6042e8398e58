"""One raw TF Serving ``PredictRequest`` to ``rw-tf serve`` against the Python API, on a held-out image.

    rw-tf finetune --task image_text --objective matching --fusion cross_attention --output-dir runs/itm
    .venv/bin/python examples/image_text_grpc.py --run runs/itm [--port 8600]

Starts ``rw-tf serve`` on the run's export, builds the gRPC request by hand with ``predict_pb2``
(image bytes and captions, signature ``match_image_text``), and prints the served match
probabilities next to those of the Keras model (``model.keras``: ``model.match`` on the same image
decoded and captions tokenized in Python), then the same through ``rw-tf predict --input-file``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import grpc
import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import rw_tf  # noqa: F401  (registers rw-tf's classes for load_model)
from rw_tf.checkpoints.pretrained import pretrained_tokenizer
from rw_tf.data.image_text import digit_pairs, split_pairs
from rw_tf.data.images import decode_images
from rw_tf.data.text_inputs import single_segment_inputs


def served_probabilities(port: int, image: bytes, captions: list) -> np.ndarray:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "itm", "match_image_text"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto([image] * len(captions), dtype=tf.string))
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(captions, dtype=tf.string))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=120)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(120):      # the server answers NOT_FOUND until it has loaded the version
            try:
                response = stub.Predict(request, timeout=60)
                return tf.make_ndarray(response.outputs["match_probability"]).reshape(-1)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                time.sleep(1)
    raise TimeoutError("the server did not load the model in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="output dir of rw-tf finetune --task image_text")
    parser.add_argument("--port", type=int, default=8600)
    args = parser.parse_args()
    config = json.load(open(os.path.join(args.run, "metrics.json")))
    task = config["task_config"]
    held_out = split_pairs(digit_pairs(), task["eval_fraction"], seed=config["trainer"]["seed"])[1]
    first = held_out[0]
    other = next(r["caption"] for r in held_out if r["label"] != first["label"])
    image, captions = first["image"], [first["caption"], other]
    image_file = os.path.join(args.run, "held_out_digit.png")
    open(image_file, "wb").write(image)
    print(f"image: {image_file} (held-out digit, {len(image)} bytes); captions: {captions}")

    model = keras.saving.load_model(os.path.join(args.run, "model.keras"))
    tokenizer = pretrained_tokenizer(args.run)     # the export's vocabulary and casing
    pixels = decode_images(tf.constant([image] * len(captions)), task["image_size"])
    tokens = single_segment_inputs(tokenizer, tf.constant(captions), task["max_sequence_length"])
    python_api = 1 / (1 + np.exp(-np.asarray(model.match(pixels, tokens)).reshape(-1)))
    print("Python API (model.keras: model.match)       match_probability:", python_api.tolist())

    rw_tf_command = os.path.join(os.path.dirname(sys.executable), "rw-tf")
    server = subprocess.Popen([rw_tf_command, "serve", "--model-base-path", os.path.join(args.run, "export"),
                               "--model-name", "itm", "--port", str(args.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        served = served_probabilities(args.port, image, captions)
        print(f"gRPC raw PredictRequest (rw-tf serve :{args.port}) match_probability:", served.tolist())
        print(f"max |difference|: {np.max(np.abs(served - python_api)):.2e}")
        predict = [rw_tf_command, "predict", "--server", f"127.0.0.1:{args.port}", "--model", "itm",
                   "--signature", "match_image_text", "--input-file", f"image={image_file}",
                   "--input", f"text={captions[0]}"]
        print("$", " ".join(predict[1:]))
        print(subprocess.run(predict, capture_output=True, text=True).stdout.strip())
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
