"""Recommendation: the import-graph interactions, ranking metrics and baselines against hand
computations, the two-tower model trained on the standard library against its baselines, its
export (Python API = SavedModel = local gRPC server) and bad requests."""
import ast
import json

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import BAD_COUNTS, BAD_ITEMS, BAD_USERS, write_interactions
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from rw_tf.cli.main import main as cli_main
from rw_tf.data.interactions import imported_modules, read_interactions, stdlib_import_interactions
from rw_tf.knowledge.demo import nations_demo
from rw_tf.knowledge.entity_linking import EntityLinker
from rw_tf.models import SentenceEncoder, TwoTowerRecommender
from rw_tf.networks import KnowledgeEnhancedEncoder
from rw_tf.tasks import RecommendationTask, RecommendationTaskConfig
from rw_tf.tasks.recommendation import (
    baseline_scores,
    pad_history,
    ranking_metrics,
    read_items,
    text_hard_negatives,
)
from rw_tf.tasks.sentence_embedding import embed_texts
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary
from rw_tf.training import run_task
from rw_tf_serving.config import ModelSpec
from rw_tf_serving.server import LocalModelServer


def test_import_order_and_leave_one_out_split():
    tree = ast.parse("import os, re\nfrom json import loads\nfrom . import sibling\ndef f():\n    import re\n"
                     "    import zlib\nimport os.path\n")
    assert imported_modules(tree, "me") == ["os", "re", "json", "zlib", "os.path"]   # source order, first time
    data = stdlib_import_interactions()
    # Lib/email/utils.py: import os, re, time (built in: not an item), random, socket, datetime,
    # urllib.parse, then the email package's own modules.
    history = [data.items[i] for i in data.histories["email.utils"]]
    assert history[:6] == ["os", "re", "random", "socket", "datetime", "urllib.parse"]
    assert all(len(h) >= 3 and len(set(h)) == len(h) for h in data.histories.values())
    for user, parts in data.split().items():
        assert parts["train"] + [parts["validation"], parts["test"]] == data.histories[user]


def test_items_file_names_the_line_that_is_not_an_item(tmp_path):
    path = tmp_path / "items.jsonl"
    good = b'{"item": "os", "text": "Miscellaneous operating system interfaces.", "train_count": 3}\n'
    path.write_bytes(good + b'\n{"item": "re", "text": "Regular expressions \\ud83d\\ude00."}\n')
    ids, texts, counts = read_items(str(path))
    assert ids == ["os", "re"] and texts[1].endswith("\U0001F600.") and counts.tolist() == [3, 0]
    for bad, message in ((b'{"item": "re", "text": "lone \\udc00"}', "line 2: a string escapes the lone surrogate"),
                         (b'{"item": "re", "text": "\xff"}', "line 2: 'utf-8' codec can't decode"),
                         (b'{"item": "re", "text": ', "line 2: Expecting value"),
                         (b'{"item": "re"}', "every line needs an 'item' id and a 'text'"),
                         (b'["re", "Regular expressions."]', "every line needs an 'item' id and a 'text'"),
                         (b"[" * 100_000 + b"]" * 100_000, "line 2: the JSON is nested too deeply")):
        path.write_bytes(good + bad + b"\n")
        with pytest.raises(ValueError, match=message):
            read_items(str(path))


def test_your_interactions_read_as_the_import_graph_and_what_cannot_be_used_is_counted(tmp_path):
    data = stdlib_import_interactions()
    read, rejects = read_interactions(*write_interactions(data, tmp_path))
    assert rejects == {} and read == data              # the same catalogue, histories and profiles
    read, rejects = read_interactions(*write_interactions(data, tmp_path, BAD_ITEMS, BAD_USERS))
    assert rejects == BAD_COUNTS
    assert read.items == data.items and read.item_texts == data.item_texts
    assert read.histories == {**data.histories, "x": [data.items.index(m) for m in ("re", "os", "json")]}
    assert read.leave_one_out(0).examples[:5] != [] and read.user_texts["x"] == ""
    with pytest.raises(ValueError, match="min_history must be >= 3"):
        read_interactions(*write_interactions(data, tmp_path), min_history=2)


