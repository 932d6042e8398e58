import numpy as np
import pytest

from rw_tf.losses import masked_lm_loss, pretraining_losses


def test_masked_lm_loss_averages_over_masked_positions_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype("float32")
    labels = np.array([[1, 2, 0], [3, 0, 0]])
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    expected = -(picked * weights).sum() / weights.sum()
    got = float(masked_lm_loss()(labels, logits, sample_weight=weights))
    assert got == pytest.approx(expected, rel=1e-5)


def test_pretraining_loss_weights():
    losses, weights = pretraining_losses(0.3, 0.7)
    assert weights == {"mlm": 1.0, "nsp": 0.3, "sop": 0.7}
    with pytest.raises(ValueError):
        pretraining_losses(-1.0, 1.0)


def test_top_logit_accuracy_equals_keras_sparse_categorical_accuracy_with_weights():
    import keras
    import numpy as np

    from rw_tf.metrics import SparseTopLogitAccuracy

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 5, 50)).astype("float32")
    labels = rng.integers(0, 50, size=(6, 5))
    labels[0] = logits[0].argmax(-1)                      # some rows right, the rest mostly wrong
    weights = (rng.random((6, 5)) > 0.3).astype("float32")
    ours, keras_metric = SparseTopLogitAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    ours.update_state(labels, logits, sample_weight=weights)
    keras_metric.update_state(labels, logits, sample_weight=weights)
    expected = float(((logits.argmax(-1) == labels) * weights).sum() / weights.sum())
    assert float(ours.result()) == pytest.approx(expected, abs=1e-6)
    assert float(keras_metric.result()) == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0
    restored = SparseTopLogitAccuracy.from_config(ours.get_config())
    assert restored.name == "accuracy"
