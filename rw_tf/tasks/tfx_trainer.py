"""Tasks inside a TFX Trainer: the typed ``custom_config`` contract and ``run_fn``.

The pipeline serializes a ``TrainerContract`` (task name, the task's config dataclass, the
``TrainerConfig``) into the Trainer's ``custom_config``; ``run_fn`` parses it back (unknown keys
are an error) and trains with the same runner as the command line, on the pipeline's transformed
examples (``TransformedExamples``). TFX's ``train_steps``/``eval_steps`` set the steps, the base
model (an Importer of a pushed model) sets ``init_from``, ``model_run_dir`` holds logs and the
backup (so a preempted Trainer resumes) and the export goes to ``serving_model_dir``.

Example (a pipeline's Trainer):
    >>> tfx.components.Trainer(run_fn="rw_tf.tasks.tfx_trainer.run_fn",                  # doctest: +SKIP
    ...     custom_config=TrainerContract("pretraining", task_config, trainer).to_custom_config(), ...)
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict

import tensorflow as tf

from rw_tf.config import check_choice
from rw_tf.tasks.classification import ClassificationTask
from rw_tf.tasks.image_text import ImageTextTask
from rw_tf.tasks.pretraining import PretrainingTask
from rw_tf.tasks.question_answering import QuestionAnsweringTask
from rw_tf.tasks.recommendation import RecommendationTask
from rw_tf.tasks.sentence_embedding import SentenceEmbeddingTask
from rw_tf.training.runner import TrainerConfig, run_task

# Tasks that can train on a Transform's output (their constructor takes ``examples``).
TFX_TASKS = {task.name: task for task in (PretrainingTask, ClassificationTask, SentenceEmbeddingTask,
                                          RecommendationTask, ImageTextTask, QuestionAnsweringTask)}


@dataclasses.dataclass
class TrainerContract:
    """What a pipeline kind passes to its Trainer, typed (see the module docstring)."""

    task: str
    task_config: Any
    trainer: TrainerConfig

    def __post_init__(self) -> None:
        check_choice("TFX task", self.task, TFX_TASKS)
        if not isinstance(self.task_config, TFX_TASKS[self.task].config_class):
            raise TypeError(f"task {self.task!r} needs a {TFX_TASKS[self.task].config_class.__name__}")

    def to_custom_config(self) -> Dict[str, Any]:
        return {"task": self.task, "task_config": self.task_config.to_dict(), "trainer": self.trainer.to_dict()}

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerContract":
        missing = {"task", "task_config", "trainer"} - set(custom_config or {})
        if missing:
            raise ValueError(f"the Trainer's custom_config lacks {sorted(missing)}; build it with "
                             f"TrainerContract(...).to_custom_config()")
        check_choice("TFX task", custom_config["task"], TFX_TASKS)
        task = TFX_TASKS[custom_config["task"]]
        source = "the Trainer's custom_config"
        return cls(custom_config["task"], task.config_class.from_dict(custom_config["task_config"], source),
                   TrainerConfig.from_dict(custom_config["trainer"], source))


class TransformedExamples:
    """A Trainer's examples as transformed by the pipeline's Transform, and the transform graph."""

    def __init__(self, fn_args) -> None:
        # Imported here: tensorflow_transform switches tf.keras to the legacy tf_keras on import,
        # which must not happen in processes that never run a pipeline.
        import tensorflow_transform as tft

        self.fn_args = fn_args
        self.tft_output = tft.TFTransformOutput(fn_args.transform_output)

    @property
    def vocab_file(self) -> str:
        """The WordPiece vocabulary stored as an asset of the transform graph."""
        path = os.path.join(self.tft_output.transform_savedmodel_dir, "assets", "vocab.txt")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"the transform graph has no vocab.txt asset ({path})")
        return path

    @property
    def max_sequence_length(self) -> int:
        spec = self.tft_output.transformed_feature_spec()
        key = "token_ids" if "token_ids" in spec else next(k for k in sorted(spec) if k.endswith("_token_ids"))
        return int(spec[key].shape[0])

    def dataset(self, split: str, batch_size: int) -> tf.data.Dataset:
        """Endless batches of transformed feature dicts; training batches are shuffled (seeded)."""
        from tfx_bsl.public import tfxio  # the Trainer's own dependency, like tensorflow_transform

        files = self.fn_args.train_files if split == "train" else self.fn_args.eval_files
        options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=split == "train", num_epochs=None,
                                                 shuffle_seed=0 if split == "train" else None)
        return self.fn_args.data_accessor.tf_dataset_factory(files, options,
                                                             self.tft_output.transformed_metadata.schema)


def run_fn(fn_args) -> Dict[str, Any]:
    """The TFX Trainer entry point of every rw-tf pipeline kind."""
    contract = TrainerContract.from_custom_config(fn_args.custom_config)
    task_config = contract.task_config
    if fn_args.base_model and hasattr(task_config, "init_from"):
        task_config = dataclasses.replace(task_config, init_from=fn_args.base_model)
    trainer = dataclasses.replace(contract.trainer,
                                  steps_per_epoch=max(1, fn_args.train_steps // contract.trainer.epochs),
                                  validation_steps=max(1, fn_args.eval_steps))
    task = TFX_TASKS[contract.task](task_config, examples=TransformedExamples(fn_args))
    return run_task(task, trainer, fn_args.model_run_dir, export_dir=fn_args.serving_model_dir, verbose=2)