def test_finetune_recommendation_on_your_files(tmp_path, capsys):
    data = stdlib_import_interactions()
    items, users = write_interactions(data, tmp_path, BAD_ITEMS, BAD_USERS)
    out = tmp_path / "run"
    assert cli_main(["finetune", "--task", "recommendation", "--items", items, "--interactions", users,
                     "--epochs", "2", "--top-k", "5", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.rindex('\n{\n'):])["left_out"]["rejected_rows"] == BAD_COUNTS
    metrics = json.loads((out / "metrics.json").read_text())
    built_in = data.leave_one_out(12345)
    # + user x, whose three items make no training example (one is held out for validation, one for test)
    assert metrics["data"]["users"] == len(built_in.train_histories) + 1
    assert metrics["data"]["train_examples"] == len(built_in.examples)
    assert metrics["data"]["rejected_rows"] == BAD_COUNTS
    assert metrics["after"]["mrr"] > 2 * metrics["before"]["mrr"]                      # training helps
    recommend = tf.saved_model.load(str(out / "export" / "1")).signatures["recommend"]
    top = recommend(history=tf.constant(["os re"]))["item_ids"].numpy()[0]
    assert len(top) == 5 and not {b"os", b"re"} & set(top.tolist())
    for argv, words in (([], "interactions_file needs items_file"), (["--items", items, "--interactions", users,
                                                                      "--include-site-packages"],
                                                                     "include_site_packages adds users")):
        argv = argv or ["--interactions", users]
        assert cli_main(["finetune", "--task", "recommendation", *argv, "--output-dir", str(out)]) == 2
        assert words in capsys.readouterr().err
    (tmp_path / "few.jsonl").write_bytes(b'{"user": "a", "items": ["os", "re", "json"]}\n')
    assert cli_main(["finetune", "--task", "recommendation", "--items", items, "--interactions",
                     str(tmp_path / "few.jsonl"), "--output-dir", str(tmp_path / "few")]) == 2
    assert "0 training examples, 1 validation and 1 test users" in capsys.readouterr().err


def test_ranking_metrics_and_baselines_by_hand():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, -np.inf]])
    m = ranking_metrics(scores, np.array([1, 0]), k=2)
    # User 0: item 1 ties with item 2 behind item 0 -> rank 2.5; user 1: three-way tie -> rank 2.
    assert m["mrr"] == pytest.approx((1 / 2.5 + 1 / 2) / 2)
    assert m["recall@2"] == pytest.approx(0.5)
    text = np.eye(4)
    scores = baseline_scores([[0, 1], [1, 2], [1]], [[0], [2, 3]], text)
    np.testing.assert_allclose(scores["popularity"][0], [1, 3, 1, 0])
    np.testing.assert_allclose(scores["co-occurrence"][0], [0, 1, 0, 0])      # 0 and 1 seen together once
    np.testing.assert_allclose(scores["co-occurrence"][1], [0, 1, 0, 0])      # from item 2's row
    np.testing.assert_allclose(scores["text only"][1], [0, 0, 2 ** -0.5, 2 ** -0.5])


