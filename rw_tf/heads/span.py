"""Extractive-QA span head: a start and an end logit for every token of the sequence."""
from __future__ import annotations

from typing import Any, Tuple

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.shape_checks import check_shapes

# Added to padding positions so they never win a softmax or an argmax (fits float16 too).
PADDING_LOGIT = -1e4


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class SpanHead(ConfigFields, keras.layers.Layer):
    """``[start_logits, end_logits] = W h_i + b`` for each token ``i``; padding gets ``PADDING_LOGIT``.

    Args:
        initializer_range: standard deviation of the truncated-normal kernel initializer.
    Shapes:
        ``head(sequence_output [batch, seq, hidden], padding_mask [batch, seq])`` -> start and end
        logits, [batch, seq] each.

    Example:
        >>> head = SpanHead()
        >>> start, end = head(keras.ops.ones((2, 6, 8)), keras.ops.ones((2, 6)))
        >>> tuple(start.shape), tuple(end.shape)
        ((2, 6), (2, 6))
        >>> start, _ = head(keras.ops.ones((1, 3, 8)), keras.ops.array([[1, 1, 0]]))
        >>> float(start[0, 2]) < -9000.0         # padding never wins
        True
    """

    config_fields = ("initializer_range",)

    def __init__(self, initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.set_config_fields(locals())
            self.dense = keras.layers.Dense(
                2, name="span_logits", kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))

    def build(self, sequence_output_shape: Any, padding_mask_shape: Any = None) -> None:
        self.dense.build(sequence_output_shape)
        self.built = True

    def call(self, sequence_output: Any, padding_mask: Any) -> Tuple[Any, Any]:
        check_shapes(type(self).__name__, sequence_output=(sequence_output, ("batch", "sequence", "hidden")),
                     padding_mask=(padding_mask, ("batch", "sequence")))
        logits = self.dense(sequence_output)
        padding = (1.0 - ops.cast(padding_mask, logits.dtype)) * PADDING_LOGIT
        return logits[..., 0] + padding, logits[..., 1] + padding

    def compute_output_shape(self, sequence_output_shape: Any, padding_mask_shape: Any = None) -> tuple:
        return tuple(sequence_output_shape[:-1]), tuple(sequence_output_shape[:-1])
