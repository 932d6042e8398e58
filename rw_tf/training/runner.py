"""One runner for every task: strategy, seeding, optimizer, backup/resume, TensorBoard, export and
one ``metrics.json`` schema.

``run_task(task, trainer, output_dir)`` creates the distribution strategy first (before anything
touches TensorFlow), seeds every RNG, lets the task read its data, builds and compiles the model
in the strategy scope with ``build_optimizer``, restores the newest backup if one exists, scores
the model before training, trains with ``model.fit`` (backups every ``backup_every_steps`` steps
and per epoch; TensorBoard logs; the weights of the last ``max_epoch_checkpoints`` epochs), scores
it again, lets the task finish (e.g. calibrate) and export, and writes ``metrics.json``:

    {"task", "task_config", "trainer", "data", "before", "after", "details", "history",
     "train_seconds", "resumed_from_step", "model_path", "export_dir", "chief"}

Output folder: ``model.keras`` (reload with ``keras.saving.load_model`` after ``import rw_tf``),
``export/1`` (SavedModel, TF Serving layout), ``metrics.json``, ``logs/``, ``checkpoints/`` and,
while a run is unfinished, ``backup/``: re-running the same command continues from it. In a
multi-worker run only the chief writes them (``"chief": false`` and no paths elsewhere).

Example:
    >>> task = PretrainingTask(PretrainingTaskConfig(preset="tiny"))                # doctest: +SKIP
    >>> run_task(task, task.trainer_config(epochs=1, steps_per_epoch=10), "/tmp/pt")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from rw_tf.atomic_write import atomic_write
from rw_tf.config import DictConfig, check_choice
from rw_tf.data.text_inputs import real_token_rate
from rw_tf.errors import UserError
from rw_tf.path_checks import require_model_folder
from rw_tf.training.backup import EpochCheckpoints, TrainingBackup
from rw_tf.training.optimizer import DECAYS, build_optimizer
from rw_tf.training.strategy import STRATEGIES, create_strategy, is_chief, wait_for_all_workers, worker_output_dir

# What a stopped run may change when it is continued (more workers, other backup or checkpoint
# intervals, XLA, evaluation length): neither the model, the data nor the schedule.
RESUMABLE_SETTINGS = ("strategy", "tpu", "backup_every_steps", "keep_epoch_checkpoints", "max_epoch_checkpoints",
                      "jit_compile", "validation_steps")

# tf.data reserves room for a whole batch before reading it and aborts the process (std::bad_alloc,
# no Python exception) when it cannot: --batch-size 10**12 killed rw-tf with exit 134.
MAX_BATCH_SIZE = 1 << 20

# Keras dtype policies; mixed_float16 gets dynamic loss scaling from compile() (auto_scale_loss).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

if TYPE_CHECKING:
    from rw_tf.tasks.base import Task


@dataclasses.dataclass
class TrainerConfig(DictConfig):
    """How a task is trained; the same for every task (each task has its own defaults, see
    ``Task.trainer_defaults``). Every field is a flag of ``rw-tf pretrain`` and ``rw-tf finetune``."""

    epochs: int = 1
    steps_per_epoch: Optional[int] = None      # None: one pass over the training examples
    validation_steps: Optional[int] = None     # None: the whole validation dataset
    batch_size: int = 32                       # global batch (split across replicas)
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay: str = "cosine"
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    adam_epsilon: float = 1e-6
    strategy: str = "default"
    tpu: Optional[str] = None                  # --strategy tpu: "local" (TPU VM), a name or grpc://HOST:8470
    jit_compile: bool = False
    precision: str = "float32"                 # or mixed_bfloat16 / mixed_float16 (Keras dtype policies)
    seed: int = 12345
    backup_every_steps: int = 0                # 0: back up at the end of each epoch only
    keep_epoch_checkpoints: bool = True
    max_epoch_checkpoints: int = 5             # the newest epoch files kept (EpochCheckpoints)

    may_be_zero = ("warmup_steps", "weight_decay", "clipnorm", "backup_every_steps")   # 0: none / off

    def validate(self) -> None:
        if self.batch_size > MAX_BATCH_SIZE:
            raise ValueError(f"TrainerConfig.batch_size must be at most {MAX_BATCH_SIZE:,}, got {self.batch_size:,}")
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("decay", self.decay, DECAYS)
        if self.strategy != "tpu":
            self.require_defaults(["tpu"], "with strategy='tpu'")
        if not self.keep_epoch_checkpoints:
            self.require_defaults(["max_epoch_checkpoints"], "with keep_epoch_checkpoints")


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Ends training with a ``UserError`` at the first batch whose loss is NaN or infinite. Keras
    trains on (and ``TerminateOnNaN`` then exports) the NaN weights, so a learning rate of 1e308
    gave exit 0, a model that answers NaN and a calibration on NaN. It must come first among the
    callbacks: it raises before a backup or checkpoint of that batch is written, so the newest
    backup holds the last finite step.

    Args:
        start_step: the global step training starts from (a resumed run's), for the message.
    """

    def __init__(self, start_step: int = 0) -> None:
        super().__init__()
        self.step = start_step

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise UserError(f"the training loss became {float(loss)} at step {self.step}",
                            hint="lower --learning-rate, add --warmup-steps or clip with --clipnorm; an "
                                 "unfinished run's backup holds its last finite step")