def test_model_masks_history_serializes_and_honours_the_policy(tmp_path):
    model = TwoTowerRecommender(num_items=20, text_dim=6, embedding_dim=8, max_history=4)
    model.build({"history": (None, 4), "item": (None,)})
    model.set_item_text_embeddings(np.random.default_rng(0).normal(size=(20, 6)))
    model.set_item_frequencies(np.arange(20))
    history = np.array([pad_history([3, 5], 4), pad_history([1, 2, 3, 4, 5], 4)], np.int32)
    assert history.tolist() == [[3, 5, -1, -1], [2, 3, 4, 5]]
    ids, _ = model.recommend(history, k=19)
    assert not {3, 5} & set(np.asarray(ids)[0, :18].tolist())          # seen items rank last (-inf)
    out = model({"history": history, "item": np.array([0, 7])})
    # The extra dimension carries -tau log q (add-one smoothed frequencies) for the sampling correction.
    q = (np.arange(20) + 1.0) / (np.arange(20) + 1.0).sum()
    assert float(out[1, 1, -1]) == pytest.approx(-0.05 * np.log(q[7]), rel=1e-5)
    model.save(tmp_path / "r.keras")
    again = keras.saving.load_model(tmp_path / "r.keras")
    np.testing.assert_allclose(again.scores(history), model.scores(history), atol=1e-6)
    mixed = TwoTowerRecommender(num_items=20, text_dim=6, embedding_dim=8, max_history=4, dtype="mixed_bfloat16")
    mixed.build({"history": (None, 4), "item": (None,)})
    assert mixed.user_projection.compute_dtype == "bfloat16" and mixed.scores(history).dtype == "float32"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    task = RecommendationTask(RecommendationTaskConfig(top_k=5))
    result = run_task(task, task.trainer_config(), str(tmp_path_factory.mktemp("recommend")), verbose=0)
    return task, result


def test_trained_on_the_import_graph_against_baselines(trained):
    _, result = trained
    before, after, baselines = result["before"], result["after"], result["details"]["baselines"]
    print("recommendation", after, baselines)
    assert set(baselines) == {"popularity", "co-occurrence", "text only"}
    assert after["mrr"] > 2 * before["mrr"]                       # training helps
    assert after["recall@5"] > baselines["text only"]["recall@5"]   # the user tower beats text alone


