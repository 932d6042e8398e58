"""Sentence embeddings: the SentenceEncoder model, the task (MiniLM on the Lee judgements and
held-out docstring pairs), the ``embed_text`` export, ``rw-tf embed`` and L_NCE in pretraining."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.cli.main import main as cli_main
from rw_tf.config import EncoderConfig
from rw_tf.data.similarity_judgements import lee_similarity_pairs
from rw_tf.models import PretrainingModel, SentenceEncoder
from rw_tf.networks import TransformerEncoder
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig, SentenceEmbeddingTask, SentenceEmbeddingTaskConfig
from rw_tf.tasks.embedding_metrics import alignment, spearman_on_pairs, uniformity
from rw_tf.tasks.sentence_embedding import embed_texts, with_hard_negatives
from rw_tf.training import run_task


def _inputs(batch, length, seed=0):
    rng = np.random.default_rng(seed)
    return {"token_ids": rng.integers(3, 100, (batch, length)).astype("int32"),
            "segment_ids": np.zeros((batch, length), "int32"), "padding_mask": np.ones((batch, length), "int32")}


def test_lee_judgements_and_metrics():
    docs, pairs, human = lee_similarity_pairs()
    assert len(docs) == 50 and pairs.shape == (1225, 2) and (pairs[:, 0] < pairs[:, 1]).all()
    assert 0 <= human.min() and human.max() <= 1 and "Brian Greig" in docs[0]
    rng = np.random.default_rng(0)
    random_vectors = rng.normal(size=(50, 8))
    assert abs(spearman_on_pairs(random_vectors / np.linalg.norm(random_vectors, axis=1, keepdims=True),
                                 pairs, human)) < 0.1
    assert alignment(np.eye(4), np.eye(4)) == 0.0 and alignment(np.eye(2), np.eye(2)[::-1]) == pytest.approx(2.0)
    # Uniformity of two antipodal points: log exp(-2 * 4) = -8; identical points: log 1 = 0.
    assert uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    assert uniformity(np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.0)


def test_sentence_encoder_views_dropout_serialization_and_policy(tmp_path):
    encoder = TransformerEncoder.from_preset("tiny", vocab_size=100, dropout=0.1)
    model = SentenceEncoder(encoder, pooling="cls", projection_dim=16, learn_temperature=True, temperature=0.1)
    x = _inputs(4, 10)
    stacked = model({"anchor": x, "positive": x}, training=True)
    assert stacked.shape == (4, 2, 16)
    # SimCSE: the same text through two dropout masks gives two different vectors.
    assert np.abs(np.asarray(stacked[:, 1]) - np.asarray(model.embed(x, training=True))).max() > 1e-4
    # The anchors carry the learned 1 / tau = 10; the positives are unit vectors.
    assert np.linalg.norm(np.asarray(stacked[:, 0]), axis=-1) == pytest.approx(np.full(4, 10.0), rel=1e-4)
    assert np.linalg.norm(np.asarray(model(x)), axis=-1) == pytest.approx(np.ones(4), rel=1e-5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = float(model.log_inverse_temperature.numpy())
    model.fit(tf.data.Dataset.from_tensors(({"anchor": x, "positive": x}, -np.ones((4, 2), "int32"))).repeat(3),
              verbose=0)
    assert float(model.log_inverse_temperature.numpy()) != before
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.embed(x), model.embed(x), atol=1e-6)
    mixed = SentenceEncoder(TransformerEncoder.from_encoder_config(EncoderConfig.preset("tiny", vocab_size=100),
                                                                   dtype="mixed_bfloat16"),
                            projection_dim=8, dtype="mixed_bfloat16")
    mixed.embed(x)
    assert mixed.projection.compute_dtype == "bfloat16" and mixed.embed(x).dtype == "float32"
    with pytest.raises(KeyError, match="anchor"):
        model({"positive": x})


def test_hard_negatives_come_from_the_same_group_and_are_never_the_item():
    pairs = [{"query": f"q{i}", "item": f"i{i}", "group": f"g{i % 3}"} for i in range(12)]
    out = with_hard_negatives(pairs, seed=1)
    assert len(out) == 12
    for row in out:
        assert row["negative"] != row["item"]
        assert int(row["negative"][1:]) % 3 == int(row["query"][1:]) % 3


def test_supervised_minilm_training_export_and_embed_command(tmp_path, capsys):
    task = SentenceEmbeddingTask(SentenceEmbeddingTaskConfig(
        mode="supervised", hard_negatives=True, max_texts=400, max_eval_pairs=120, max_sequence_length=32))
    result = run_task(task, task.trainer_config(batch_size=16, steps_per_epoch=12), str(tmp_path / "run"), verbose=0)
    print("sentence embedding before", result["before"], "after", result["after"])
    # all-MiniLM-L6-v2's published Spearman on the Lee pairs is 0.508 (mean pooling, 256 tokens).
    assert result["before"]["lee_spearman"] == pytest.approx(0.508, abs=0.005)
    # Held-out positives move closer (what InfoNCE pulls on) and retrieval does not collapse.
    assert result["after"]["alignment"] < result["before"]["alignment"]
    assert result["after"]["recall@10"] >= result["before"]["recall@10"] - 0.05
    assert result["history"]["loss"][0] > 0
    # The export embeds raw text exactly as the Python model does.
    texts = ["Return the number of items in a container.", "Pound £ signs, accents: café, 東京."]
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    expected = embed_texts(model, task.tokenizer, texts, 32)   # the training length
    loaded = tf.saved_model.load(result["export_dir"])
    exported = loaded.signatures["embed_text"](text=tf.constant(texts))["embedding"].numpy()
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    # rw-tf embed: the same vectors, bad lines counted, not fatal.
    lines = tmp_path / "texts.txt"
    lines.write_bytes(texts[0].encode() + b"\n\n\xff\xfe\n" + texts[1].encode() + b"\n")
    assert cli_main(["embed", "--model", str(tmp_path / "run" / "export"), "--input", str(lines),
                     "--output", str(tmp_path / "e.jsonl")]) == 0
    assert "skipped 1 empty_line, 1 invalid_utf8" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=2e-6)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n\xff\n")
    assert cli_main(["embed", "--model", str(tmp_path / "run" / "export"), "--input", str(empty)]) == 2
    assert "nothing to embed" in capsys.readouterr().err


def test_pretraining_with_a_contrastive_term(tmp_path):
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=60, vocab_size=800, nce_weight=0.5,
                                                 dropout=0.1))
    result = run_task(task, task.trainer_config(epochs=1, steps_per_epoch=4, batch_size=8), str(tmp_path), verbose=0)
    after = result["after"]
    # L = L_MLM + l1 L_NSP + l2 L_SOP + l3 L_NCE, each term logged.
    total = after["mlm_loss"] + after["nsp_loss"] + after["sop_loss"] + 0.5 * after["nce_loss"]
    assert after["loss"] == pytest.approx(total, rel=1e-4)
    # Evaluation has no dropout: both views are one vector, the loss is that of telling the batch apart.
    assert 0 < after["nce_loss"] < np.log(8)
    reloaded = keras.saving.load_model(result["model_path"])
    assert reloaded.nce_weight == 0.5
    with pytest.raises(ValueError, match="no dropout"):
        PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=100), nce_weight=0.1)


def test_unsupervised_texts_come_from_the_corpus_files_and_drops_are_reported(tmp_path):
    sentences = [f"Sentence number {i} of the corpus is long enough to keep." for i in range(8)]
    corpus = tmp_path / "corpus.txt"
    # Four documents of two sentences (one carrying an invalid byte), each with a short sentence to drop.
    corpus.write_bytes(b"\n---\n".join(f"{a} Tiny. {b}".encode() for a, b in zip(sentences[::2], sentences[1::2]))
                       .replace(b"number 3", b"number \xff3") + b"\n---\nOne sentence alone in a document.\n")
    task = SentenceEmbeddingTask(SentenceEmbeddingTaskConfig(mode="unsupervised", corpus_files=[str(corpus)]))
    summary = task.prepare(str(tmp_path / "run"), task.trainer_config(batch_size=8))
    assert summary["train_rows"] == 8 and {r["query"] for r in task.train_rows} == (
        set(sentences) - {sentences[3]}) | {sentences[3].replace("number 3", "number \ufffd3")}
    assert summary["corpus_drops"] == {"short_sentences": 4, "invalid_utf8_sequences": 1,
                                       "documents_with_fewer_than_two_sentences": 1}
    with pytest.raises(ValueError, match="need at least 16 training rows.*corpus: documents_with_fewer_than_two_"
                                         "sentences 1, invalid_utf8_sequences 1, short_sentences 4"):
        task.prepare(str(tmp_path / "run"), task.trainer_config(batch_size=16))
