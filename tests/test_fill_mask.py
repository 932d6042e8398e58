"""Writing assistant (fill-mask) on a model pretrained on the embedded corpus."""
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.applications.fill_mask import fill_mask, masked_text_inputs
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder


def test_marker_becomes_one_mask_token(tokenizer):
    inputs = masked_text_inputs(tokenizer, tf.constant(["The [MASK] statement [MASK] here.", "A [MASK]"]), 16)
    ids = inputs["token_ids"].numpy()
    assert (ids == tokenizer.mask_id).sum(axis=1).tolist() == [2, 1]
    pos = inputs["masked_positions"].numpy()
    assert ids[0, pos[0, 0]] == tokenizer.mask_id and ids[0, pos[0, 1]] == tokenizer.mask_id
    assert inputs["mask_weights"].numpy()[:, :3].tolist() == [[1, 1, 0], [1, 0, 0]]
    assert tokenizer.ids_to_tokens(ids[:1, :3])[0][1] == "the"


def test_fill_mask_suggestions_and_errors(tokenizer):
    model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    out = fill_mask(model, tokenizer, ["The [MASK] statement.", "[MASK] and [MASK]"], top_k=3, max_sequence_length=16)
    assert [len(x) for x in out] == [1, 2] and all(len(s) == 3 for x in out for s in x)
    scores = [p for x in out for s in x for _, p in s]
    assert all(0 <= p <= 1 for p in scores)
    with pytest.raises(ValueError, match="no \\[MASK\\] marker"):
        fill_mask(model, tokenizer, ["no marker here"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="MASK"):
        masked_text_inputs(tokenizer, tf.constant(["no marker"]), 16)
