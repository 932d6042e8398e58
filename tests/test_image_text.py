"""Multimodal fusion: image encoders, cross-attention, CLIP alignment and image-text matching
against formulas, the offline image-caption data, training on held-out digits against chance and
the untrained model, and the export through the Python API, gRPC and REST (base64)."""
import base64
import itertools
import json
import signal
import urllib.request

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import BAD_PAIR_COUNTS, BAD_PAIRS, write_image_caption_pairs
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from rw_tf.cli.main import main as rw_tf_main
from rw_tf.data.image_text import (
    CAPTION_TEMPLATES,
    digit_pairs,
    face_pairs,
    photo_pairs,
    read_image_caption_pairs,
    split_pairs,
)
from rw_tf.data.images import decode_images
from rw_tf.data.text_inputs import single_segment_inputs
from rw_tf.layers.cross_attention import CrossAttentionBlock
from rw_tf.models.image_text import ImageTextMatcher, ImageTextModel
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.image_encoder import ConvImageEncoder, ViTImageEncoder
from rw_tf.tasks import ImageTextTask, ImageTextTaskConfig
from rw_tf.tasks.image_text import _chance_at, matching_metrics, other_class_rows, retrieval_recalls
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training import TrainerConfig
from rw_tf_serving.config import ModelSpec
from rw_tf_serving.server import LocalModelServer


def tiny_backbone(fusion_layers=1, fusion_direction="text_to_image"):
    return ImageTextModel(ViTImageEncoder.from_preset("tiny", image_size=16), TransformerEncoder.from_preset(
        "tiny", vocab_size=50), projection_dim=8, fusion_layers=fusion_layers, fusion_size=16, fusion_heads=2,
        fusion_direction=fusion_direction)


