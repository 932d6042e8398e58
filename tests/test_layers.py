"""Layer/model serialization, shapes and masking behaviour (tiny sizes)."""
import keras
import numpy as np
import pytest

from rw_tf.config import EncoderConfig
from rw_tf.heads import MaskedLMHead, SegmentPairHead, SpanHead
from rw_tf.layers import TransformerEmbeddings, TransformerEncoderBlock
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder


def encoder_inputs(batch=2, length=8, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    mask[1, 5:] = 0
    seg = np.zeros((batch, length), "int32")
    seg[:, 4:] = 1
    return {"token_ids": ids, "segment_ids": seg, "padding_mask": mask}


@pytest.mark.parametrize("layer, args", [
    (TransformerEmbeddings(vocab_size=50, hidden_size=16, max_sequence_length=32), ("ids", "seg")),
    (TransformerEncoderBlock(hidden_size=16, num_heads=2, intermediate_size=32), ("hidden", "mask")),
    (SegmentPairHead(), ("hidden", "seg", "mask")),
    (SpanHead(), ("hidden", "mask")),
])
def test_layer_config_round_trip(layer, args):
    x = encoder_inputs()
    values = {"ids": x["token_ids"], "seg": x["segment_ids"], "mask": x["padding_mask"],
              "hidden": np.random.default_rng(1).normal(size=(2, 8, 16)).astype("float32")}
    out = layer(*[values[a] for a in args])
    clone = layer.__class__.from_config(layer.get_config())
    clone(*[values[a] for a in args])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(*[values[a] for a in args]), out, atol=1e-6)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).get_config() \
        == layer.get_config()


def test_masked_lm_head_ties_embedding_and_round_trips():
    emb = keras.layers.Embedding(50, 16)
    emb.build((None,))
    head = MaskedLMHead(emb)
    hidden = np.random.default_rng(0).normal(size=(2, 8, 16)).astype("float32")
    pos = np.array([[1, 2], [3, 0]], "int32")
    logits = head(hidden, pos)
    assert tuple(logits.shape) == (2, 2, 50)
    # The formula: LayerNorm(gelu(gathered hidden @ W + b)) @ E^T + output bias, with E the embedding matrix.
    gathered = np.take_along_axis(hidden, pos[..., None], axis=1)
    h = np.asarray(head.layer_norm(head.transform(gathered)))
    expected = h @ np.asarray(emb.embeddings).T + np.asarray(head.output_bias)
    np.testing.assert_allclose(np.asarray(logits), expected, atol=1e-5)
    # Tied in a whole model: one vocabulary x hidden matrix, listed once among the trainable weights.
    model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=50))
    model.build({"token_ids": (None, 8), "segment_ids": (None, 8), "padding_mask": (None, 8),
                 "masked_positions": (None, 2)})
    matrices = [w for w in model.weights if tuple(w.shape) == (50, model.encoder.config.hidden_size)]
    assert len(matrices) == 1 and model.mlm_head.token_embedding.embeddings is matrices[0]
    assert sum(w is matrices[0] for w in model.trainable_weights) == 1
    clone = MaskedLMHead.from_config({**head.get_config(), "token_embedding": emb})
    clone(hidden, pos)
    clone.set_weights(head.get_weights())
    np.testing.assert_allclose(clone(hidden, pos), logits, atol=1e-6)
    emb.embeddings.assign(emb.embeddings * 2.0)   # tying: changing the embedding changes the logits
    assert not np.allclose(head(hidden, pos), logits)


def test_encoder_ignores_padding_tokens():
    enc = TransformerEncoder.from_preset("tiny", vocab_size=50)
    x = encoder_inputs()
    out = enc(x)["sequence_output"]
    changed = dict(x, token_ids=x["token_ids"].copy())
    changed["token_ids"][1, 5:] = 7   # only padded positions differ
    out2 = enc(changed)["sequence_output"]
    np.testing.assert_allclose(out[1, :5], out2[1, :5], atol=1e-5)
    assert tuple(enc(x)["pooled_output"].shape) == (2, 64)


def test_encoder_and_pretraining_model_config_round_trip():
    enc = TransformerEncoder.from_preset("tiny", vocab_size=50)
    assert TransformerEncoder.from_config(enc.get_config()).config == enc.config
    model = PretrainingModel(enc, nsp_weight=0.5, sop_weight=0.25)
    x = dict(encoder_inputs(), masked_positions=np.array([[1, 2], [3, 0]], "int32"))
    out = model(x)
    assert tuple(out["mlm"].shape) == (2, 2, 50) and tuple(out["nsp"].shape) == (2, 1)
    clone = PretrainingModel.from_config(model.get_config())
    clone(x)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x)["mlm"], out["mlm"], atol=1e-5)
    assert clone.nsp_weight == 0.5 and clone.sop_weight == 0.25


