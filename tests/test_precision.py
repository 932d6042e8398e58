"""Mixed precision as a trainer option: the same training within a stated tolerance of float32,
float32 outputs, and a model that saves, reloads and exports."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.training import TrainerConfig, run_task


def _pretrain(out, precision, jit_compile=False):
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=30, vocab_size=1500,
                                                 max_sequence_length=64, target_words=12, eval_batches=2))
    trainer = task.trainer_config(epochs=2, steps_per_epoch=10, batch_size=16, learning_rate=2e-3,
                                  precision=precision, jit_compile=jit_compile)
    return run_task(task, trainer, str(out), verbose=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {p: _pretrain(tmp_path_factory.mktemp(p), p) for p in ("float32", "mixed_bfloat16")}


def test_mixed_bfloat16_trains_like_float32(runs):
    full, mixed = runs["float32"], runs["mixed_bfloat16"]
    print({p: r["history"]["loss"] for p, r in runs.items()})
    # 20 steps: bfloat16 keeps 8 bits of mantissa, so the losses agree to about 1%, not to float32's 1e-6.
    np.testing.assert_allclose(mixed["history"]["loss"], full["history"]["loss"], rtol=0.02)
    drop = lambda r: r["before"]["loss"] - r["history"]["loss"][-1]
    assert drop(mixed) > 0.8 * drop(full) > 0                              # it learns as float32 does
    assert keras.mixed_precision.global_policy().name == "float32"         # the process is left as found


def test_bfloat16_with_xla_on_cpu_is_refused_up_front(tmp_path):
    # TensorFlow 2.16's XLA for CPUs has no bfloat16 matmul for a Dense after a Dense (the first step
    # failed with "unsupported operand type BF16 in op dot"): a user error before any data is made.
    from rw_tf.errors import UserError

    with pytest.raises(UserError, match="no bfloat16 matmul") as caught:
        _pretrain(tmp_path, "mixed_bfloat16", jit_compile=True)
    assert "drop --jit-compile" in caught.value.hint
    assert not list(tmp_path.iterdir())                                  # refused before any work
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mixed_model_saves_reloads_and_exports_float32(runs):
    result = runs["mixed_bfloat16"]
    model = keras.saving.load_model(result["model_path"])
    assert model.encoder.embeddings.token_embedding.dtype_policy.name == "mixed_bfloat16"   # sub-layers too
    assert {v.dtype for v in model.weights} == {"float32"}                 # float32 master weights
    export = tf.saved_model.load(result["export_dir"])
    out = export.signatures["encode_text"](text=tf.constant(["Lists are mutable sequences."]))
    assert all(v.dtype == tf.float32 for v in out.values())
    filled = export.signatures["fill_mask"](text=tf.constant(["The [MASK] statement is used for looping."]))
    assert all(v.dtype in (tf.float32, tf.string, tf.int32, tf.int64) for v in filled.values())


def test_float32_checkpoint_fine_tunes_in_the_trainer_precision(runs):
    from rw_tf.checkpoints import pretrained_encoder

    saved = pretrained_encoder(runs["float32"]["model_path"].rsplit("/", 1)[0])
    assert saved.dtype_policy.name == "float32"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = pretrained_encoder(runs["float32"]["model_path"].rsplit("/", 1)[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.embeddings.token_embedding.dtype_policy.name == "mixed_bfloat16"
    for a, b in zip(saved.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision"):
        TrainerConfig(precision="float8")
