"""Knowledge graphs, TransE, filtered ranking, knowledge fusion layers and the KD loss."""
import json

import keras
import numpy as np
import pytest

from rw_tf.cli.main import main as cli_main
from rw_tf.knowledge import TransE, filtered_ranks, load_pykeen_dataset, load_triples, rank_metrics
from rw_tf.knowledge.evaluation import transe_scores
from rw_tf.layers import AdditiveKnowledgeFusion, GatedKnowledgeFusion
from rw_tf.losses import KnowledgeDistillationLoss


@pytest.mark.parametrize("name, entities, relations, sizes", [
    ("nations", 14, 55, (1592, 199, 201)), ("kinships", 104, 25, (8544, 1068, 1074)),
    ("umls", 135, 46, (5216, 652, 661))])
def test_packaged_datasets(name, entities, relations, sizes):
    splits = load_pykeen_dataset(name)
    assert (splits[0].num_entities, splits[0].num_relations) == (entities, relations)
    assert tuple(len(s) for s in splits) == sizes
    assert all(s.rejects.total == 0 for s in splits)


def test_malformed_and_unknown_rows_are_counted(tmp_path):
    path = tmp_path / "kg.tsv"
    path.write_bytes(b"a\tr\tb\n# comment\n\nb\tr\tc\nonly\ttwo\na\t\tb\nbad\xff\tr\tb\n")
    kg = load_triples(str(path))
    assert len(kg) == 2 and kg.num_entities == 3
    assert dict(kg.rejects.counts) == {"wrong_field_count": 1, "empty_field": 1, "invalid_utf8": 1}
    other = tmp_path / "test.tsv"
    other.write_text("a\tr\tc\na\tr\tzzz\na\tq\tb\n")
    test = load_triples(str(other), kg.entity_to_id, kg.relation_to_id)
    assert len(test) == 1 and test.rejects.counts["unknown_entity_or_relation"] == 2
    with pytest.raises(KeyError, match="unknown entity"):
        kg.entity_id("zzz")


@pytest.mark.parametrize("norm", [1, 2])
def test_transe_distance_formula_and_config(norm):
    model = TransE(5, 2, embedding_dim=4, norm=norm, seed=1)
    triples = np.array([[0, 1, 2], [3, 0, 4]])
    d = np.asarray(model(triples))
    e = np.asarray(model.entity_embedding.embeddings)
    r = np.asarray(model.relation_embedding.embeddings)
    expected = np.linalg.norm(e[[0, 3]] + r[[1, 0]] - e[[2, 4]], ord=norm, axis=-1)
    np.testing.assert_allclose(d, expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e, axis=-1), 1.0, rtol=1e-5)   # entity-norm constraint
    assert TransE.from_config(model.get_config()).get_config() == model.get_config()
    corrupted = np.asarray(model.corrupt(triples))
    assert corrupted.shape == (2, 3) and (corrupted[:, 1] == triples[:, 1]).all()
    assert ((corrupted[:, 0] == triples[:, 0]) | (corrupted[:, 2] == triples[:, 2])).all()


def test_transe_learns_nations():
    train, valid, test = load_pykeen_dataset("nations")
    keras.utils.set_random_seed(0)
    model = TransE(train.num_entities, train.num_relations, embedding_dim=32, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    known = [train.triples, valid.triples, test.triples]
    before = rank_metrics(filtered_ranks(transe_scores(model), test.triples, known))
    history = model.fit(train.triples, epochs=40, batch_size=128, verbose=0)
    after = rank_metrics(filtered_ranks(transe_scores(model), test.triples, known))
    assert history.history["loss"][-1] < 0.75 * history.history["loss"][0]
    print("nations MRR before %.3f after %.3f, hits@10 %.3f" % (before["mrr"], after["mrr"], after["hits@10"]))
    assert after["mrr"] > before["mrr"] + 0.1 and after["hits@10"] > 0.9


def test_filtered_ranking_excludes_known_true_triples():
    # Entity 1 and 2 are both true tails of (0, r0, ?); entity 2 scores best, 1 second, 3 third.
    def score(anchors, rels, side):
        return np.tile(np.array([5.0, 1.0, 0.0, 2.0]), (len(anchors), 1))
    test = np.array([[0, 0, 1]])
    unfiltered = filtered_ranks(score, test, known=[test])
    filtered = filtered_ranks(score, test, known=[test, np.array([[0, 0, 2]])])
    assert unfiltered[0, 1] == 2.0 and filtered[0, 1] == 1.0
    assert rank_metrics(np.array([[1.0, 2.0]]))["mrr"] == pytest.approx(0.75)


def _fusion_inputs():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(2, 3, 8)).astype("float32"), rng.normal(size=(2, 3, 4)).astype("float32"),
            np.array([[1, 1, 0], [1, 0, 1]], "float32"))


