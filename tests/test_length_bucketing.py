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
