"""Training on the embedded corpus: loss falls, save/reload, MirroredStrategy, resume, CLI."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.cli import main as cli_main
from rw_tf.config import PretrainingDataConfig
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder
from rw_tf.training.pretrain import PretrainRunConfig, run_pretraining
from rw_tf.training.strategy import get_strategy

TINY_RUN = dict(preset="tiny", include_stdlib=False, max_sequence_length=64, max_predictions_per_seq=10,
                batch_size=32, vocab_size=2000, target_words=20, learning_rate=2e-3, warmup_steps=20)


def tiny_config(output_dir, **overrides):
    fields = dict(TINY_RUN)
    fields.pop("include_stdlib")
    fields.update(max_documents=79, epochs=2, steps_per_epoch=60, verbose=0)  # the pydoc topics only
    fields.update(overrides)
    return PretrainRunConfig(output_dir=str(output_dir), **fields)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    return out, run_pretraining(tiny_config(out))


def test_mlm_loss_falls_on_embedded_corpus(trained):
    _, result = trained
    start, end = result["initial_eval"], result["final_eval"]
    print("eval mlm_loss %.3f -> %.3f, mlm_accuracy %.4f -> %.4f" % (
        start["mlm_loss"], end["mlm_loss"], start["mlm_accuracy"], end["mlm_accuracy"]))
    assert end["mlm_loss"] < start["mlm_loss"] - 1.0
    assert end["mlm_accuracy"] > start["mlm_accuracy"] + 0.03
    for term in ("mlm_loss", "nsp_loss", "sop_loss", "mlm_accuracy"):
        assert len(result["history"][term]) == 2   # each loss term is its own fit metric


def test_saved_model_reloads_with_identical_outputs(trained, tokenizer):
    out, result = trained
    model = keras.saving.load_model(result["model_path"])
    assert isinstance(model, PretrainingModel)
    original = PretrainingModel.from_config(model.get_config())
    pairs = {k: ["The quick brown fox jumps over the lazy dog."] * 2 for k in ("text_a", "text_b", "text_random")}
    from rw_tf.tokenization import WordPieceTokenizer
    tok = WordPieceTokenizer(result["vocab_path"])
    x, _, _ = next(iter(pretraining_dataset(pairs, tok, PretrainingDataConfig(64, 10), 2, shuffle=False)))
    reloaded_out = model(x)
    again = keras.saving.load_model(result["model_path"])(x)
    for key in ("mlm", "nsp", "sop"):
        np.testing.assert_array_equal(reloaded_out[key], again[key])
    assert os.path.exists(out / "checkpoints" / "epoch-002.weights.h5")
    assert os.listdir(out / "logs")
    original(x)
    original.set_weights(model.get_weights())
    np.testing.assert_allclose(original(x)["mlm"], reloaded_out["mlm"], atol=1e-5)


def test_train_step_under_mirrored_strategy(tokenizer, pydoc_documents, logical_cpus):
    assert len(logical_cpus) == 2
    strategy = get_strategy("mirrored", devices=logical_cpus)
    assert strategy.num_replicas_in_sync == 2
    cols = segment_pair_candidates(pydoc_documents, target_words=20)
    ds = pretraining_dataset(cols, tokenizer, PretrainingDataConfig(32, 5), batch_size=8)
    with strategy.scope():
        model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert isinstance(model.encoder.token_embedding.embeddings.value, tf.distribute.DistributedValues)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("simulated preemption")


def test_interrupted_run_resumes_from_backup(tmp_path):
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=5, eval_batches=1)
    with pytest.raises(KeyboardInterrupt):
        run_pretraining(config, extra_callbacks=[_Interrupt()])
    assert os.listdir(tmp_path / "backup")
    result = run_pretraining(config)
    assert result["resumed"]
    assert len(result["history"]["loss"]) == 1  # only the second epoch was left to run


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
    assert os.path.exists(summary["model"])
    assert cli_main(["pretrain", "--output-dir", str(tmp_path / "r2"), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["pretrain", "--help"])