def test_missing_inputs_and_bad_configs_raise_clear_errors():
    enc = TransformerEncoder.from_preset("tiny", vocab_size=50)
    with pytest.raises(KeyError, match="padding_mask"):
        enc({"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32")})
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown encoder preset"):
        EncoderConfig.preset("huge")


def test_inputs_of_the_wrong_rank_or_length_are_named_before_any_kernel_runs():
    enc = TransformerEncoder.from_preset("tiny", vocab_size=50)   # 128 positions

    def inputs(token_shape, other_shape=None):
        other_shape = other_shape or token_shape
        return {"token_ids": np.ones(token_shape, "int32"), "segment_ids": np.zeros(other_shape, "int32"),
                "padding_mask": np.ones(other_shape, "int32")}

    assert enc(inputs((2, 128)))["sequence_output"].shape == (2, 128, 64)
    for bad, words in ((inputs((8,)), "TransformerEncoder: token_ids must be [batch, sequence], got shape (8,)"),
                       (inputs((1, 2, 4)), "token_ids must be [batch, sequence], got shape (1, 2, 4)"),
                       (inputs((2, 6), (2, 5)), "inputs disagree in sequence: token_ids (2, 6), segment_ids (2, 5)"),
                       (inputs((2, 6), (3, 6)), "the inputs disagree in batch: token_ids (2, 6), segment_ids (3, 6)"),
                       (inputs((1, 129)), "sequence length 129 is longer than the encoder's max_sequence_length 128")):
        with pytest.raises(ValueError) as raised:
            enc(bad)
        assert words in str(raised.value)
    # A model built on unknown lengths still runs (the checks only read what the shapes say).
    symbolic = {k: keras.Input((None,), dtype="int32", name=k) for k in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(symbolic, enc(symbolic)["pooled_output"])
    assert model.predict(inputs((3, 7)), verbose=0).shape == (3, 64)


def _zeros(*shape, dtype="float32"):
    return np.zeros(shape, dtype)


def _layer_shape_cases():
    from rw_tf.layers import AdditiveKnowledgeFusion, GatedKnowledgeFusion
    from rw_tf.layers.cross_attention import CrossAttentionBlock
    from rw_tf.losses import InfoNCELoss, KnowledgeDistillationLoss
    from rw_tf.networks.image_encoder import ConvImageEncoder, ViTImageEncoder

    vit = dict(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    ids = _zeros(2, 4, dtype="int32")
    # (layer, good arguments, bad arguments, the message), each bad call failed in a kernel before
    # ("ConcatOp : Dimension 1 in both shapes must be equal", "Incompatible shapes", "Index out of
    # range") or, for the ConvImageEncoder, ran on images of another size than it was made for.
    return [
        (lambda: GatedKnowledgeFusion(8), (_zeros(2, 4, 8), _zeros(2, 4, 3)), (_zeros(2, 4, 8), _zeros(2, 5, 3)),
         "GatedKnowledgeFusion: the inputs disagree in sequence: hidden_states (2, 4, 8), entity_embeddings (2, 5, 3)"),
        (lambda: GatedKnowledgeFusion(8), (_zeros(2, 4, 8), _zeros(2, 4, 3), _zeros(2, 4)),
         (_zeros(2, 4, 8), _zeros(2, 4, 3), _zeros(2, 5)),
         "GatedKnowledgeFusion: the inputs disagree in sequence: hidden_states (2, 4, 8), entity_embeddings (2, 4, 3), "
         "entity_mask (2, 5)"),
        (lambda: AdditiveKnowledgeFusion(8), (_zeros(2, 4, 8), _zeros(2, 4, 3)), (_zeros(2, 4, 16), _zeros(2, 4, 3)),
         "AdditiveKnowledgeFusion: hidden_states must be [batch, sequence, 8], got shape (2, 4, 16)"),
        (lambda: TransformerEncoderBlock(16, 2, 32), (_zeros(2, 4, 16), ids), (_zeros(2, 4, 16), ids[:, :3]),
         "TransformerEncoderBlock: the inputs disagree in sequence: x (2, 4, 16), padding_mask (2, 3)"),
        (lambda: TransformerEncoderBlock(16, 2, 32), (_zeros(2, 4, 16),), (_zeros(2, 16),),
         "TransformerEncoderBlock: x must be [batch, sequence, 16], got shape (2, 16)"),
        (lambda: CrossAttentionBlock(16, 2, 32), (_zeros(2, 4, 16), _zeros(2, 3, 8), _zeros(2, 3)),
         (_zeros(2, 4, 16), _zeros(2, 3, 8), _zeros(2, 4)),
         "CrossAttentionBlock: the inputs disagree in context: context (2, 3, 8), context_mask (2, 4)"),
        (lambda: MaskedLMHead(keras.layers.Embedding(50, 16)), (_zeros(2, 4, 16), ids[:, :2]),
         (_zeros(2, 4, 8), ids[:, :2]),
         "MaskedLMHead: sequence_output must be [batch, sequence, 16], got shape (2, 4, 8)"),
        (SegmentPairHead, (_zeros(2, 4, 16), ids, ids + 1), (_zeros(2, 4, 16), ids, ids[:1] + 1),
         "SegmentPairHead: the inputs disagree in batch: sequence_output (2, 4, 16), segment_ids (2, 4), "
         "padding_mask (1, 4)"),
        (SpanHead, (_zeros(2, 4, 16), ids + 1), (_zeros(2, 4, 16), ids[:, :1] + 1),
         "SpanHead: the inputs disagree in sequence: sequence_output (2, 4, 16), padding_mask (2, 1)"),
        (lambda: ViTImageEncoder(**vit), (_zeros(2, 32, 32, 3),), (_zeros(2, 32, 32, 1),),
         "ViTImageEncoder: images must be [batch, 32, 32, 3], got shape (2, 32, 32, 1)"),
        (lambda: ConvImageEncoder(image_size=32, filters=8, hidden_size=16), (_zeros(2, 32, 32, 3),),
         (_zeros(2, 64, 64, 3),), "ConvImageEncoder: images must be [batch, 32, 32, 3], got shape (2, 64, 64, 3)"),
        (KnowledgeDistillationLoss, (_zeros(2, 5), _zeros(2, 5)), (_zeros(2, 5), _zeros(2, 6)),
         "KnowledgeDistillationLoss: the inputs disagree in axis 1: y_true (2, 5), y_pred (2, 6)"),
        (InfoNCELoss, (-np.ones((4, 2), "int32"), _zeros(4, 2, 8)), (-np.ones((4,), "int32"), _zeros(4, 2, 8)),
         "InfoNCELoss: y_true must be [batch, text ids], got shape (4,)"),
        (InfoNCELoss, (-np.ones((4, 3), "int32"), _zeros(4, 3, 8)), (-np.ones((4, 2), "int32"), _zeros(4, 3, 8)),
         "InfoNCELoss needs embeddings [batch, views >= 2, dim] and text ids [batch, >= views]"),
    ]


LAYER_SHAPE_CASES = _layer_shape_cases()


@pytest.mark.parametrize("make, good, bad, words", LAYER_SHAPE_CASES,
                         ids=[f"{i}-{case[3].split(':')[0].split()[0]}" for i, case in enumerate(LAYER_SHAPE_CASES)])
def test_layers_name_the_input_of_the_wrong_shape_before_any_kernel_runs(make, good, bad, words):
    make()(*good)   # the same layer takes the right shapes
    with pytest.raises(ValueError) as raised:
        make()(*bad)
    assert words in str(raised.value)


def test_ids_outside_their_table_or_not_whole_numbers_are_refused_not_looked_up():
    # Before: Keras's take wrapped -2 to token 48 and cast 1.5 to 1, so both gave plausible vectors.
    import tensorflow as tf

    from rw_tf.knowledge import TransE
    from rw_tf.models import TwoTowerRecommender
    from rw_tf.networks import KnowledgeEnhancedEncoder

    enc = TransformerEncoder.from_preset("tiny", vocab_size=50)
    x = encoder_inputs()
    reference = enc(x)["pooled_output"]
    whole_floats = dict(x, token_ids=x["token_ids"].astype("float64"))   # Keras accepts these: same ids
    np.testing.assert_allclose(enc(whole_floats)["pooled_output"], reference, atol=1e-6)
    cases = [(dict(x, token_ids=np.where(x["token_ids"] == x["token_ids"][0, 0], -2, x["token_ids"])),
              ValueError, "token_ids must be ids in [0, 50) (the vocabulary size); got values from -2 to"),
             (dict(x, token_ids=x["token_ids"] + 45), ValueError, "token_ids must be ids in [0, 50)"),
             (dict(x, token_ids=x["token_ids"] + 0.5), ValueError, "token_ids must be whole-number ids in [0, 50)"),
             (dict(x, token_ids=np.full((2, 8), np.nan)), ValueError, "got values from nan to nan"),
             (dict(x, token_ids=np.full((2, 8), "7")), TypeError, "token_ids must be integer ids, got string"),
             (dict(x, segment_ids=x["segment_ids"] * 2), ValueError, "segment_ids must be ids in [0, 2) "
                                                                      "(type_vocab_size); got values from 0 to 2"),
             ({k: v[:, :0] for k, v in x.items()}, ValueError, "encoder inputs have no positions")]
    for bad, error, words in cases:
        with pytest.raises(error) as raised:
            enc(bad)
        assert words in str(raised.value)
    # In a graph (predict, fit, a SavedModel) the check runs with the step.
    negative = dict(x, token_ids=np.where(x["token_ids"] > 20, -1, x["token_ids"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token_ids must be ids in \[0, 50\)"):
        tf.function(lambda inputs: enc(inputs)["pooled_output"])(negative)

    knowledge = KnowledgeEnhancedEncoder(vocab_size=50, num_entities=14, entity_embedding_dim=8, hidden_size=16,
                                         num_layers=2, num_heads=2, intermediate_size=32, knowledge_layers=(1,))
    entities = np.full((2, 8), -1, "int32")
    entities[0, 2] = 13
    assert knowledge(dict(x, entity_ids=entities))["sequence_output"].shape == (2, 8, 16)
    for bad, words in ((entities + 1, "entity_ids must be ids in [-1, 14) (-1: no entity; num_entities); got "
                                      "values from 0 to 14"),
                       (entities - 1, "got values from -2 to 12"),
                       (entities[:, :7], "KnowledgeEnhancedEncoder: the inputs disagree in sequence: "),
                       (entities[0], "entity_ids must be [batch, sequence], got shape (8,)")):
        with pytest.raises(ValueError) as raised:
            knowledge(dict(x, entity_ids=bad))
        assert words in str(raised.value)

    transe = TransE(num_entities=5, num_relations=2, embedding_dim=4)
    assert transe(np.array([[0, 1, 4]])).shape == (1,)
    for bad, error, words in (([[0, 1, 5]], ValueError, "head and tail ids must be ids in [0, 5) (num_entities)"),
                              ([[-1, 1, 2]], ValueError, "got values from -1 to 2"),
                              ([[0, 2, 1]], ValueError, "relation ids must be ids in [0, 2) (num_relations)"),
                              ([[0, 1]], ValueError, "[batch, 3] (head, relation, tail) id triples, got shape (1, 2)"),
                              ([[0.5, 1, 2]], ValueError, "head and tail ids must be whole-number ids")):
        with pytest.raises(error) as raised:
            transe(np.array(bad))
        assert words in str(raised.value)

    recommender = TwoTowerRecommender(num_items=10, text_dim=4, embedding_dim=8, max_history=3)
    recommender.build({"history": (None, 3), "item": (None,)})
    assert recommender.recommend(np.array([[1, 2, -1]]), k=2)[0].shape == (1, 2)
    for call, words in ((lambda: recommender.recommend(np.array([[1, 10, -1]])),
                         "history must be ids in [-1, 10) (-1 pads; num_items); got values from -1 to 10"),
                        (lambda: recommender({"history": np.array([[1, -1, -1]]), "item": np.array([-1])}),
                         "item ids must be ids in [0, 10) (num_items)"),
                        (lambda: recommender.recommend(np.array([[1.5, -1, -1]])), "whole-number ids"),
                        (lambda: recommender({"history": np.array([[1, -1, -1]]), "item": np.array([2.5])}),
                         "item ids must be whole-number ids in [0, 10)")):
        with pytest.raises(ValueError) as raised:
            call()
        assert words in str(raised.value)
    head = MaskedLMHead(enc.token_embedding)
    hidden = enc(x)["sequence_output"]
    with pytest.raises(ValueError, match=r"masked_positions must be ids in \[0, 8\) \(the sequence length\)"):
        head(hidden, np.array([[1, 8], [0, 0]]))


def test_segment_pair_head_reads_the_means_of_each_segment():
    from rw_tf.heads.segment_pair import segment_means

    x = encoder_inputs(batch=3)
    x["segment_ids"][2] = 0                                  # example 2: no second segment
    hidden = np.random.default_rng(2).normal(size=(3, 8, 16)).astype("float32")
    expected = []
    for h, seg, mask in zip(hidden, x["segment_ids"], x["padding_mask"]):
        halves = [h[(seg == s) & (mask == 1)] for s in (0, 1)]
        expected.append(np.concatenate([part.mean(0) if len(part) else np.zeros(16, "float32") for part in halves]))
    means = keras.ops.convert_to_numpy(segment_means(hidden, x["segment_ids"], x["padding_mask"]))
    np.testing.assert_allclose(means, np.stack(expected), atol=1e-5)
    head = SegmentPairHead()
    logits = keras.ops.convert_to_numpy(head(hidden, x["segment_ids"], x["padding_mask"]))
    kernel, bias = head.classifier.get_weights()
    np.testing.assert_allclose(logits, np.stack(expected) @ kernel + bias, atol=1e-5)
