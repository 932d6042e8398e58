"""Prediction heads that sit on top of an encoder's outputs."""
from rw_tf.heads.masked_lm import MaskedLMHead
from rw_tf.heads.segment_pair import SegmentPairHead
from rw_tf.heads.span import SpanHead

__all__ = ["MaskedLMHead", "SegmentPairHead", "SpanHead"]
