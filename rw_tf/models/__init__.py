"""Task models: an encoder network plus heads, with their default losses and metrics."""
from rw_tf.models.classifier import TextClassifier
from rw_tf.models.dual_encoder import DualEncoder
from rw_tf.models.image_text import ImageTextMatcher, ImageTextModel
from rw_tf.models.pretraining import PretrainingModel, add_distillation_targets, warm_start
from rw_tf.models.question_answering import SpanQuestionAnswerer
from rw_tf.models.recommender import TwoTowerRecommender
from rw_tf.models.sentence_encoder import SentenceEncoder

__all__ = [
    "DualEncoder", "ImageTextMatcher", "ImageTextModel", "PretrainingModel", "SentenceEncoder", "SpanQuestionAnswerer",
    "TextClassifier", "TwoTowerRecommender", "add_distillation_targets", "warm_start",
]
