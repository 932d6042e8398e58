"""Writing assistant (fill-mask) on a model pretrained on the embedded corpus."""
import keras
import pytest
import tensorflow as tf

from rw_tf.applications.fill_mask import fill_mask, masked_text_inputs
from rw_tf.errors import error_reason
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
    # In a graph (a served signature) the reason a client gets is the message alone, without the
    # assert's "[Condition x > y did not hold element-wise:] [x ...]" tail.
    with pytest.raises(tf.errors.InvalidArgumentError) as failed:
        tf.function(lambda text: masked_text_inputs(tokenizer, text, 16))(tf.constant(["no marker"]))
    assert error_reason(failed.value) == "every text needs at least one [MASK] marker"
    # Markers that cannot be served are an error, never dropped: nine markers, or one past the length.
    with pytest.raises(ValueError, match="at most 8 markers"):
        fill_mask(model, tokenizer, [" ".join(["[MASK]"] * 9)], max_sequence_length=32)
    with pytest.raises(ValueError, match="within the first 14 word pieces"):
        fill_mask(model, tokenizer, ["word " * 20 + "[MASK]"], max_sequence_length=16)
    assert len(fill_mask(model, tokenizer, [" ".join(["[MASK]"] * 8)], max_sequence_length=32)[0]) == 8


def test_masked_span_suggestions_are_joint_beam_completions(tokenizer):
    from rw_tf.applications.fill_mask import _fill_markers, masked_span_suggestions

    keras.utils.set_random_seed(3)
    model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    single = masked_span_suggestions(model, tokenizer, "The [MASK] statement.", top_k=4, max_sequence_length=16)
    independent = [(t, p) for t, p in fill_mask(model, tokenizer, ["The [MASK] statement."], top_k=12,
                                                 max_sequence_length=16)[0][0] if not t.startswith("[")]
    assert [(s["pieces"][0], round(s["probability"], 5)) for s in single] == \
        [(t, round(p, 5)) for t, p in independent[:4]]

    span = masked_span_suggestions(model, tokenizer, "Use a [MASK] [MASK] here.", top_k=3, beam_width=6,
                                   max_sequence_length=16)
    assert len(span) == 3 and all(len(s["pieces"]) == 2 for s in span)
    probs = [s["probability"] for s in span]
    assert probs == sorted(probs, reverse=True) and 0 < probs[-1] <= probs[0] <= 1
    specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    assert not any(p in specials for s in span for p in s["pieces"])
    # The score is the chain of conditionals: P(first) * P(second | first filled in). A first piece
    # re-tokenizes to itself only as a whole word, so "##" continuations are skipped, and at least
    # one suggestion must be checked.
    first = dict(fill_mask(model, tokenizer, ["Use a [MASK] [MASK] here."], top_k=tokenizer.vocab_size,
                           max_sequence_length=16)[0][0])
    checked = 0
    for suggestion in span:
        first_piece, second_piece = suggestion["pieces"]
        if first_piece.startswith("##"):
            continue
        second = dict(fill_mask(model, tokenizer, [f"Use a {first_piece} [MASK] here."], top_k=tokenizer.vocab_size,
                                max_sequence_length=16)[0][0])
        assert suggestion["probability"] == pytest.approx(first[first_piece] * second[second_piece], rel=1e-3)
        checked += 1
    assert checked >= 1
    assert _fill_markers("a [MASK] [MASK] b", ["loop", "##s"]) == "a loops b"
    with pytest.raises(ValueError, match="no \\[MASK\\] marker"):
        masked_span_suggestions(model, tokenizer, "no marker")
    with pytest.raises(ValueError, match="max_masks=2"):
        masked_span_suggestions(model, tokenizer, "[MASK] [MASK] [MASK]", max_masks=2)
