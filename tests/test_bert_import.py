"""BERT checkpoint import: token ids and hidden states match the reference implementation.

The reference (transformers + sentence-transformers on PyTorch CPU) runs in .venv-ref, built by
scripts/ensure_reference_env.sh, because the TFX stack pins Python 3.10 and protobuf 3.20.
"""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from rw_tf.checkpoints import UnsupportedCheckpointError, load_hf_bert, minilm_checkpoint_dir
from rw_tf.data.text_inputs import single_segment_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café déjà vu: naïve façades, Ångström and São Paulo!",
    "北京是中国的首都。東京は日本の首都です。",
    "Punctuation... (brackets) [square] {curly} — dashes – and \"quotes\"; semi:colons?!",
    "e-mail: someone@example.com, 3.14159, $100 & 50% off #hashtag",
    "UPPER lower MiXeD CaSe unaffordable tokenization wordpiece",
    "   leading and trailing whitespace\tand\ttabs\nnewlines   ",
    " ".join(["Long inputs are truncated at the maximum sequence length of the model."] * 60),
]


def run_reference(script, texts, tmp, *outputs):
    """Runs benchmarks/reference/SCRIPT in .venv-ref on MiniLM and ``texts`` (offline)."""
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure_reference_env.sh")], check=True)
    (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    args = [minilm_checkpoint_dir(), *outputs[:-1], str(tmp / "texts.json"), outputs[-1]]
    subprocess.run([os.path.join(ROOT, ".venv-ref", "bin", "python"),
                    os.path.join(ROOT, "benchmarks", "reference", script), *args],
                   check=True, env=env, timeout=900, capture_output=True)
    return np.load(outputs[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    return run_reference("hf_bert_reference.py", TEXTS, tmp, str(tmp / "ref.npz"))


@pytest.fixture(scope="module")
def imported():
    return load_hf_bert(minilm_checkpoint_dir())


def ours(imported, texts):
    encoder, tokenizer = imported
    inputs = single_segment_inputs(tokenizer, tf.constant(texts), 512)
    return inputs, encoder(inputs, training=False)["sequence_output"].numpy()


def test_token_ids_match_reference_tokenizer(imported, reference):
    inputs, _ = ours(imported, TEXTS)
    for i, _ in enumerate(TEXTS):
        n = int(inputs["padding_mask"][i].numpy().sum())
        assert inputs["token_ids"][i, :n].numpy().tolist() == reference[f"ids_{i}"].tolist(), TEXTS[i]
    assert len(reference[f"ids_{len(TEXTS) - 1}"]) == 512     # the long text was truncated by both


def test_hidden_states_and_sentence_embeddings_match(imported, reference):
    inputs, hidden = ours(imported, TEXTS)
    max_diff = 0.0
    for i, _ in enumerate(TEXTS):
        n = int(inputs["padding_mask"][i].numpy().sum())
        max_diff = max(max_diff, float(np.abs(hidden[i, :n] - reference[f"hidden_{i}"]).max()))
    mask = inputs["padding_mask"].numpy()[..., None].astype("float32")
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)     # the checkpoint's Normalize module
    sentence_diff = float(np.abs(pooled - reference["sentence"]).max())
    cosine = float(np.min(np.sum(pooled * reference["sentence"], -1)))
    print(f"max |hidden diff| {max_diff:.2e}, max |sentence diff| {sentence_diff:.2e}, min cosine {cosine:.8f}")
    assert max_diff < 1e-4 and sentence_diff < 1e-4 and cosine > 0.99999


def test_unsupported_or_mismatched_checkpoints_fail_clearly(tmp_path):
    src = minilm_checkpoint_dir()
    bad = tmp_path / "roberta"
    bad.mkdir()
    config = json.load(open(os.path.join(src, "config.json")))
    (bad / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(UnsupportedCheckpointError, match="roberta"):
        load_hf_bert(str(bad))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in ("vocab.txt", "model.safetensors"):
        os.symlink(os.path.join(src, name), wrong / name)
    (wrong / "config.json").write_text(json.dumps({**config, "intermediate_size": 1024}))
    with pytest.raises(ValueError, match="shape mismatch"):
        load_hf_bert(str(wrong))
    with pytest.raises(FileNotFoundError):
        load_hf_bert(str(tmp_path))


MASKED_TEXTS = ["The capital of France is [MASK].", "A [MASK] [MASK] is used for iteration in Python.",
                "Café [MASK] vu, naïve façades!", "[MASK] lists are mutable; tuples are [MASK]."]


@pytest.fixture(scope="module")
def mlm_reference(tmp_path_factory):
    """A checkpoint with a cls.predictions head, saved by transformers, and its logits there."""
    tmp = tmp_path_factory.mktemp("mlm")
    return str(tmp / "ckpt"), run_reference("hf_mlm_reference.py", MASKED_TEXTS, tmp, str(tmp / "ckpt"),
                                            str(tmp / "ref.npz"))


def test_masked_lm_head_logits_match_reference(mlm_reference):
    from rw_tf.applications.fill_mask import fill_mask, masked_text_inputs
    from rw_tf.checkpoints import hf_bert_masked_lm, hf_bert_tokenizer, pretrained_task_model

    checkpoint, reference = mlm_reference
    model, tokenizer = hf_bert_masked_lm(checkpoint), hf_bert_tokenizer(checkpoint)
    inputs = masked_text_inputs(tokenizer, tf.constant(MASKED_TEXTS), 64)
    logits = model({k: v for k, v in inputs.items() if k != "mask_weights"}, training=False)["mlm"].numpy()
    max_diff = 0.0
    for i, _ in enumerate(MASKED_TEXTS):
        n, expected = int(inputs["padding_mask"][i].numpy().sum()), reference[f"logits_{i}"]
        assert inputs["token_ids"][i, :n].numpy().tolist() == reference[f"ids_{i}"].tolist(), MASKED_TEXTS[i]
        max_diff = max(max_diff, float(np.abs(logits[i, :len(expected)] - expected).max()))
    print(f"max |MLM logit diff| {max_diff:.2e}")
    assert max_diff < 1e-4
    # Fill-mask with the imported head proposes the reference's most likely pieces, in order.
    suggestions = fill_mask(model, tokenizer, MASKED_TEXTS[:1], top_k=5)[0][0]
    reference_top = [tokenizer.vocabulary[j] for j in np.argsort(-reference["logits_0"][0])[:5]]
    assert [piece for piece, _ in suggestions] == reference_top
    # The same head is a start point for continued pretraining (rw-tf pretrain --init-from CHECKPOINT).
    again = pretrained_task_model(checkpoint)
    np.testing.assert_array_equal(again.mlm_head.output_bias.numpy(), model.mlm_head.output_bias.numpy())


def test_encoder_only_checkpoints_have_no_masked_lm_head():
    from rw_tf.checkpoints import has_masked_lm_head, hf_bert_masked_lm

    assert not has_masked_lm_head(minilm_checkpoint_dir())
    with pytest.raises(UnsupportedCheckpointError, match="no masked-LM head"):
        hf_bert_masked_lm(minilm_checkpoint_dir())
