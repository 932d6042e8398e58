"""Length-bucketed training batches: each batch padded to the smallest bucket that holds its
longest text, the same token ids as padding to the maximum, every text served, more real tokens."""
import collections

import numpy as np
import tensorflow as tf

from rw_tf.data.text_inputs import bucketed_text_batches, length_buckets, real_token_rate, single_segment_inputs


def test_buckets_hold_each_batch_and_keep_the_token_ids(tokenizer, pydoc_documents):
    texts = [s for doc in pydoc_documents[:40] for s in doc][:300]
    texts += [" ".join(texts[i:i + 12]) for i in range(0, 60, 12)]          # a few long ones (truncated at 64)
    labels = np.arange(len(texts), dtype=np.int32)
    assert length_buckets(64) == [16, 32, 64] and length_buckets(128, smallest=32) == [32, 64, 128]
    ds = bucketed_text_batches(texts, [labels], tokenizer, 64, batch_size=8, seed=3)
    lengths = tokenizer.tokenize(tf.constant(texts)).row_lengths().numpy() + 2
    seen = collections.Counter()
    shapes = set()
    for features, batch_labels in ds.take(3 * len(texts) // 8):
        index = batch_labels.numpy()
        width = features["token_ids"].shape[1]
        shapes.add(width)
        longest = min(64, lengths[index].max())
        assert width == min(b for b in length_buckets(64) if b >= longest)     # the smallest bucket that fits
        reference = single_segment_inputs(tokenizer, tf.constant([texts[i] for i in index]), 64)
        for key, value in features.items():
            np.testing.assert_array_equal(value.numpy(), reference[key].numpy()[:, :width])
            assert not reference[key].numpy()[:, width:].any()                  # only padding was cut
        seen.update(index.tolist())
    assert shapes == {16, 32, 64}
    assert set(seen) == set(range(len(texts)))                                  # every text is served
    assert max(seen.values()) <= 6
    first, again = (next(iter(bucketed_text_batches(texts, [labels], tokenizer, 64, batch_size=8, seed=3)))
                    for _ in range(2))
    np.testing.assert_array_equal(again[1].numpy(), first[1].numpy())            # seeded order
    padded = tf.data.Dataset.from_tensor_slices(texts).batch(8).map(
        lambda t: (single_segment_inputs(tokenizer, t, 64),))
    assert real_token_rate(ds, 40) > real_token_rate(padded, 40) + 0.2


class _PaddedExamples:
    """What the TFX Trainer hands a task (``TransformedExamples``): batches padded to the maximum."""

    def __init__(self, tokenizer, texts, length):
        self.vocab_file, self.max_sequence_length, self.texts, self.length = tokenizer.vocab_file, length, texts, length
        self.tokenizer = tokenizer

    def dataset(self, split, batch_size):
        ds = tf.data.Dataset.from_tensor_slices((self.texts, np.arange(len(self.texts)))).repeat().batch(batch_size)
        return ds.map(lambda t, i: {**single_segment_inputs(self.tokenizer, t, self.length), "label": i})


def test_padded_pipeline_batches_are_regrouped_by_length(tokenizer, pydoc_documents):
    from rw_tf.tasks import ClassificationTask, ClassificationTaskConfig
    from rw_tf.training import TrainerConfig

    texts = [s for doc in pydoc_documents[:40] for s in doc][:200]
    texts += [" ".join(texts[i:i + 12]) for i in range(0, 48, 12)]
    examples = _PaddedExamples(tokenizer, texts, 64)
    task = ClassificationTask(ClassificationTaskConfig(length_bucketing=True), examples=examples)
    task.prepare("/nonexistent", TrainerConfig(batch_size=8))
    task.build_model()                                  # datasets follow the model (distillation targets)
    lengths = tokenizer.tokenize(tf.constant(texts)).row_lengths().numpy() + 2
    seen, shapes = collections.Counter(), set()
    for features, labels in task.train_dataset(8).take(2 * len(texts) // 8):
        index = labels.numpy()
        width = features["token_ids"].shape[1]
        shapes.add(width)
        assert features["token_ids"].shape[0] == 8                                  # full batches only
        assert width == min(b for b in length_buckets(64) if b >= min(64, lengths[index].max()))
        reference = single_segment_inputs(tokenizer, tf.constant([texts[i] for i in index]), 64)
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(features[key].numpy(), reference[key].numpy()[:, :width])
            assert not reference[key].numpy()[:, width:].any()                  # only padding was cut
        seen.update(index.tolist())
    assert shapes == {16, 32, 64} and len(seen) > 0.9 * len(texts)
    plain = ClassificationTask(ClassificationTaskConfig(), examples=examples)
    plain.prepare("/nonexistent", TrainerConfig(batch_size=8))
    plain.build_model()
    assert {f["token_ids"].shape[1] for f, _ in plain.train_dataset(8).take(5)} == {64}   # off by default
    assert real_token_rate(task.train_dataset(8), 40) > real_token_rate(plain.train_dataset(8), 40) + 0.2


def test_pipeline_config_turns_bucketing_on_for_fine_tuning():
    from rw_tf_pipeline.configs import PipelineConfig

    contract = PipelineConfig(finetune_length_bucketing=True).trainer_contract("finetune")
    assert contract.task_config.length_bucketing
    assert not PipelineConfig().trainer_contract("finetune").task_config.length_bucketing


def test_raw_text_exports_pad_to_the_longest_text_and_answer_the_same(tokenizer, tmp_path):
    from rw_tf.config import EncoderConfig
    from rw_tf.data.text_inputs import trim_to_longest
    from rw_tf.export.base import save_export
    from rw_tf.export.pretraining import PretrainingExport
    from rw_tf.models import PretrainingModel
    from rw_tf.networks import TransformerEncoder
    from rw_tf.networks.pooling import masked_mean

    texts = tf.constant(["Lists are mutable.", "Return a new sorted list from the items in iterable, "
                         "using the key function and the reverse flag.", ""])
    full = single_segment_inputs(tokenizer, texts, 64)
    trimmed = trim_to_longest(full)
    longest = int(full["padding_mask"].numpy().sum(axis=1).max())
    assert 2 < longest < 64 and all(v.shape == (3, longest) for v in trimmed.values())
    for key in full:                                                      # only padding is cut
        np.testing.assert_array_equal(trimmed[key].numpy(), full[key].numpy()[:, :longest])
        assert not full[key].numpy()[:, longest:].any()
    assert trim_to_longest({k: v[:0] for k, v in full.items()})["token_ids"].shape == (0, 0)

    sizes = EncoderConfig.preset("tiny", vocab_size=tokenizer.vocab_size)
    model = PretrainingModel(TransformerEncoder.from_encoder_config(sizes))
    model({**full, "masked_positions": tf.zeros((3, 2), tf.int32)})
    save_export(PretrainingExport(model, tokenizer, 64), str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["encode_text"](text=texts)["mean_embedding"]
    padded = masked_mean(model.encoder(full)["sequence_output"], full["padding_mask"])    # padded to 64
    np.testing.assert_allclose(served.numpy(), padded.numpy(), atol=1e-5)
