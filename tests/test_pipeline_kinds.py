"""The sentence-embedding, recommendation, multimodal and qa pipeline kinds: LocalDagRunner end to end
(all-MiniLM-L6-v2 fine-tuned on (query, item, negative) docstring examples; a two-tower recommender
on the standard library's import graph; image-text matching on digits as PNG bytes; extractive QA
on the docstring glossary), each TFMA gate
against a direct computation with the pushed model, a pushed model through the local gRPC server,
and the Kubeflow specs."""
import base64
import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.kubeflow_runner import compile_kubeflow
from rw_tf_pipeline.local_runner import run_pipeline
from rw_tf_pipeline.prepare import input_file
from rw_tf_serving.config import ModelSpec
from rw_tf_serving.server import LocalModelServer

SMALL = dict(embedding_train_steps=8, embedding_eval_steps=2, batch_size=16, max_sequence_length=32,
             beam_direct_running_mode="in_memory", vocab_size=2000, pair_accuracy_lower_bound=0.6,
             recommendation_train_steps=40, recommendation_eval_steps=20, hit_at_10_lower_bound=0.1)


# Each kind's LocalDagRunner run takes 2-3 minutes on 2 cores: end to end, so `slow` (make test-all);
# the tasks, exports and Kubeflow specs of these kinds are covered by the fast suite.
@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory):
    config = PipelineConfig(root=str(tmp_path_factory.mktemp("embedding")), **SMALL)
    return config, run_pipeline("embedding", config)["embedding"]


@pytest.mark.slow
def test_blessed_and_the_gate_measures_pair_accuracy(embedding_run):
    config, summary = embedding_run
    assert summary["blessed"] and summary["pushed"]
    rows = [json.loads(line) for line in open(input_file(config, "embedding", "eval"), encoding="utf-8")]
    train = [json.loads(line) for line in open(input_file(config, "embedding", "train"), encoding="utf-8")]
    assert {r["group"] for r in rows}.isdisjoint({r["group"] for r in train})   # no module on both sides
    assert all(r["negative"] != r["item"] for r in rows)
    embed = tf.saved_model.load(summary["pushed_destination"]).signatures["embed_text"]
    vectors = {k: embed(text=tf.constant([r[k] for r in rows]))["embedding"].numpy()
               for k in ("query", "item", "negative")}
    direct = np.mean(np.sum(vectors["query"] * vectors["item"], 1) > np.sum(vectors["query"] * vectors["negative"], 1))
    gate = summary["gate"]["pair_accuracy"]["value"]
    print("pair accuracy: TFMA", gate, "direct", direct)
    assert gate == pytest.approx(direct, abs=1e-6)


@pytest.mark.slow
def test_pushed_model_serves_embeddings_over_grpc(embedding_run):
    _, summary = embedding_run
    base = os.path.dirname(summary["pushed_destination"])
    server = LocalModelServer([ModelSpec("rw_tf_embedding", base)], port=0, rest_port=None).start()
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "rw_tf_embedding"
        request.model_spec.signature_name = "embed_text"
        texts = ["Return the length of a list.", "Open a file and return a stream."]
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        served = tf.make_ndarray(response.outputs["embedding"])
    finally:
        server.stop()
    direct = tf.saved_model.load(summary["pushed_destination"]).signatures["embed_text"](text=tf.constant(texts))
    np.testing.assert_allclose(served, direct["embedding"].numpy(), atol=1e-6)
    assert np.linalg.norm(served, axis=1) == pytest.approx(np.ones(2), rel=1e-5)


@pytest.mark.slow
def test_recommendation_kind_gate_equals_the_pushed_model_on_the_eval_rows(tmp_path):
    config = PipelineConfig(root=str(tmp_path), **SMALL)
    summary = run_pipeline("recommendation", config)["recommendation"]
    assert summary["blessed"] and summary["pushed"]
    rows = [json.loads(line) for line in open(input_file(config, "recommendation", "eval"), encoding="utf-8")]
    train = {(r["history"], r["item"]) for r in map(json.loads, open(input_file(config, "recommendation", "train")))}
    assert not {(r["history"], r["item"]) for r in rows} & train          # no held-out case is a training row
    recommend = tf.saved_model.load(summary["pushed_destination"]).signatures["recommend"]
    top = recommend(history=tf.constant([r["history"] for r in rows]))["item_ids"].numpy()
    # The gate reads `recommendation_eval_steps` batches of the eval split (every row here).
    direct = np.mean([r["item"].encode() in row for r, row in zip(rows, top)])
    gate = summary["gate"]["hit_at_10"]["value"]
    print("hit@10: TFMA", gate, "direct", direct, "rows", len(rows))
    assert gate == pytest.approx(direct, abs=1e-6)


