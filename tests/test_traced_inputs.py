"""Dataset input functions are traced once per tokenizer and settings, and give the examples the
untraced functions give (a task builds its datasets several times: tracing each took seconds)."""
import numpy as np
import tensorflow as tf

from rw_tf.config import PretrainingDataConfig
from rw_tf.data.masking import PretrainingExampleBuilder
from rw_tf.data.pretraining_dataset import pretraining_features, traced_example_builder
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.data.text_inputs import bucketed_text_batches, single_segment_encoder, single_segment_inputs
from rw_tf.data.traced import MAX_TRACED_FUNCTIONS, traced_once

TEXTS = ["Hello, WORLD! Café cats", "Déjà vu — naïve façade", "北京是中国的首都。", "", "   ",
         "a \x00 b\u200bc\td\ne", "10\u00a0km " * 40]


def _numpy(features):
    return {k: v.numpy() for k, v in features.items()}


def test_pretraining_datasets_share_one_traced_builder_with_the_same_examples(tokenizer, pydoc_documents):
    columns = segment_pair_candidates(pydoc_documents[:20], target_words=12, seed=3)
    config = PretrainingDataConfig(max_sequence_length=48, max_predictions_per_seq=8)
    traced = traced_example_builder(tokenizer, config)
    before = traced.experimental_get_tracing_count()
    batches = [next(iter(pretraining_features(columns, tokenizer, config, 16, shuffle=False))) for _ in range(3)]
    batches.append(next(iter(pretraining_features(columns, tokenizer, config, 5, shuffle=False, repeat=False,
                                                  drop_remainder=False))))
    assert traced_example_builder(tokenizer, config) is traced
    assert traced.experimental_get_tracing_count() - before <= 1       # four datasets, one trace at most
    # The reference: the builder called eagerly on the same rows, no tf.function.
    expected = _numpy(PretrainingExampleBuilder(tokenizer, config)(
        {k: tf.constant(columns[k][:16]) for k in ("text_a", "text_b", "text_random")}))
    for batch in batches[:3]:
        assert set(batch) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(batch[key].numpy(), value, err_msg=key)
    for key, value in expected.items():
        np.testing.assert_array_equal(batches[3][key].numpy(), value[:5], err_msg=key)
    assert batches[0]["token_ids"].shape == (16, 48)                      # the static batch is kept
    # Other settings are another function, with their own examples.
    other = PretrainingDataConfig(max_sequence_length=32, max_predictions_per_seq=8)
    assert traced_example_builder(tokenizer, other) is not traced
    assert next(iter(pretraining_features(columns, tokenizer, other, 4)))["token_ids"].shape == (4, 32)


def test_text_datasets_share_one_traced_encoder_with_the_same_inputs(tokenizer):
    encode = single_segment_encoder(tokenizer, 24)
    before = encode.experimental_get_tracing_count()
    for batch_size in (2, 3):
        ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(batch_size).map(encode)
        got = {k: np.concatenate([b[k].numpy() for b in ds]) for k in ("token_ids", "segment_ids", "padding_mask")}
        expected = _numpy(single_segment_inputs(tokenizer, tf.constant(TEXTS), 24))
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert single_segment_encoder(tokenizer, 24) is encode and single_segment_encoder(tokenizer, 16) is not encode
    assert encode.experimental_get_tracing_count() - before <= 1
    # Length-bucketed training batches use the same function.
    features, labels = next(iter(bucketed_text_batches(TEXTS, [np.arange(len(TEXTS))], tokenizer, 24, 4, seed=0)))
    expected = _numpy(single_segment_inputs(tokenizer, tf.constant([TEXTS[i] for i in labels.numpy()]), 24))
    for key, value in features.items():
        np.testing.assert_array_equal(value.numpy(), expected[key][:, :value.shape[1]], err_msg=key)
    assert encode.experimental_get_tracing_count() - before <= 1


def test_the_cache_compares_objects_by_identity_settings_by_value_and_is_bounded():
    made = []

    def make():
        made.append(len(made))
        return made[-1]

    class Unhashable:
        __hash__ = None

    tokenizer, linker = Unhashable(), Unhashable()
    assert traced_once((tokenizer, linker), ("a", 1), make) == traced_once((tokenizer, linker), ("a", 1), make) == 0
    assert traced_once((tokenizer, None), ("a", 1), make) == 1            # another linker: another function
    assert traced_once((Unhashable(), linker), ("a", 1), make) == 2       # another tokenizer
    assert traced_once((tokenizer, linker), ("a", 2), make) == 3          # other settings
    others = [Unhashable() for _ in range(MAX_TRACED_FUNCTIONS)]
    for other in others:                                                   # the first entries are dropped...
        traced_once((other, None), "x", make)
    assert traced_once((tokenizer, linker), ("a", 1), make) == len(made) - 1 > 3   # ...and made again
    assert traced_once((others[-1], None), "x", make) == len(made) - 2              # the recent ones stay