def text_batch(rng, batch=3, length=6):
    ids = rng.integers(5, 50, (batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    mask[0, 4:] = 0
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


@pytest.mark.parametrize("encoder", [lambda: ViTImageEncoder.from_preset("tiny", image_size=16),
                                     lambda: ConvImageEncoder(image_size=16, hidden_size=24)])
def test_image_encoders_round_trip_and_honour_the_policy(encoder):
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    enc = encoder()
    out = enc(images)
    clone = enc.__class__.from_config(enc.get_config())
    clone(images)
    clone.set_weights(enc.get_weights())
    np.testing.assert_allclose(np.asarray(clone(images)["pooled_output"]), np.asarray(out["pooled_output"]),
                               atol=1e-6)
    assert out["sequence_output"].shape[0] == 2 and out["pooled_output"].shape == (2, enc.hidden_size)
    if isinstance(enc, ViTImageEncoder):   # (16 / 8)^2 patches + [CLS]
        assert out["sequence_output"].shape[1] == 5
    policy_enc = enc.__class__.from_config({**enc.get_config(), "dtype": "mixed_bfloat16"})
    result = policy_enc(images)
    assert result["sequence_output"].dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in policy_enc.weights)


def test_cross_attention_ignores_masked_context_and_padded_queries_do_not_leak():
    block = CrossAttentionBlock(hidden_size=16, num_heads=2, intermediate_size=32, dropout=0.0)
    rng = np.random.default_rng(1)
    queries, context = rng.normal(size=(2, 4, 16)).astype("float32"), rng.normal(size=(2, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    out = np.asarray(block(queries, context, context_mask=mask))
    changed = context.copy()
    changed[0, 3:] += 100.0                          # only masked positions of example 0
    np.testing.assert_allclose(np.asarray(block(queries, changed, context_mask=mask)), out, atol=1e-5)
    changed[1, 0] += 1.0                             # an attended position changes the output
    assert np.abs(np.asarray(block(queries, changed, context_mask=mask))[1] - out[1]).max() > 1e-3
    clone = CrossAttentionBlock.from_config(block.get_config())
    clone(queries, context, context_mask=mask)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(np.asarray(clone(queries, context, context_mask=mask)), out, atol=1e-6)


def test_alignment_loss_is_symmetric_infonce_on_the_scaled_cosines_and_the_scale_is_capped():
    model = tiny_backbone(fusion_layers=0)
    rng = np.random.default_rng(2)
    x = {"image": rng.normal(size=(3, 16, 16, 3)).astype("float32"), "text": text_batch(rng)}
    model.build({"image": (None, 16, 16, 3), "text": {k: (None, 6) for k in x["text"]}})
    model.compile()
    image, text = np.asarray(model.embed_image(x["image"])), np.asarray(model.embed_text(x["text"]))
    scale = 1 / 0.07
    logits = scale * image @ text.T
    def log_softmax(z):
        shifted = z - z.max(1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = 0.5 * (-np.mean(np.diag(log_softmax(logits))) - np.mean(np.diag(log_softmax(logits.T))))
    ids = np.array([[0, 0], [1, 1], [2, 2]], "int32")
    loss = model.compute_loss(x, ids, model(x))
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    model.log_logit_scale.assign(10.0)                       # exp(10) > 100
    assert float(model.logit_scale()) == pytest.approx(100.0)


def test_matching_heads_use_exactly_the_modalities_they_claim(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    text, other = text_batch(rng), text_batch(rng)
    other_images = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    shapes = {"image": (None, 16, 16, 3), "text": {k: (None, 6) for k in text},
              "negative_text": {k: (None, 6) for k in text}}
    for fusion in ("cross_attention", "late", "image_only", "text_only"):
        model = ImageTextMatcher(tiny_backbone(fusion_layers=1 if fusion == "cross_attention" else 0), fusion=fusion,
                                 head_size=8)
        model.build(shapes)
        base = np.asarray(model.match(images, text))
        new_text, new_image = np.asarray(model.match(images, other)), np.asarray(model.match(other_images, text))
        assert (np.abs(new_text - base).max() > 1e-6) == (fusion != "image_only"), fusion
        assert (np.abs(new_image - base).max() > 1e-6) == (fusion != "text_only"), fusion
        out = model({"image": images, "text": text, "negative_text": other})
        np.testing.assert_allclose(np.asarray(out["match"]), np.stack([base, new_text], 1), atol=1e-5)
    model.compile()
    model.optimizer.build(model.trainable_variables)    # saved with its slots, restored by compile_from_config
    path = str(tmp_path / "matcher.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded.match(images, text)), np.asarray(model.match(images, text)), atol=1e-6)
    with pytest.raises(ValueError, match="fusion_layers >= 1"):
        ImageTextMatcher(tiny_backbone(fusion_layers=0), fusion="cross_attention")


def test_retrieval_and_matching_metrics_by_hand():
    labels = np.array([0, 1, 1])
    captions = ["zero", "one", "one"]            # the duplicate caption is ranked once
    images = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    texts = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    r = retrieval_recalls(images, texts, labels, captions, ks=(1,))
    assert r["image_to_text_recall@1"] == pytest.approx(2 / 3)       # the third image picks "zero"
    assert r["image_to_text_chance@1"] == pytest.approx(0.5)
    assert r["text_to_image_recall@1"] == pytest.approx(1.0)
    relevant = np.array([[1, 0, 0, 1, 0], [0, 1, 1, 1, 0]], bool)
    for k in (1, 2, 3):   # brute force over every ordering
        hits = [[rel[list(p[:k])].any() for p in itertools.permutations(range(5))] for rel in relevant]
        assert _chance_at(relevant, k) == pytest.approx(np.mean(hits))
    m = matching_metrics(np.array([2.0, -1.0, 0.5]), np.array([-1.0, -2.0, 0.5]))
    assert m == {"match_accuracy": pytest.approx(4 / 6), "match_ranking_accuracy": pytest.approx(2.5 / 3)}
    labels = np.array([0, 0, 0, 1, 2, 2])
    picks = other_class_rows(labels, np.random.default_rng(0))
    assert all(labels[picks] != labels)
    with pytest.raises(ValueError, match="two classes"):
        other_class_rows(np.zeros(4, int), np.random.default_rng(0))


def _alarm(signum, frame):
    raise TimeoutError("other_class_rows did not return within 10 s")


def test_negatives_of_another_class_for_classes_of_any_sizes():
    # Collisions were moved along by 1, 2, 3, ... rows, which reaches only triangular-number
    # offsets: 99 captions of one class and 1 of another never ended (the pipeline's PrepareData
    # and the task hung on such data).
    rng = np.random.default_rng(0)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        for labels in (np.array([0] * 99 + [1]), np.array(["b", "a", "b", "c"] * 50), rng.integers(0, 10, 10_000)):
            picks = other_class_rows(labels, rng)
            assert (labels[picks] != labels).all()
        # Uniform over the rows of the other classes: class 0's negatives spread evenly over rows 4, 5, 6.
        labels = np.array([0, 0, 0, 0, 1, 2, 3])
        counts = np.bincount(np.concatenate([other_class_rows(labels, rng)[:4] for _ in range(3000)]), minlength=7)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert counts[:4].sum() == 0 and np.allclose(counts[4:] / 12_000, 1 / 3, atol=0.02)


def test_offline_image_caption_data():
    digits = digit_pairs()
    assert len(digits) == 1797
    assert digits[0]["caption"] == CAPTION_TEMPLATES[0].format("zero") and digits[0]["label"] == 0
    train, held_out = split_pairs(digits, 0.2, seed=0)
    assert {r["image"] for r in train}.isdisjoint({r["image"] for r in held_out})
    assert len(train) + len(held_out) == len(digits) and abs(len({r["image"] for r in held_out}) / len(
        {r["image"] for r in digits}) - 0.2) < 0.01
    pixels = decode_images(tf.constant([digits[0]["image"]]), size=8, mean=(0, 0, 0), std=(1, 1, 1)).numpy()
    from sklearn.datasets import load_digits
    np.testing.assert_allclose(pixels[0, :, :, 0], np.round(load_digits().images[0] * 255 / 16) / 255, atol=1e-6)
    photos = {r["caption"]: r["image"] for r in photo_pairs()}
    assert "Chelsea the cat." in photos and len(photos) >= 20
    assert decode_images(tf.constant([photos["Chelsea the cat."]]), size=32).shape == (1, 32, 32, 3)
    faces = face_pairs()
    assert len(faces) == 200 and sum(r["label"] for r in faces) == 100


def test_your_pairs_read_as_the_digits_and_what_cannot_be_used_is_counted(tmp_path):
    digits = digit_pairs()[:600]
    path = write_image_caption_pairs(digits, tmp_path, BAD_PAIRS)
    rows, rejects = read_image_caption_pairs(path)
    assert rows == digits and rejects == BAD_PAIR_COUNTS
    # The task splits and pairs them as it does the built-in digits (same rows, same negatives).
    trainer = TrainerConfig(seed=3)
    mine = ImageTextTask(ImageTextTaskConfig(pairs_file=path, max_pairs=600))
    built_in = ImageTextTask(ImageTextTaskConfig(max_pairs=600))
    assert mine.prepare(str(tmp_path), trainer)["rejected_rows"] == BAD_PAIR_COUNTS
    built_in.prepare(str(tmp_path), trainer)
    assert mine.train_rows == built_in.train_rows and mine.eval_rows == built_in.eval_rows
    np.testing.assert_array_equal(mine.train_negatives, built_in.train_negatives)
    # Without labels, pairs with the same caption (as the tokenizer reads it) are one class.
    (tmp_path / "unlabelled.jsonl").write_text("\n".join(json.dumps(
        {"image": {"b64": base64.b64encode(r["image"]).decode()}, "caption": c})
        for r, c in zip(digits, ["A cat", "a  CAT", "a dog"])))
    rows, _ = read_image_caption_pairs(str(tmp_path / "unlabelled.jsonl"))
    assert [r["label"] for r in rows] == [0, 0, 1]
    with pytest.raises(ValueError, match="take more than 1,000 bytes, which rw-tf holds in memory"):
        read_image_caption_pairs(path, max_image_bytes=1000)


def test_finetune_image_text_on_your_pairs_and_bad_files(tmp_path, capsys):
    path = write_image_caption_pairs(digit_pairs()[:150], tmp_path, BAD_PAIRS)
    out = tmp_path / "run"
    assert rw_tf_main(["finetune", "--task", "image_text", "--pairs", path, "--objective", "matching",
                       "--text-preset", "tiny", "--epochs", "1", "--steps-per-epoch", "5",
                       "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["rejected_rows"] == BAD_PAIR_COUNTS
    assert metrics["data"]["train_pairs"] + metrics["data"]["eval_pairs"] == 150
    match = tf.saved_model.load(str(out / "export" / "1")).signatures["match_image_text"]
    assert match(image=tf.constant([digit_pairs()[0]["image"]]), text=tf.constant(["a handwritten digit zero"]))
    capsys.readouterr()
    (tmp_path / "one.jsonl").write_text(json.dumps({"image": "images/1.png", "caption": "one image"}))
    for argv, words in ((["--pairs", str(tmp_path / "one.jsonl")], "1 usable image-caption pairs: training and "
                         "evaluation need two images at least"),
                        (["--pairs", path, "--images", "faces"], "images is read without pairs_file"),
                        (["--pairs", str(tmp_path / "none.jsonl")], "none.jsonl")):
        assert rw_tf_main(["finetune", "--task", "image_text", *argv, "--output-dir", str(tmp_path / "x")]) == 2
        assert words in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("image_text"))
    assert rw_tf_main(["finetune", "--task", "image_text", "--objective", "matching", "--text-preset", "tiny",
                       "--learning-rate", "1e-3", "--epochs", "1", "--steps-per-epoch", "250",
                       "--output-dir", out]) == 0
    with open(f"{out}/metrics.json") as f:
        return json.load(f)


def test_training_beats_chance_and_the_untrained_model_on_held_out_images(trained):
    before, after = trained["before"], trained["after"]
    print("image-text", json.dumps(after))
    # Chance is 0.5 over the 359 held-out decisions (standard deviation 0.026): 0.65 is nearly 6 of
    # them above it. Not a value read off one machine: the run gives 0.7465 on one CPU and above
    # 0.75 on another (oneDNN kernels differ), and a bound at 0.75 failed on the first.
    assert after["match_accuracy"] > 0.65 and before["match_accuracy"] < 0.6
    assert after["match_accuracy"] > before["match_accuracy"] + 0.15
    for direction in ("image_to_text", "text_to_image"):
        assert after[f"{direction}_recall@1"] > 3 * after[f"{direction}_chance@1"]
        assert after[f"{direction}_recall@1"] > before[f"{direction}_recall@1"] + 0.3


def test_export_answers_like_the_python_api_directly_over_grpc_and_rest(trained, tmp_path, capsys):
    model = keras.saving.load_model(trained["model_path"])
    export_dir = trained["export_dir"]
    held_out = split_pairs(digit_pairs(), 0.2, seed=trained["trainer"]["seed"])[1][:4]
    images = [r["image"] for r in held_out]
    captions = [held_out[0]["caption"], held_out[0]["caption"], held_out[2]["caption"], "a scanned cat"]
    tokenizer = WordPieceTokenizer(f"{export_dir}/assets/vocab.txt", lower_case=True)
    pixels = decode_images(tf.constant(images), 32)
    tokens = single_segment_inputs(tokenizer, tf.constant(captions), 16)
    expected_probability = 1 / (1 + np.exp(-np.asarray(model.match(pixels, tokens))))
    expected_similarity = np.sum(np.asarray(model.embed_image(pixels)) * np.asarray(model.embed_text(tokens)), 1)
    loaded = tf.saved_model.load(export_dir)
    direct = loaded.signatures["match_image_text"](image=tf.constant(images), text=tf.constant(captions))
    np.testing.assert_allclose(direct["match_probability"].numpy(), expected_probability, atol=1e-5)
    np.testing.assert_allclose(direct["similarity"].numpy(), expected_similarity, atol=1e-5)
    embedded = loaded.signatures["embed_image"](image=tf.constant(images))["embedding"].numpy()
    np.testing.assert_allclose(embedded, np.asarray(model.embed_image(pixels)), atol=1e-5)
    server = LocalModelServer([ModelSpec("rw_tf_image_text", export_dir.rsplit("/", 1)[0])], port=0,
                              rest_port=0).start()
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "rw_tf_image_text"
        request.model_spec.signature_name = "match_image_text"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(captions, dtype=tf.string))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=30)
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["match_probability"]), expected_probability,
                                       atol=1e-5)
            bomb = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (100_000).to_bytes(4, "big") * 2 + b"\x08\x02" + \
                b"\x00" * 7
            for bad, reason in ((b"", "empty image"), (b"GIF89a", "unsupported image format"),
                                (bomb, "declares 100000x100000 pixels")):
                request.inputs["image"].CopyFrom(tf.make_tensor_proto([bad], dtype=tf.string))
                request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a scanned one"], dtype=tf.string))
                with pytest.raises(grpc.RpcError) as err:
                    stub.Predict(request, timeout=30)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in err.value.details()
        body = {"signature_name": "match_image_text",
                "inputs": {"image": [{"b64": base64.b64encode(b).decode()} for b in images], "text": captions}}
        rest = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/rw_tf_image_text:predict",
                                      data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(rest, timeout=30) as response:
            outputs = json.loads(response.read())["outputs"]
        np.testing.assert_allclose(outputs["match_probability"], expected_probability, atol=1e-5)
        # rw-tf predict --input-file: raw bytes over gRPC, {"b64": ...} over REST.
        (tmp_path / "digit.png").write_bytes(images[0])
        for target in (["--server", f"127.0.0.1:{server.grpc_port}"],
                       ["--rest", f"http://127.0.0.1:{server.rest_port}"]):
            capsys.readouterr()
            image_file = f"image={tmp_path / 'digit.png'}"
            assert rw_tf_main(["predict", *target, "--model", "rw_tf_image_text", "--signature", "match_image_text",
                               "--input-file", image_file, "--input", f"text={captions[0]}"]) == 0
            printed = json.loads(capsys.readouterr().out)
            printed = printed.get("outputs", printed)
            assert printed["match_probability"][0] == pytest.approx(expected_probability[0], abs=1e-5)
    finally:
        server.stop()


def test_fusion_both_ways_and_mixed_precision_keep_float32_outputs():
    rng = np.random.default_rng(4)
    images, text = rng.normal(size=(3, 16, 16, 3)).astype("float32"), text_batch(rng)
    both = tiny_backbone(fusion_direction="both")
    both.build({"image": (None, 16, 16, 3), "text": {k: (None, 6) for k in text}})
    fused = np.asarray(both.fuse(images, text))
    assert fused.shape == (3, 2 * both.fusion_size) == (3, both.fused_size)
    # The image half (patches attending to text) changes with the text; the text half with the image.
    other = text_batch(rng)
    assert np.abs(np.asarray(both.fuse(images, other))[:, both.fusion_size:] - fused[:, both.fusion_size:]).max() > 1e-4
    assert np.abs(np.asarray(both.fuse(images[::-1], text))[:, :both.fusion_size]
                  - fused[:, :both.fusion_size]).max() > 1e-4
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = ImageTextMatcher(tiny_backbone(), head_size=8)
        out = mixed({"image": images, "text": text, "negative_text": other})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["alignment"].dtype == "float32" and out["match"].dtype == "float32"
    assert mixed.backbone.text_to_image[0].compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)