@pytest.mark.slow
def test_multimodal_kind_images_travel_as_bytes_and_the_gate_equals_the_pushed_model(tmp_path):
    config = PipelineConfig(root=str(tmp_path), **SMALL, multimodal_train_steps=150, multimodal_eval_steps=12,
                            match_accuracy_lower_bound=0.6)
    summary = run_pipeline("multimodal", config)["multimodal"]
    assert summary["blessed"] and summary["pushed"]
    read = lambda split: [json.loads(line) for line in open(input_file(config, "multimodal", split), encoding="utf-8")]
    rows, train = read("eval"), read("train")
    assert {r["image"]["b64"] for r in rows}.isdisjoint({r["image"]["b64"] for r in train})   # split by image
    images = [base64.b64decode(r["image"]["b64"]) for r in rows]
    assert all(image.startswith(b"\x89PNG") for image in images)
    match = tf.saved_model.load(summary["pushed_destination"]).signatures["match_image_text"]
    own = match(image=tf.constant(images), text=tf.constant([r["caption"] for r in rows]))["match_probability"]
    other = match(image=tf.constant(images), text=tf.constant([r["negative_caption"] for r in rows]))
    direct = np.mean(0.5 * (own.numpy() > 0.5) + 0.5 * (other["match_probability"].numpy() <= 0.5))
    gate = summary["gate"]["match_accuracy"]["value"]
    print("match accuracy: TFMA", gate, "direct", direct, "rows", len(rows))
    assert gate == pytest.approx(direct, abs=1e-6) and gate > 0.6


@pytest.mark.slow
def test_qa_kind_gate_equals_the_pushed_models_answers_on_the_eval_rows(tmp_path):
    # Short fine-tunes of the span head vary with the order of the windows (120 steps of 16, same
    # data: 8% to 64% span exact match over four orders), so the bound is far from both ends.
    config = PipelineConfig(root=str(tmp_path), **SMALL, qa_train_steps=200, qa_eval_steps=4,
                            span_exact_match_lower_bound=0.1)
    summary = run_pipeline("qa", config)["qa"]
    assert summary["blessed"] and summary["pushed"]
    read = lambda split: [json.loads(line) for line in open(input_file(config, "qa", split), encoding="utf-8")]
    rows, train = read("eval"), read("train")
    assert {r["context"] for r in rows}.isdisjoint({r["context"] for r in train})   # no context on both sides
    answer = tf.saved_model.load(summary["pushed_destination"]).signatures["answer_question"]
    served = [answer(question=tf.constant([r["question"] for r in rows[lo:lo + 32]]),
                     context=tf.constant([r["context"] for r in rows[lo:lo + 32]])) for lo in range(0, len(rows), 32)]
    starts = np.concatenate([s["start"].numpy() for s in served])
    ends = np.concatenate([s["end"].numpy() for s in served])
    direct = np.mean([(s, e) == (r["answer_start"], r["answer_start"] + len(r["answer"]))
                      for s, e, r in zip(starts, ends, rows)])
    gate = summary["gate"]["span_exact_match"]["value"]
    print("span exact match: TFMA", gate, "served offsets", direct, "rows", len(rows))
    assert gate == pytest.approx(direct, abs=1e-6) and gate > 0.1


@pytest.mark.parametrize("kind,module,task", [("embedding", "embedding_transform", "sentence_embedding"),
                                              ("recommendation", "recommendation_transform", "recommendation"),
                                              ("multimodal", "multimodal_transform", "image_text"),
                                              ("qa", "qa_transform", "max_answer_length")])
def test_kubeflow_specs_of_the_new_kinds(tmp_path, kind, module, task):
    config = PipelineConfig(root="gs://bucket/rw-tf")
    paths = compile_kubeflow(kind, config, str(tmp_path / f"rw-tf-{kind}.json"), pipeline_root="gs://bucket/rw-tf")
    spec = open(paths["pipeline"]).read()
    assert f"rw_tf_pipeline.modules.{module}.preprocessing_fn" in spec
    assert task in spec
