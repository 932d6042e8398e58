"""SavedModel export: one base (``ExportModule``, ``save_export``) and one small module per task."""
from rw_tf.export.base import ASSETS_EXTRA, ExportModule, find_keras_file, save_export, set_signature_method
from rw_tf.export.classification import ClassifierExport, classifier_outputs
from rw_tf.export.image_text import ImageTextExport
from rw_tf.export.pretraining import PretrainingExport
from rw_tf.export.question_answering import QuestionAnsweringExport
from rw_tf.export.recommendation import RecommenderExport
from rw_tf.export.retrieval import RetrievalExport
from rw_tf.export.sentence_embedding import SentenceEmbeddingExport

__all__ = [
    "ASSETS_EXTRA", "ClassifierExport", "ExportModule", "ImageTextExport", "PretrainingExport",
    "QuestionAnsweringExport", "RecommenderExport", "RetrievalExport", "SentenceEmbeddingExport",
    "classifier_outputs", "find_keras_file", "save_export", "set_signature_method",
]