def _merge(histories: Sequence[keras.callbacks.History]) -> Dict[str, List[float]]:
    merged: Dict[str, List[float]] = {}
    for history in histories:
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged


def _fit(model: keras.Model, task: "Task", trainer: TrainerConfig, steps_per_epoch: int, start_step: int,
         callbacks: List[keras.callbacks.Callback], verbose: Any) -> Dict[str, List[float]]:
    """Trains from ``start_step``; the data skips the batches already trained on, so a resumed run
    sees the same batches as an uninterrupted one. A partial epoch is finished first."""
    epoch, done_in_epoch = divmod(start_step, steps_per_epoch)
    histories, step = [], start_step
    validation = task.validation_dataset(trainer.batch_size)
    while epoch < trainer.epochs:
        partial = done_in_epoch > 0
        steps = steps_per_epoch - done_in_epoch if partial else steps_per_epoch
        last_epoch = epoch + 1 if partial else trainer.epochs
        histories.append(model.fit(
            task.train_dataset(trainer.batch_size).skip(step), initial_epoch=epoch, epochs=last_epoch,
            steps_per_epoch=steps, validation_data=validation, validation_steps=trainer.validation_steps,
            callbacks=callbacks, verbose=verbose))
        step += steps * (last_epoch - epoch)
        epoch, done_in_epoch = last_epoch, 0
    return _merge(histories)


def run_task(task: "Task", trainer: TrainerConfig, output_dir: str, export_dir: Optional[str] = None,
             callbacks: Sequence[keras.callbacks.Callback] = (), verbose: Any = "auto") -> Dict[str, Any]:
    """Trains, evaluates and exports ``task`` (see the module docstring); returns ``metrics.json``'s content."""
    for folder, what in ((output_dir, "the output folder"), (export_dir, "the export folder")):
        if folder:   # before training: the SavedModel and backups written there must load again
            require_model_folder(folder, what)
    strategy = create_strategy(trainer.strategy, tpu_address=trainer.tpu)  # first: collective ops need it
    _check_xla_precision(strategy, trainer)
    # The precision is Keras's global dtype policy while the task's layers are made (every layer
    # takes it); restored afterwards so that the process is left as it was found.
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(trainer.precision)
    try:
        with worker_output_dir(output_dir, strategy) as work_dir:
            return _run(task, trainer, strategy, output_dir, work_dir, export_dir, callbacks, verbose)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _check_xla_precision(strategy: tf.distribute.Strategy, trainer: TrainerConfig) -> None:
    """XLA on CPU (TensorFlow 2.16) compiles no bfloat16 matmul whose gradient needs a transposed
    operand: every Dense after another Dense fails deep inside the first step with "unsupported
    operand type BF16 in op dot". Refused up front; GPUs and TPUs compile it."""
    if not (trainer.jit_compile and "bfloat16" in trainer.precision):
        return
    # Every strategy but TPUStrategy trains on the GPUs when there are any, else on the CPU.
    if not isinstance(strategy, tf.distribute.TPUStrategy) and not tf.config.list_logical_devices("GPU"):
        raise UserError(f"--jit-compile with --precision {trainer.precision} cannot train on CPU: TensorFlow's "
                        "XLA compiler for CPUs has no bfloat16 matmul",
                        hint="drop --jit-compile (bfloat16 without XLA uses the CPU's bfloat16 matmuls) or "
                             "train in float32 with XLA")


