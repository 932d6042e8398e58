"""Knowledge-enhanced encoder and entity ids in pretraining examples."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.masking import PretrainingExampleBuilder
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.knowledge.demo import nations_demo
from rw_tf.knowledge.entity_linking import EntityLinker
from rw_tf.models import PretrainingModel
from rw_tf.networks import KnowledgeEnhancedEncoder, TransformerEncoder
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary

SIZES = dict(vocab_size=60, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_sequence_length=16,
             dropout=0.0, attention_dropout=0.0)


def inputs(entity_ids):
    ids = np.arange(2 * 6).reshape(2, 6).astype("int32") + 5
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids),
            "entity_ids": np.asarray(entity_ids, "int32")}


@pytest.mark.parametrize("fusion", ["gated", "additive"])
def test_injection_only_where_entities_and_round_trip(fusion):
    enc = KnowledgeEnhancedEncoder(num_entities=5, entity_embedding_dim=4, knowledge_layers=(1,), fusion=fusion,
                                   **SIZES)
    none = inputs(np.full((2, 6), -1))
    plain = TransformerEncoder(**SIZES)
    plain(none)
    enc(none)
    plain.set_weights([w for w in enc.get_weights()][:len(plain.get_weights())])
    np.testing.assert_allclose(enc(none)["sequence_output"], plain(none)["sequence_output"], atol=1e-5)
    linked = inputs([[-1, 2, -1, -1, -1, -1], [-1] * 6])
    out = np.asarray(enc(linked)["sequence_output"])
    base = np.asarray(enc(none)["sequence_output"])
    assert not np.allclose(out[0, 1], base[0, 1]) and np.allclose(out[1], base[1], atol=1e-6)
    np.testing.assert_allclose(out[0, 0], base[0, 0], atol=1e-6)   # injected after the last block: local
    clone = KnowledgeEnhancedEncoder.from_config(enc.get_config())
    clone(linked)
    clone.set_weights(enc.get_weights())
    np.testing.assert_allclose(clone(linked)["sequence_output"], out, atol=1e-5)


def test_entity_embeddings_frozen_and_validated():
    enc = KnowledgeEnhancedEncoder(num_entities=5, entity_embedding_dim=4, knowledge_layers=(0,), **SIZES)
    enc(inputs(np.full((2, 6), -1)))
    vectors = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    enc.set_entity_embeddings(vectors)
    assert not any(w is enc.entity_embedding.embeddings for w in enc.trainable_weights)
    with pytest.raises(ValueError, match="must be"):
        enc.set_entity_embeddings(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"knowledge_layers \[7\] must name blocks of this encoder"):
        KnowledgeEnhancedEncoder(num_entities=5, entity_embedding_dim=4, knowledge_layers=(7,), **SIZES)
    with pytest.raises(KeyError, match="entity_ids"):
        enc({k: v for k, v in inputs(np.full((2, 6), -1)).items() if k != "entity_ids"})


@pytest.fixture(scope="module")
def demo_setup(tmp_path_factory):
    demo = nations_demo()
    sentences = [s for d in demo.train_documents for s in d]
    tok = WordPieceTokenizer(write_vocabulary(learn_vocabulary(sentences, 400, min_count=1),
                                              str(tmp_path_factory.mktemp("v") / "vocab.txt")))
    return demo, tok, EntityLinker(tok, demo.alias_to_entity)


def test_builder_hides_entities_of_masked_tokens(demo_setup):
    demo, tok, linker = demo_setup
    pairs = segment_pair_candidates(demo.train_documents, target_words=6, seed=0)
    builder = PretrainingExampleBuilder(tok, PretrainingDataConfig(32, 5, whole_word_masking=True), linker)
    texts = {k: tf.constant(pairs[k][:200]) for k in ("text_a", "text_b", "text_random")}
    f = {k: v.numpy() for k, v in builder(texts).items()}
    rows = np.arange(200)[:, None]
    at_masked = f["entity_ids"][rows, f["masked_positions"]]
    assert (at_masked[f["masked_weights"] > 0] == -1).all()          # no leak of the answer
    assert (f["masked_entity_ids"] >= 0).sum() > 100                 # many masked tokens are entities
    assert ((f["entity_ids"] >= 0).sum(axis=1) > 0).mean() > 0.9     # most examples keep linked entities
    names = tok.ids_to_tokens(f["masked_ids"][f["masked_entity_ids"] >= 0][None, :])[0]
    assert set(names) <= set(demo.entity_to_id)


def test_knowledge_pretraining_saves_and_reloads(demo_setup, tmp_path):
    demo, tok, linker = demo_setup
    pairs = segment_pair_candidates(demo.train_documents, target_words=6, seed=0)
    ds = pretraining_dataset(pairs, tok, PretrainingDataConfig(32, 5), 16, linker=linker)
    x, _, _ = next(iter(ds))
    assert "entity_ids" in x
    enc = KnowledgeEnhancedEncoder(num_entities=14, entity_embedding_dim=8, knowledge_layers=(0,),
                                   **{**SIZES, "vocab_size": tok.vocab_size, "max_sequence_length": 32})
    model = PretrainingModel(enc)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x)["mlm"], model(x)["mlm"], atol=1e-5)


def test_domain_pretraining_with_distillation_logs_each_term(demo_setup):
    from rw_tf.models import add_distillation_targets

    demo, tok, linker = demo_setup
    pairs = segment_pair_candidates(demo.train_documents, target_words=6, seed=0)
    ds = pretraining_dataset(pairs, tok, PretrainingDataConfig(32, 5), 16, linker=linker)
    sizes = {**SIZES, "vocab_size": tok.vocab_size, "max_sequence_length": 32}
    teacher = PretrainingModel(KnowledgeEnhancedEncoder(num_entities=14, entity_embedding_dim=8, **sizes))
    teacher(next(iter(ds))[0])
    student = PretrainingModel(TransformerEncoder(**sizes), kd_weight=0.5, kd_temperature=2.0)
    student.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = student.fit(add_distillation_targets(ds, teacher), steps_per_epoch=3, epochs=1, verbose=0).history
    assert {"mlm_loss", "nsp_loss", "sop_loss", "kd_loss"} <= set(history)
    # The logged term is T^2 KL(teacher || student) over the masked positions, from the teacher's MLM logits.
    x, y, weights = next(iter(add_distillation_targets(ds, teacher)))
    teacher_logits, student_logits = np.asarray(y["kd"]) / 2.0, np.asarray(student(x, training=False)["mlm"]) / 2.0
    log_p = teacher_logits - np.log(np.exp(teacher_logits).sum(-1, keepdims=True))
    log_q = student_logits - np.log(np.exp(student_logits).sum(-1, keepdims=True))
    kl = 4.0 * np.sum(np.exp(log_p) * (log_p - log_q), -1)
    mask = np.asarray(weights["mlm"])
    expected = float(np.sum(kl * mask) / np.sum(mask))
    logged = student.evaluate(tf.data.Dataset.from_tensors((x, y, weights)), verbose=0, return_dict=True)["kd_loss"]
    assert expected > 1e-4 and logged == pytest.approx(expected, rel=1e-4)
    assert PretrainingModel.from_config(student.get_config()).kd_weight == 0.5
