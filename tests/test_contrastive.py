"""InfoNCE (rw_tf.losses.InfoNCELoss): its values against the formula and a numpy reference, false
negatives masked, and one step under MirroredStrategy equal to the single-device step."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.losses import InfoNCELoss
from rw_tf.training.strategy import create_strategy


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference_info_nce(emb, ids, tau, symmetric=True):
    """Per-anchor symmetric InfoNCE written directly from the definition (numpy, loops)."""
    batch, views, _ = emb.shape
    anchors, keys = emb[:, 0], np.concatenate([emb[:, 1]] + [emb[:, v] for v in range(2, views)])
    key_ids = np.concatenate([ids[:, 1]] + [ids[:, v] for v in range(2, views)])

    def direction(queries, query_ids, candidates, candidate_ids):
        out = []
        for i in range(batch):
            logits = candidates @ queries[i] / tau
            keep = [j for j in range(len(candidates))
                    if j == i or query_ids[i] < 0 or candidate_ids[j] != query_ids[i]]
            out.append(-_log_softmax(logits[keep][None])[0][keep.index(i)])
        return np.array(out)

    loss = direction(anchors, ids[:, 0], keys, key_ids)
    if symmetric:
        loss = 0.5 * (loss + direction(emb[:, 1], ids[:, 1], anchors, ids[:, 0]))
    return loss


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("batch,views", [(8, 2), (16, 2), (8, 3)])
def test_uninformative_embeddings_give_log_of_the_candidates(batch, views):
    same = np.ones((batch, views, 12), np.float32) / np.sqrt(12)
    loss = float(InfoNCELoss(0.05, symmetric=False)(-np.ones((batch, views)), same))
    assert loss == pytest.approx(np.log(batch * (views - 1)), rel=1e-5)
    # Symmetric: the positive -> anchor direction has `batch` candidates.
    symmetric = float(InfoNCELoss(0.05)(-np.ones((batch, views)), same))
    assert symmetric == pytest.approx(0.5 * (np.log(batch * (views - 1)) + np.log(batch)), rel=1e-5)


def test_aligned_embeddings_give_almost_zero_and_shuffled_ones_do_not():
    basis = np.eye(8, 16, dtype=np.float32)
    aligned = np.stack([basis, basis], axis=1)
    assert float(InfoNCELoss(0.05)(-np.ones((8, 2)), aligned)) < 1e-6
    shuffled = np.stack([basis, np.roll(basis, 1, axis=0)], axis=1)
    assert float(InfoNCELoss(0.05)(-np.ones((8, 2)), shuffled)) > 10


@pytest.mark.parametrize("views,symmetric", [(2, True), (3, True), (2, False)])
def test_matches_the_reference_with_duplicates_masked(views, symmetric):
    rng = np.random.default_rng(3)
    emb = _unit(rng.normal(size=(10, views, 8))).astype(np.float32)
    ids = np.arange(10 * views).reshape(10, views)
    ids[3] = ids[7] = 100          # anchor and positive 3 and 7 are one text: not each other's negatives
    ids[5, 0] = -1                 # unknown id: nothing masked for it
    expected = reference_info_nce(emb, ids, 0.1, symmetric).mean()
    got = float(InfoNCELoss(0.1, symmetric=symmetric)(ids, emb))
    assert got == pytest.approx(expected, rel=1e-5)
    unmasked = reference_info_nce(emb, -np.ones_like(ids), 0.1, symmetric).mean()
    assert abs(got - unmasked) > 1e-3   # the masking changed the value


def test_cross_replica_negatives_equal_one_device(logical_cpus):
    """Two replicas with 4 rows each score every anchor against all 8 positives: the summed shares
    and the summed gradients equal the single-device loss and gradients over the global batch."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(8, 3, 6)).astype(np.float32)
    ids = np.arange(24).reshape(8, 3).astype(np.int32)
    ids[1] = ids[6] = 99          # a duplicate across the two replicas
    kernel = rng.normal(size=(6, 5)).astype(np.float32)
    loss_fn = InfoNCELoss(0.2)

    def loss_and_grad(variable, x, y):
        with tf.GradientTape() as tape:
            emb = tf.matmul(x, variable)
            emb = emb / tf.norm(emb, axis=-1, keepdims=True)
            loss = loss_fn(y, emb)
        return loss, tape.gradient(loss, variable)

    single_var = tf.Variable(kernel)
    single_loss, single_grad = loss_and_grad(single_var, tf.constant(inputs), tf.constant(ids))
    emb = _unit(inputs @ kernel)
    assert float(single_loss) == pytest.approx(reference_info_nce(emb, ids, 0.2).mean(), rel=1e-5)

    strategy = create_strategy("mirrored", devices=logical_cpus)
    with strategy.scope():
        mirrored_var = tf.Variable(kernel)
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((inputs, ids)).batch(8))

    @tf.function
    def step(batch):
        return strategy.run(lambda x, y: loss_and_grad(mirrored_var, x, y), args=batch)

    shares, grads = step(next(iter(data)))
    shares = strategy.experimental_local_results(shares)
    assert len(shares) == 2
    assert sum(float(s) for s in shares) == pytest.approx(float(single_loss), rel=1e-5)
    summed = sum(g.numpy() for g in strategy.experimental_local_results(grads))
    assert np.abs(single_grad.numpy()).max() > 1e-3
    np.testing.assert_allclose(summed, single_grad.numpy(), rtol=1e-4, atol=1e-6)
    # Without the gathered negatives (each replica on its own 4 rows) the loss is another number.
    local = sum(float(loss_fn(ids[r * 4:(r + 1) * 4], emb[r * 4:(r + 1) * 4])) for r in range(2)) / 2
    assert abs(local - float(single_loss)) > 1e-2


def test_serializable():
    loss = InfoNCELoss(0.07, symmetric=False)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (again.temperature, again.symmetric) == (0.07, False)


def test_extra_id_columns_mask_those_keys_for_their_anchor():
    rng = np.random.default_rng(5)
    emb = _unit(rng.normal(size=(6, 2, 8))).astype(np.float32)
    ids = np.stack([np.arange(6), np.arange(6)], axis=1)
    # Anchor 0 excludes keys 2 and 4 (say, items already in a user's history); -1 pads.
    excluded = -np.ones((6, 2), np.int64)
    excluded[0] = [2, 4]
    got = InfoNCELoss(0.1, symmetric=False).call(np.concatenate([ids, excluded], axis=1), emb).numpy()
    logits = emb[:, 0] @ emb[:, 1].T / 0.1
    keep = [0, 1, 3, 5]
    expected0 = -(logits[0, 0] - np.log(np.exp(logits[0, keep]).sum()))
    assert got[0] == pytest.approx(expected0, rel=1e-5)
    plain = InfoNCELoss(0.1, symmetric=False).call(ids, emb).numpy()
    np.testing.assert_allclose(got[1:], plain[1:], rtol=1e-6)
    assert abs(got[0] - plain[0]) > 1e-4