@pytest.mark.parametrize("bias, expect", [(50.0, "h"), (-50.0, "k")])
def test_gate_limits(bias, expect):
    h, e, mask = _fusion_inputs()
    fusion = GatedKnowledgeFusion(hidden_size=8)
    fusion(h, e, mask)
    fusion.gate.kernel.assign(np.zeros_like(fusion.gate.kernel))
    fusion.gate.bias.assign(np.full((8,), bias, "float32"))
    out = np.asarray(fusion(h, e))
    k = np.asarray(fusion.projection(e))
    np.testing.assert_allclose(out, h if expect == "h" else k, atol=1e-5)
    masked = np.asarray(fusion(h, e, mask))
    np.testing.assert_allclose(masked[0, 2], h[0, 2], atol=1e-6)   # tokens without an entity stay h


def test_fusion_layers_compute_their_formulas():
    """h' = act(W_h h + b + W_k (W_p e)) (additive) and g h + (1 - g) k, g = sigmoid(W_g [h; k] + b_g)
    (gated), with random weights; tokens without an entity keep h."""
    h, e, mask = _fusion_inputs()
    rng = np.random.default_rng(1)
    additive = AdditiveKnowledgeFusion(8, activation="tanh")
    additive(h, e, mask)
    additive.set_weights([rng.normal(size=w.shape).astype("float32") for w in additive.get_weights()])
    k = e @ additive.projection.kernel.numpy()
    expected = np.tanh(h @ additive.hidden_dense.kernel.numpy() + additive.hidden_dense.bias.numpy()
                       + k @ additive.knowledge_dense.kernel.numpy())
    expected = np.where(mask[..., None] > 0, expected, h)
    np.testing.assert_allclose(additive(h, e, mask), expected, rtol=1e-5, atol=1e-5)
    gated = GatedKnowledgeFusion(8)
    gated(h, e, mask)
    gated.set_weights([rng.normal(size=w.shape).astype("float32") for w in gated.get_weights()])
    k = e @ gated.projection.kernel.numpy()
    g = 1 / (1 + np.exp(-(np.concatenate([h, k], -1) @ gated.gate.kernel.numpy() + gated.gate.bias.numpy())))
    expected = np.where(mask[..., None] > 0, g * h + (1 - g) * k, h)
    assert 0.05 < g.mean() < 0.95     # a real mix, not a limit
    np.testing.assert_allclose(gated(h, e, mask), expected, rtol=1e-5, atol=1e-5)


def test_fusion_layers_round_trip():
    h, e, mask = _fusion_inputs()
    for layer in (GatedKnowledgeFusion(8), AdditiveKnowledgeFusion(8, activation="tanh")):
        out = layer(h, e, mask)
        clone = layer.__class__.from_config(layer.get_config())
        clone(h, e, mask)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(clone(h, e, mask), out, atol=1e-6)


def test_kd_loss_zero_for_identical_positive_otherwise():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(4, 6)).astype("float32")
    student = rng.normal(size=(4, 6)).astype("float32")
    kd = KnowledgeDistillationLoss(temperature=2.0)
    assert float(kd(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    value = float(kd(teacher, student))
    p = np.exp(teacher / 2) / np.exp(teacher / 2).sum(-1, keepdims=True)
    q = np.exp(student / 2) / np.exp(student / 2).sum(-1, keepdims=True)
    assert value > 0 and value == pytest.approx(4 * np.mean(np.sum(p * np.log(p / q), -1)), rel=1e-4)
    with pytest.raises(ValueError):
        KnowledgeDistillationLoss(temperature=0.0)
    # Multi-label: one Bernoulli per label, their KLs summed, T^2 as above.
    bernoulli = float(KnowledgeDistillationLoss(temperature=2.0, distribution="sigmoid")(teacher, student))
    p, q = 1 / (1 + np.exp(-teacher / 2)), 1 / (1 + np.exp(-student / 2))
    per_label = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert bernoulli == pytest.approx(4 * np.mean(np.sum(per_label, -1)), rel=1e-4)


def test_kg_cli_train_and_eval(tmp_path, capsys):
    assert cli_main(["kg", "train", "--dataset", "nations", "--output-dir", str(tmp_path / "m"),
                     "--epochs", "20", "--embedding-dim", "16", "--batch-size", "128"]) == 0
    capsys.readouterr()
    trained = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert cli_main(["kg", "eval", "--model-dir", str(tmp_path / "m"), "--dataset", "nations"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_metrics"]["mrr"] == pytest.approx(trained["test_metrics"]["mrr"], abs=1e-6)
    assert cli_main(["kg", "eval", "--model-dir", str(tmp_path / "m"), "--dataset", "kinships"]) == 2
    assert "not trained on kinships" in capsys.readouterr().err
    assert cli_main(["kg", "train", "--output-dir", str(tmp_path / "x")]) == 2
