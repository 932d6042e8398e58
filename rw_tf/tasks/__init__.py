"""Tasks: one per objective (inputs, model, losses and metrics, evaluation, export), all trained
by ``rw_tf.training.runner.run_task``."""
from rw_tf.tasks.base import Task
from rw_tf.tasks.classification import ClassificationTask, ClassificationTaskConfig
from rw_tf.tasks.image_text import ImageTextTask, ImageTextTaskConfig
from rw_tf.tasks.pretraining import PretrainingTask, PretrainingTaskConfig
from rw_tf.tasks.question_answering import QATaskConfig, QuestionAnsweringTask
from rw_tf.tasks.recommendation import RecommendationTask, RecommendationTaskConfig
from rw_tf.tasks.retrieval import RetrievalTask, RetrievalTaskConfig
from rw_tf.tasks.sentence_embedding import SentenceEmbeddingTask, SentenceEmbeddingTaskConfig

TASKS = {task.name: task for task in (PretrainingTask, ClassificationTask, QuestionAnsweringTask, RetrievalTask,
                                         SentenceEmbeddingTask, RecommendationTask, ImageTextTask)}

__all__ = [
    "TASKS", "ClassificationTask", "ClassificationTaskConfig", "ImageTextTask", "ImageTextTaskConfig",
    "PretrainingTask", "PretrainingTaskConfig",
    "QATaskConfig", "QuestionAnsweringTask", "RecommendationTask", "RecommendationTaskConfig", "RetrievalTask",
    "RetrievalTaskConfig", "SentenceEmbeddingTask", "SentenceEmbeddingTaskConfig", "Task",
]