def test_export_equals_the_python_api_directly_and_over_grpc(trained):
    task, result = trained
    model = keras.saving.load_model(result["model_path"])
    users = task.test_histories[:3]
    expected_ids, expected_scores = model.recommend(
        np.array([pad_history(h, model.max_history) for h in users], np.int32), k=5)
    requests = [" ".join(task.items[i] for i in h) for h in users]
    loaded = tf.saved_model.load(result["export_dir"])
    direct = loaded.signatures["recommend"](history=tf.constant(requests))
    np.testing.assert_array_equal(direct["item_indices"].numpy(), np.asarray(expected_ids))
    np.testing.assert_allclose(direct["scores"].numpy(), np.asarray(expected_scores), atol=1e-5)
    server = LocalModelServer([ModelSpec("rw_tf_recommend", result["export_dir"].rsplit("/", 1)[0])], port=0).start()
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "rw_tf_recommend"
        request.model_spec.signature_name = "recommend"
        request.inputs["history"].CopyFrom(tf.make_tensor_proto(requests, dtype=tf.string))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=30)
            served = [[b.decode() for b in row] for row in tf.make_ndarray(response.outputs["item_ids"])]
            assert served == [[task.items[i] for i in row] for row in np.asarray(expected_ids)]
            for history, message in (([""], "empty history"), (["json no_such_module"], "unknown item ids"),
                                     ([" ".join(task.items[:40])], "longer than the model accepts")):
                request.inputs["history"].CopyFrom(tf.make_tensor_proto(history, dtype=tf.string))
                with pytest.raises(grpc.RpcError) as err:
                    stub.Predict(request, timeout=30)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    finally:
        server.stop()
    vectors = loaded.signatures["item_embeddings"](item_ids=tf.constant(["json", "re"]))["embedding"].numpy()
    np.testing.assert_allclose(vectors, np.asarray(model.item_vectors(np.array([task.items.index("json"),
                                                                                  task.items.index("re")]))),
                               atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown item ids"):
        loaded.signatures["item_embeddings"](item_ids=tf.constant(["nope"]))


def test_item_texts_in_knowledge_mode_are_embedded_with_their_entities(tmp_path):
    """A knowledge-enhanced encoder gets the linked entity ids of item texts (``embed_texts`` with a
    linker, as RecommendationTask does with knowledge_dir/alias_file): changing the entity
    embeddings moves the vectors of texts that mention an entity, and only those."""
    demo = nations_demo()
    sentences = [s for d in demo.train_documents for s in d]
    tok = WordPieceTokenizer(write_vocabulary(learn_vocabulary(sentences, 400, min_count=1), str(tmp_path / "v.txt")))
    linker = EntityLinker(tok, demo.alias_to_entity)
    entity = sorted(demo.alias_to_entity)[0]
    texts = [f"news about {entity} today", "nothing to link here"]
    encoder = KnowledgeEnhancedEncoder(num_entities=14, entity_embedding_dim=8, knowledge_layers=(0,),
                                       vocab_size=tok.vocab_size, hidden_size=32, num_layers=1, num_heads=2,
                                       intermediate_size=64, max_sequence_length=32)
    model = SentenceEncoder(encoder)
    encoder.set_entity_embeddings(np.zeros((14, 8), np.float32))
    before = embed_texts(model, tok, texts, 16, linker=linker)
    encoder.set_entity_embeddings(np.random.default_rng(0).normal(size=(14, 8)).astype(np.float32))
    after = embed_texts(model, tok, texts, 16, linker=linker)
    assert np.abs(after[0] - before[0]).max() > 1e-4 and np.abs(after[1] - before[1]).max() < 1e-6


def test_hard_negatives_are_the_text_nearest_unseen_items_and_train():
    text = np.eye(5)[[0, 1, 2, 3, 4]] + 0.1
    text[1] = text[0] + np.array([0, 0.05, 0, 0, 0])         # item 1 reads like item 0
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    negatives = text_hard_negatives([([2], 0), ([1, 2], 0)], text, neighbours=4)
    assert negatives[0] == 1                                  # nearest to item 0
    assert negatives[1] not in (0, 1, 2)                      # 1 is in the history: the next nearest
    model = TwoTowerRecommender(num_items=5, text_dim=5, embedding_dim=4, max_history=3)
    model.build({"history": (None, 3), "item": (None,)})
    model.set_item_text_embeddings(text)
    x = {"history": np.array([[2, -1, -1], [1, 2, -1]]), "item": np.array([0, 0]), "negative": negatives}
    stacked = model(x)
    assert stacked.shape == (2, 3, 5)
    ids = np.concatenate([-np.ones((2, 1)), x["item"][:, None], negatives[:, None], x["item"][:, None],
                          x["history"]], 1).astype("int32")
    model.compile(optimizer="adam")
    assert float(model.loss(ids, stacked)) > 0


def test_profile_text_reaches_the_user_tower_and_the_export(tmp_path):
    task = RecommendationTask(RecommendationTaskConfig(use_profile_text=True, top_k=5))
    result = run_task(task, task.trainer_config(epochs=1), str(tmp_path), verbose=0)
    model = keras.saving.load_model(result["model_path"])
    assert model.profile_dim == 384 and result["after"]["mrr"] > 2 * result["before"]["mrr"]
    user = next(u for u, text in sorted(task.user_texts.items()) if text)
    history = [task.items[i] for i in task.test_histories[0]]
    padded = np.array([pad_history(task.test_histories[0], model.max_history)] * 2, np.int32)
    profiles = embed_texts(task.text_model, task.tokenizer, [task.user_texts[user]], 64)
    with_profile = np.asarray(model.scores(padded, np.concatenate([profiles, np.zeros_like(profiles)])))
    seen = ~np.isfinite(with_profile[0])                                      # the history's items: -inf
    assert np.abs(with_profile[0][~seen] - with_profile[1][~seen]).max() > 1e-4   # the profile changes scores
    loaded = tf.saved_model.load(result["export_dir"])
    out = loaded.signatures["recommend"](history=tf.constant([" ".join(history)] * 2),
                                         profile=tf.constant([task.user_texts[user], ""]))
    expected_ids, expected_scores = model.recommend(padded, 5, np.concatenate([profiles, np.zeros_like(profiles)]))
    np.testing.assert_array_equal(out["item_indices"].numpy(), np.asarray(expected_ids))
    np.testing.assert_allclose(out["scores"].numpy(), np.asarray(expected_scores), atol=1e-5)
