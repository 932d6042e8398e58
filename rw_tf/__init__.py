"""rw_tf: the RefinedWeb knowledge-enhanced language model on Keras 3.

Importing the package registers every serializable class with Keras (so ``keras.saving.load_model``
works after ``import rw_tf`` alone) and exposes the public API:

- layers: ``TransformerEmbeddings``, ``TransformerEncoderBlock``, ``GatedKnowledgeFusion``,
  ``CrossAttentionBlock``, ...
- networks (backbones): ``TransformerEncoder``, ``KnowledgeEnhancedEncoder``, ``ViTImageEncoder``,
  ``ConvImageEncoder``
- heads: ``MaskedLMHead``, ``SegmentPairHead``, ``SpanHead``
- task models: ``PretrainingModel``, ``TextClassifier``, ``SpanQuestionAnswerer``, ``DualEncoder``,
  ``SentenceEncoder``, ``TwoTowerRecommender``, ``ImageTextModel``, ``ImageTextMatcher``
- losses and metrics: ``MaskedLMLoss``, ``BinaryLogitLoss``, ``KnowledgeDistillationLoss``, ``InfoNCELoss``
  (negatives across replicas), ``SparseTopLogitAccuracy``
- knowledge: ``TransE``, ``EntityLinker``
- tasks and their runner: ``TASKS``, ``PretrainingTask``, ... ``TrainerConfig``, ``run_task``
- tokenization and export: ``WordPieceTokenizer``, ``save_export`` and the per-task export modules

Example:
    >>> import rw_tf
    >>> encoder = rw_tf.TransformerEncoder.from_preset("tiny", vocab_size=100)
    >>> encoder.config.hidden_size
    64
"""
import os as _os
import warnings as _warnings

# TensorFlow's C++ start-up lines (CUDA probing on CPU machines, oneDNN notices) are noise for
# most users; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Google's client libraries (imported by TensorFlow and Beam) warn on import that Python 3.10 and
# this grpcio are no longer supported: rw-tf pins both (TFX 1.16 needs Python < 3.11), so a user
# cannot act on it. Only these modules' FutureWarnings are silenced; `python -W` overrides.
_warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.(api_core|auth)(\.|$)")

from rw_tf._startup import import_keras, import_tensorflow_quietly

import_tensorflow_quietly()
import_keras()

from rw_tf.checkpoints import load_hf_bert, minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import EncoderConfig, PretrainingDataConfig
from rw_tf.errors import UserError
from rw_tf.export import (
    ClassifierExport,
    ImageTextExport,
    PretrainingExport,
    QuestionAnsweringExport,
    RecommenderExport,
    RetrievalExport,
    SentenceEmbeddingExport,
    save_export,
)
from rw_tf.heads import MaskedLMHead, SegmentPairHead, SpanHead
from rw_tf.knowledge import TransE
from rw_tf.knowledge.entity_linking import EntityLinker
from rw_tf.layers import (
    AdditiveKnowledgeFusion,
    CrossAttentionBlock,
    GatedKnowledgeFusion,
    TransformerEmbeddings,
    TransformerEncoderBlock,
)
from rw_tf.losses import BinaryLogitLoss, InfoNCELoss, KnowledgeDistillationLoss, MaskedLMLoss
from rw_tf.metrics import SparseTopLogitAccuracy
from rw_tf.models import (
    DualEncoder,
    ImageTextMatcher,
    ImageTextModel,
    PretrainingModel,
    SentenceEncoder,
    SpanQuestionAnswerer,
    TextClassifier,
    TwoTowerRecommender,
)
from rw_tf.networks import ConvImageEncoder, KnowledgeEnhancedEncoder, TransformerEncoder, ViTImageEncoder
from rw_tf.tasks import (
    TASKS,
    ClassificationTask,
    ClassificationTaskConfig,
    ImageTextTask,
    ImageTextTaskConfig,
    PretrainingTask,
    PretrainingTaskConfig,
    QATaskConfig,
    QuestionAnsweringTask,
    RecommendationTask,
    RecommendationTaskConfig,
    RetrievalTask,
    RetrievalTaskConfig,
    SentenceEmbeddingTask,
    SentenceEmbeddingTaskConfig,
    Task,
)
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary
from rw_tf.training import TrainerConfig, create_strategy, run_task

__version__ = "0.2.0"

__all__ = [
    "TASKS", "AdditiveKnowledgeFusion", "BinaryLogitLoss", "ClassificationTask", "ClassificationTaskConfig",
    "ClassifierExport", "ConvImageEncoder", "CrossAttentionBlock", "DualEncoder", "EncoderConfig", "EntityLinker",
    "GatedKnowledgeFusion", "ImageTextExport", "ImageTextMatcher", "ImageTextModel", "ImageTextTask",
    "ImageTextTaskConfig", "InfoNCELoss", "KnowledgeDistillationLoss", "KnowledgeEnhancedEncoder", "MaskedLMHead",
    "MaskedLMLoss", "PretrainingDataConfig", "PretrainingExport", "PretrainingModel", "PretrainingTask",
    "PretrainingTaskConfig", "QATaskConfig", "QuestionAnsweringExport", "QuestionAnsweringTask", "RecommendationTask",
    "RecommendationTaskConfig", "RecommenderExport", "RetrievalExport", "RetrievalTask", "RetrievalTaskConfig",
    "SegmentPairHead", "SentenceEmbeddingExport", "SentenceEmbeddingTask", "SentenceEmbeddingTaskConfig",
    "SentenceEncoder", "SpanHead", "SpanQuestionAnswerer", "SparseTopLogitAccuracy", "Task", "TextClassifier",
    "TrainerConfig", "TransE", "TransformerEmbeddings", "TransformerEncoder", "TransformerEncoderBlock",
    "TwoTowerRecommender", "UserError", "ViTImageEncoder", "WordPieceTokenizer", "create_strategy",
    "learn_vocabulary", "load_hf_bert", "minilm_checkpoint_dir", "pretrained_encoder", "pretrained_tokenizer",
    "run_task", "save_export", "write_vocabulary",
]
