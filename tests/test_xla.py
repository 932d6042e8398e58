"""TPU readiness: every task's train step compiles with XLA (jit_compile=True, on the CPU here),
sees static shapes, and computes what the uncompiled step computes."""
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.tasks import TASKS, PretrainingTask, PretrainingTaskConfig
from rw_tf.training import run_task


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A tiny rw-tf encoder export, the start point of the fine-tuning tasks (fast on a CPU)."""
    out = tmp_path_factory.mktemp("tiny_encoder")
    task = PretrainingTask(PretrainingTaskConfig(**TINY_PRETRAINING))
    run_task(task, task.trainer_config(epochs=1, steps_per_epoch=2, batch_size=8), str(out), verbose=0)
    return str(out)


TINY_PRETRAINING = dict(preset="tiny", max_documents=30, vocab_size=1500, max_sequence_length=64, target_words=12,
                        eval_batches=1)


def tasks(init_from):
    """A fresh task of each kind, on small data."""
    configs = {
        "pretraining": TINY_PRETRAINING,
        "classification": dict(init_from=init_from, max_sequence_length=32, max_examples_per_class=40),
        "qa": dict(init_from=init_from, max_sequence_length=64, doc_stride=24, max_question_length=16,
                   max_train_examples=40, max_eval_examples=4),
        "retrieval": dict(init_from=init_from, max_pairs=200, max_sequence_length=32),
        "sentence_embedding": dict(init_from=init_from, mode="supervised", max_texts=100, max_eval_pairs=20,
                                   max_sequence_length=32, eval_sequence_length=64),
        "recommendation": dict(init_from=init_from, item_text_length=16),
        "image_text": dict(init_from=init_from, objective="matching", fusion="cross_attention", max_pairs=200,
                           fusion_dropout=0.0),   # dropout draws differ between XLA and TF kernels
    }
    return {name: TASKS[name](TASKS[name].config_class(**config)) for name, config in configs.items()}


# Two tasks in the default suite; the rest (2-5 minutes each on 2 cores) with the slow tests.
@pytest.mark.parametrize("name", ["pretraining", "classification"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("qa", "retrieval", "sentence_embedding", "recommendation", "image_text")])
def test_train_step_compiles_with_xla_and_matches(name, tiny_encoder, tmp_path):
    histories = {}
    for jit in (False, True):
        task = tasks(tiny_encoder)[name]
        trainer = task.trainer_config(epochs=1, steps_per_epoch=3, batch_size=8, jit_compile=jit,
                                      keep_epoch_checkpoints=False)
        result = run_task(task, trainer, str(tmp_path / f"jit{jit}"), verbose=0)
        spec = task.train_dataset(8).element_spec
        shapes = [s.shape for s in tf.nest.flatten(spec)]
        assert all(shape.is_fully_defined() for shape in shapes), shapes   # static shapes in the step
        histories[jit] = result["history"]["loss"]
    print(name, "loss without / with XLA:", histories[False], histories[True])
    np.testing.assert_allclose(histories[True], histories[False], rtol=2e-3)
