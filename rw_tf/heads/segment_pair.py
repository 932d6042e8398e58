"""Binary head over the two segments of a pair: P(y | S1, S2) = sigmoid(W^T [h_S1; h_S2] + b).

h_S is the mean of the encoder's hidden states over the tokens of segment S (padding excluded).
The same head serves next-sentence prediction (NSP) and sentence-order prediction (SOP); each
model instance owns separate weights.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes


def segment_means(sequence_output: Any, segment_ids: Any, padding_mask: Any) -> Any:
    """Mean hidden states over the tokens of segments 0 and 1 -> [batch, 2 * hidden] (a segment's half
    is zeros if it is empty): one batched matmul of the segments' token weights [batch, 2, length] with
    the hidden states, not a multiply-and-sum pass over [batch, length, hidden] per segment."""
    real = ops.not_equal(padding_mask, 0)
    weights = ops.cast(ops.stack([ops.logical_and(ops.equal(segment_ids, s), real) for s in (0, 1)], axis=1),
                       sequence_output.dtype)
    totals = ops.einsum("bsl,blh->bsh", weights, sequence_output)
    means = totals / ops.maximum(ops.sum(weights, axis=2, keepdims=True), 1.0)
    return ops.reshape(means, (-1, 2 * ops.shape(sequence_output)[-1]))


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class SegmentPairHead(ConfigFields, keras.layers.Layer):
    """Returns one logit per example (apply a sigmoid for the probability).

    The logit is W^T [h_S1; h_S2] + b over the segments' mean states (see the module docstring);
    ``logits_from_means`` takes means computed once for several heads.

    Args:
        initializer_range: standard deviation of the truncated-normal kernel initializer.
    Shapes:
        ``head(sequence_output [batch, seq, hidden], segment_ids [batch, seq], padding_mask [batch, seq])``
        -> [batch, 1].

    Example:
        >>> head = SegmentPairHead(name="nsp")
        >>> h = keras.ops.ones((2, 6, 8))
        >>> seg = keras.ops.convert_to_tensor([[0, 0, 0, 1, 1, 1]] * 2)
        >>> tuple(head(h, seg, keras.ops.ones((2, 6))).shape)
        (2, 1)
    """

    config_fields = ("initializer_range",)

    def __init__(self, initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.set_config_fields(locals())
            self.classifier = keras.layers.Dense(
                1, name="classifier", kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))

    def build(self, sequence_output_shape: Any, segment_ids_shape: Any = None,
              padding_mask_shape: Any = None) -> None:
        self.classifier.build((None, 2 * sequence_output_shape[-1]))
        self.built = True

    def call(self, sequence_output: Any, segment_ids: Any, padding_mask: Any) -> Any:
        tokens = ("batch", "sequence")
        check_shapes(type(self).__name__, sequence_output=(sequence_output, tokens + ("hidden",)),
                     segment_ids=(segment_ids, tokens), padding_mask=(padding_mask, tokens))
        return self.logits_from_means(segment_means(sequence_output, segment_ids, padding_mask))

    def logits_from_means(self, means: Any) -> Any:
        """The logit from ``segment_means`` computed once for several heads (NSP and SOP read the
        same means; computing them once saves a third of the heads' work on small encoders)."""
        return self.classifier(means)

    def compute_output_shape(self, sequence_output_shape: Any, segment_ids_shape: Any = None,
                             padding_mask_shape: Any = None) -> tuple:
        return (sequence_output_shape[0], 1)
