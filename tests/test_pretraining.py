"""Pretraining through the task runner on the embedded corpus: loss falls, save/reload, export,
MirroredStrategy, resume after an interruption, CLI."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.cli.main import main as cli_main
from rw_tf.config import PretrainingDataConfig
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.models import PretrainingModel
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training import run_task

TINY_TASK = dict(preset="tiny", max_sequence_length=64, max_predictions_per_seq=10, vocab_size=2000,
                 target_words=20, max_documents=79)  # the pydoc topics only
TINY_TRAINER = dict(batch_size=32, learning_rate=2e-3, warmup_steps=20, epochs=2, steps_per_epoch=60)


def run_tiny(output_dir, callbacks=(), task=None, **trainer):
    task = PretrainingTask(PretrainingTaskConfig(**{**TINY_TASK, **(task or {})}))
    return run_task(task, task.trainer_config(**{**TINY_TRAINER, **trainer}), str(output_dir),
                    callbacks=callbacks, verbose=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    return out, run_tiny(out)


def test_mlm_loss_falls_on_embedded_corpus(trained):
    _, result = trained
    start, end = result["before"], result["after"]
    print("eval mlm_loss %.3f -> %.3f, mlm_accuracy %.4f -> %.4f" % (
        start["mlm_loss"], end["mlm_loss"], start["mlm_accuracy"], end["mlm_accuracy"]))
    assert end["mlm_loss"] < start["mlm_loss"] - 1.0
    assert end["mlm_accuracy"] > start["mlm_accuracy"] + 0.03
    for term in ("mlm_loss", "nsp_loss", "sop_loss", "mlm_accuracy"):
        assert len(result["history"][term]) == 2   # each loss term is its own fit metric
    data = result["data"]   # 79 documents read; repeated sentences go before documents are held out
    assert data["removed_before_split"]["duplicate_sentences"] > 0
    assert data["train_documents"] + data["eval_documents"] + \
        data["removed_before_split"]["documents_without_two_sentences"] == 79
    with open(os.path.join(trained[0], "metrics.json")) as f:
        assert set(json.load(f)) == {"task", "task_config", "trainer", "data", "before", "after", "details", "history",
                                     "train_seconds", "resumed_from_step", "model_path", "export_dir", "chief"}


def test_saved_model_reloads_with_identical_outputs(trained):
    out, result = trained
    model = keras.saving.load_model(result["model_path"])
    assert isinstance(model, PretrainingModel)
    pairs = {k: ["The quick brown fox jumps over the lazy dog."] * 2 for k in ("text_a", "text_b", "text_random")}
    tok = WordPieceTokenizer(str(out / "vocab.txt"))
    x, _, _ = next(iter(pretraining_dataset(pairs, tok, PretrainingDataConfig(64, 10), 2, shuffle=False)))
    reloaded_out = model(x)
    np.testing.assert_array_equal(reloaded_out["mlm"], keras.saving.load_model(result["model_path"])(x)["mlm"])
    original = PretrainingModel.from_config(model.get_config())
    original(x)
    original.set_weights(model.get_weights())
    np.testing.assert_allclose(original(x)["mlm"], reloaded_out["mlm"], atol=1e-5)
    assert os.path.exists(out / "checkpoints" / "epoch-002.weights.h5")
    assert os.listdir(out / "logs")
    assert not os.path.exists(out / "backup")   # a finished run leaves no backup behind


def test_export_encodes_and_fills_masks_like_the_keras_model(trained):
    out, result = trained
    loaded = tf.saved_model.load(result["export_dir"])
    assert {"encode_text", "fill_mask", "serving_default"} <= set(loaded.signatures)
    texts = tf.constant(["Lists are mutable sequences.", "The [MASK] statement is used for looping."])
    exported = loaded.signatures["encode_text"](text=texts)
    model = keras.saving.load_model(result["model_path"])
    from rw_tf.data.text_inputs import single_segment_inputs
    from rw_tf.networks.pooling import masked_mean
    inputs = single_segment_inputs(WordPieceTokenizer(str(out / "vocab.txt")), texts, 64)
    reference = masked_mean(model.encoder(inputs)["sequence_output"], inputs["padding_mask"])
    np.testing.assert_allclose(exported["mean_embedding"].numpy(), np.asarray(reference), atol=1e-5)


def test_cli_pretrain_and_vocab(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    from rw_tf.data.corpus import embedded_corpus
    docs = embedded_corpus(max_documents=30, include_stdlib_docstrings=False)
    corpus.write_text("\n---\n".join(" ".join(d) for d in docs), encoding="utf-8")
    assert cli_main(["vocab", "--output", str(tmp_path / "v.txt"), "--input", str(corpus),
                     "--vocab-size", "600"]) == 0
    code = cli_main(["pretrain", "--output-dir", str(tmp_path / "run"), "--input", str(corpus),
                     "--vocab-file", str(tmp_path / "v.txt"), "--epochs", "1", "--steps-per-epoch", "3",
                     "--max-sequence-length", "32", "--max-predictions-per-seq", "5", "--batch-size", "8",
                     "--eval-batches", "1", "--target-words", "10", "--eval-fraction", "0.2"])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{\n") + 1:])  # the summary follows Keras's progress bar
    assert os.path.exists(summary["model_path"]) and os.path.exists(summary["export_dir"])
    assert cli_main(["pretrain", "--output-dir", str(tmp_path / "r2"), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    # A vocabulary without the special tokens: the error names the user's file, not the run's copy.
    (tmp_path / "words.txt").write_text("the\ncat\n")
    assert cli_main(["pretrain", "--output-dir", str(tmp_path / "r4"), "--input", str(corpus),
                     "--vocab-file", str(tmp_path / "words.txt")]) == 2
    assert f"vocabulary {tmp_path / 'words.txt'} lacks special tokens" in capsys.readouterr().err
    # Text that yields no document: the error says what was dropped and why, for vocab and pretrain.
    unusable = tmp_path / "unusable.txt"
    unusable.write_bytes(b"one line without a sentence end \xff\n" * 40
                         + b"\nShort. Too.\n\n\nAlso one sentence here.\n")
    assert cli_main(["vocab", "--output", str(tmp_path / "v2.txt"), "--input", str(unusable)]) == 2
    err = capsys.readouterr().err
    assert "no usable document" in err and "documents_with_fewer_than_two_sentences 2" in err
    assert "invalid_utf8_sequences 40" in err and "short_sentences 2" in err
    assert cli_main(["pretrain", "--output-dir", str(tmp_path / "r3"), "--input", str(unusable),
                     "--vocab-file", str(tmp_path / "v.txt")]) == 2
    err = capsys.readouterr().err
    assert "0 usable documents" in err and "invalid_utf8_sequences 40" in err
    with pytest.raises(SystemExit):
        cli_main(["pretrain", "--help"])
