"""The task abstraction: one objective's data, model, losses and metrics, evaluation and export.

The runner (``rw_tf.training.runner.run_task``) trains every task the same way:

    prepare(output_dir, trainer) -> build_model()  [inside the strategy scope] -> evaluate(model)
      -> model.fit(train_dataset(batch_size), validation_dataset(batch_size)) -> evaluate(model)
      -> finish(model) -> export(model, export_dir)

A task model's ``compile()`` supplies its default losses and metrics, so the runner only passes
the optimizer. Subclasses set ``name``, ``config_class`` (a dataclass of the task's own options)
and ``trainer_defaults`` (the ``TrainerConfig`` values that suit the task, e.g. a fine-tuning
learning rate), and implement the abstract methods.

Example:
    >>> task = TASKS["qa"](QATaskConfig(max_eval_examples=50))              # doctest: +SKIP
    >>> run_task(task, task.trainer_config(steps_per_epoch=100), "/tmp/qa")  # doctest: +SKIP
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Dict, Optional

import keras
import tensorflow as tf

from rw_tf.training.runner import TrainerConfig


class Task(abc.ABC):
    """Base class of every task (see the module docstring)."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    trainer_defaults: ClassVar[Dict[str, Any]] = {}

    def __init__(self, config: Any, examples: Any = None) -> None:
        """``examples``: a ``TransformedExamples`` inside a TFX Trainer (the task reads its splits
        from it instead of raw files), else None."""
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config, self.examples = config, examples

    @classmethod
    def trainer_config(cls, **overrides: Any) -> TrainerConfig:
        """``TrainerConfig`` with this task's defaults, then ``overrides``."""
        return TrainerConfig(**{**cls.trainer_defaults, **overrides})

    @abc.abstractmethod
    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        """Reads the data and builds what the model and datasets need (tokenizer, splits, ...),
        seeded with ``trainer.seed``.
        Returns data statistics (sizes, rejected rows by reason) for ``metrics.json``."""

    @abc.abstractmethod
    def build_model(self) -> keras.Model:
        """The task model, built (so a backup can be restored into it). Called in the strategy scope."""

    @abc.abstractmethod
    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Endless, deterministic batches of ``(x, y[, sample_weight])`` in the same order every run."""

    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """Training examples (or windows, pairs) read from raw data: one epoch is a pass over them by
        default."""

    def steps_per_epoch(self, batch_size: int) -> int:
        if self.examples is not None:   # a TFX Trainer's examples are read as a stream: no count
            raise ValueError("set steps_per_epoch when training on transformed examples")
        return max(1, math.ceil(self.num_train_examples() / batch_size))

    @property
    def transform_output(self):
        """The Transform graph of the examples (a TFX Trainer's), or None: the export embeds it."""
        return self.examples.tft_output if self.examples is not None else None

    def validation_dataset(self, batch_size: int) -> Optional[tf.data.Dataset]:
        """Batches scored by ``fit`` after each epoch (None: no per-epoch validation)."""
        return None

    @abc.abstractmethod
    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        """The task's held-out metrics (called before and after training)."""

    def finish(self, model: keras.Model) -> Dict[str, Any]:
        """Post-training work that the export depends on (e.g. calibration); returns its report."""
        return {}

    @abc.abstractmethod
    def export(self, model: keras.Model, export_dir: str) -> str:
        """Writes the SavedModel (with raw-text signatures) to ``export_dir``; returns it."""

    def describe(self) -> Dict[str, Any]:
        return {"task": self.name, "task_config": self.config.to_dict()}


def check_sequence_length(max_sequence_length: int, encoder) -> None:
    """A clear error when inputs would be longer than the encoder's position embeddings."""
    if max_sequence_length > encoder.config.max_sequence_length:
        raise ValueError(f"max_sequence_length {max_sequence_length} exceeds the encoder's "
                         f"{encoder.config.max_sequence_length}")