def _train_real_token_rate(task: "Task", batch_size: int, batches: int = 8) -> Optional[float]:
    """Share of real (not padding) positions in the first training batches, for tasks whose inputs
    carry a ``padding_mask`` (what length bucketing raises; reported in ``metrics.json``)."""
    first = next(iter(task.train_dataset(batch_size).take(1)))
    if not (isinstance(first, tuple) and isinstance(first[0], dict) and "padding_mask" in first[0]):
        return None
    return real_token_rate(task.train_dataset(batch_size), batches)


def _run(task: "Task", trainer: TrainerConfig, strategy: tf.distribute.Strategy, output_dir: str, work_dir: str,
         export_dir: Optional[str], callbacks: Sequence[keras.callbacks.Callback], verbose: Any) -> Dict[str, Any]:
    chief = is_chief(strategy)
    keras.utils.set_random_seed(trainer.seed)
    tf.io.gfile.makedirs(output_dir)
    data = task.prepare(work_dir, trainer)
    steps_per_epoch = trainer.steps_per_epoch or task.steps_per_epoch(trainer.batch_size)
    with strategy.scope():
        model = task.build_model()
        model.compile(optimizer=build_optimizer(trainer.learning_rate, trainer.epochs * steps_per_epoch,
                                                trainer.warmup_steps, trainer.decay, trainer.weight_decay,
                                                trainer.clipnorm, trainer.adam_epsilon),
                      jit_compile=trainer.jit_compile)
        # Builds the compiled loss and metrics from a batch's shapes (see TaskModelMixin).
        model.build_for_training(next(iter(task.train_dataset(trainer.batch_size))))
    rate = _train_real_token_rate(task, trainer.batch_size)      # datasets may need the model (KD targets)
    if rate is not None:
        data = {**data, "train_real_token_rate": rate}
    backup = TrainingBackup(os.path.join(output_dir, "backup"), trainer.backup_every_steps, chief,
                            settings={**task.describe(), "trainer": trainer.to_dict(exclude=RESUMABLE_SETTINGS)})
    start_step = backup.restore(model)
    before = None if start_step else task.evaluate(model)
    all_callbacks: List[keras.callbacks.Callback] = [StopOnNonFiniteLoss(start_step), backup]
    if chief:
        all_callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
        if trainer.keep_epoch_checkpoints:
            all_callbacks.append(EpochCheckpoints(os.path.join(output_dir, "checkpoints"),
                                                  trainer.max_epoch_checkpoints))
    all_callbacks.extend(callbacks)
    started = time.monotonic()
    history = _fit(model, task, trainer, steps_per_epoch, start_step, all_callbacks, verbose)
    train_seconds = time.monotonic() - started
    after = task.evaluate(model)
    details = task.finish(model)
    model_path = os.path.join(work_dir, "model.keras")
    model.save(model_path)
    export_dir = task.export(model, export_dir if chief and export_dir else os.path.join(work_dir, "export", "1"))
    backup.clear()
    result = {**task.describe(), "trainer": trainer.to_dict(), "data": data, "before": before,
              "after": after, "details": details, "history": history, "train_seconds": train_seconds,
              "resumed_from_step": start_step, "chief": chief,
              # A non-chief's copies are gone when run_task returns.
              "model_path": model_path if chief else None, "export_dir": export_dir if chief else None}
    if chief:
        with atomic_write(os.path.join(output_dir, "metrics.json")) as f:   # the recipe takes it for "done"
            json.dump(result, f, indent=2, default=float)
    wait_for_all_workers(strategy)   # the next step of any worker may read what the chief just wrote
    return result
