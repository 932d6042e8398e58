"""Backup and resume of a training run, at step granularity, written atomically.

``TrainingBackup`` saves the model's and the optimizer's state (``model.save_weights`` includes the
optimizer) and the random-number states of dropout and other seeded layers (which ``save_weights``
leaves out, so a resumed run would draw different dropout masks) every ``every_steps`` steps (0:
only at the end of each epoch) and at each epoch's end. Each backup is written to a temporary name
and renamed into place, then ``state.json`` (the global step and the weights file) is replaced the
same way, and only then are older weights deleted: a process killed at any point (SIGKILL included)
leaves a consistent backup behind. ``restore`` loads the newest backup and returns its global step;
the runner then skips that many batches of the (deterministic) training data so the run continues as
if it had never stopped.

``state.json`` also keeps the run's ``settings`` (the task's config and the trainer's, less what
may change between attempts: strategy, backup interval); a backup made with other settings is a
``UserError`` on restore, not a run that continues with a schedule, data or model it did not start
with.

Only the chief writes (all workers of a multi-worker run read the chief's backup on restart, so
the backup folder must be on storage every worker sees, e.g. ``gs://``).

Example:
    >>> backup = TrainingBackup("/tmp/run/backup", every_steps=100)   # doctest: +SKIP
    >>> start_step = backup.restore(model)                            # doctest: +SKIP
    >>> model.fit(ds.skip(start_step), ..., callbacks=[backup])       # doctest: +SKIP
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from rw_tf.config import changed_settings, checks_number_arguments
from rw_tf.errors import FULL_DISK_HINT, CorruptFileError, UserError
from rw_tf.model_files import CONTENT_ERRORS, content_error, read_bytes, read_json_object

STATE_FILE = "state.json"


@checks_number_arguments(may_be_zero=("every_steps",))
class TrainingBackup(keras.callbacks.Callback):
    """See the module docstring. ``start_step`` is set by ``restore``."""

    def __init__(self, backup_dir: str, every_steps: int = 0, is_chief: bool = True,
                 settings: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.backup_dir, self.every_steps, self.is_chief = backup_dir, int(every_steps), is_chief
        # As state.json will hold them (tuples become lists), so that equal settings compare equal.
        self.settings = None if settings is None else json.loads(json.dumps(settings, default=str))
        self.global_step = 0
        self.last_saved_step = -1

    def _state_path(self) -> str:
        return os.path.join(self.backup_dir, STATE_FILE)

    def restore(self, model: keras.Model) -> int:
        """Loads the newest backup into ``model`` (built and compiled); returns its global step (0: none)."""
        path = self._state_path()
        if not tf.io.gfile.exists(path):
            self.global_step = 0
            return 0
        hint = f"delete {self.backup_dir} to start the run afresh"
        try:
            state = read_json_object(path, "backup state")
        except CorruptFileError as err:
            raise CorruptFileError(err.message, hint=hint) from None
        step, weights, rng_states = state.get("global_step"), state.get("weights"), state.get("rng_states")
        if (not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(weights, str)
                or not isinstance(rng_states, (str, type(None)))):
            raise CorruptFileError(f"{path} is not a backup state (global_step, weights, rng_states)", hint=hint)
        changed = (changed_settings(state["settings"], self.settings)
                   if isinstance(state.get("settings"), dict) and self.settings is not None else [])
        if changed:
            raise UserError(f"{self.backup_dir} holds an unfinished run with other settings: {', '.join(changed)}",
                            hint=f"re-run with those settings to continue it, or {hint}")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(os.path.join(self.backup_dir, weights))
            if rng_states:
                saved = np.load(io.BytesIO(read_bytes(os.path.join(self.backup_dir, rng_states))))
                for variable in _rng_states(model):
                    if variable.path in saved:
                        variable.assign(saved[variable.path])
        except CONTENT_ERRORS as err:
            raise CorruptFileError(f"the backup in {self.backup_dir} cannot be restored ({content_error(err)})",
                                   hint=hint) from err
        self.global_step = step
        return self.global_step

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.global_step += 1
        if self.every_steps and self.global_step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.last_saved_step != self.global_step:
            self.save()

    def save(self) -> None:
        self.last_saved_step = self.global_step
        if not self.is_chief:
            return
        tf.io.gfile.makedirs(self.backup_dir)
        name = f"step-{self.global_step:010d}.weights.h5"
        temporary = os.path.join(self.backup_dir, f".partial-{name}")
        save_weights_with_room(self.model, temporary)
        tf.io.gfile.rename(temporary, os.path.join(self.backup_dir, name), overwrite=True)
        rng_name = f"step-{self.global_step:010d}.rng.npz"
        buffer = io.BytesIO()   # np.savez seeks, which GFile streams (gs://) do not allow
        np.savez(buffer, **{v.path: keras.ops.convert_to_numpy(v) for v in _rng_states(self.model)})
        with tf.io.gfile.GFile(os.path.join(self.backup_dir, ".partial-" + rng_name), "wb") as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(os.path.join(self.backup_dir, ".partial-" + rng_name),
                           os.path.join(self.backup_dir, rng_name), overwrite=True)
        partial_state = self._state_path() + ".partial"
        with tf.io.gfile.GFile(partial_state, "w") as f:
            json.dump({"global_step": self.global_step, "weights": name, "rng_states": rng_name,
                       "settings": self.settings}, f)
        tf.io.gfile.rename(partial_state, self._state_path(), overwrite=True)
        for old in tf.io.gfile.listdir(self.backup_dir):
            if (old.endswith(".weights.h5") and old != name) or (old.endswith(".rng.npz") and old != rng_name):
                tf.io.gfile.remove(os.path.join(self.backup_dir, old))

    def clear(self) -> None:
        """Removes the backup after a finished run (a new run of the command starts afresh)."""
        if self.is_chief and tf.io.gfile.exists(self.backup_dir):
            tf.io.gfile.rmtree(self.backup_dir)


class EpochCheckpoints(keras.callbacks.Callback):
    """The weights at the end of each epoch (``epoch-007.weights.h5`` in ``directory``), only the
    newest ``keep`` of them kept, as ``tf.train.CheckpointManager(max_to_keep=...)`` does: Keras's
    ``ModelCheckpoint`` keeps every epoch's file, so a run of many short epochs (``--epochs 1000
    --steps-per-epoch 1``) filled the disk at one model size per epoch (66 GB in 8 minutes for
    MiniLM). Files of an earlier attempt of the run count among the newest by their epoch number.

    Args:
        directory: folder of the files (local or ``gs://``), made when the first epoch ends.
        keep: how many epoch files stay (>= 1).

    Example:
        >>> model.fit(ds, epochs=10, callbacks=[EpochCheckpoints("/tmp/run/checkpoints", keep=3)])  # doctest: +SKIP
    """

    PATTERN = re.compile(r"epoch-(\d+)\.weights\.h5")

    def __init__(self, directory: str, keep: int = 5) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory, self.keep = directory, int(keep)

    def on_epoch_end(self, epoch, logs=None) -> None:
        tf.io.gfile.makedirs(self.directory)
        save_weights_with_room(self.model, os.path.join(self.directory, f"epoch-{epoch + 1:03d}.weights.h5"))
        numbered = sorted((int(found.group(1)), name) for name in tf.io.gfile.listdir(self.directory)
                          if (found := self.PATTERN.fullmatch(name)))
        for _, name in numbered[:-self.keep]:
            tf.io.gfile.remove(os.path.join(self.directory, name))


def save_weights_with_room(model: keras.Model, path: str) -> None:
    """``model.save_weights(path)`` after checking that a local disk has room for it: h5py (3.16
    on HDF5 2.0) crashes the process with a segmentation fault when it exits after a weights file
    failed to write on a full disk, so the failure is caught before h5py opens the file. The
    estimate is the bytes of the model's and the optimizer's variables, plus 5% and 1 MiB for
    HDF5's own structures."""
    directory = os.path.dirname(path) or "."
    if "://" not in directory:   # cloud stores (gs://) have no free space to ask for
        optimizer = getattr(model, "optimizer", None)   # none before compile
        variables = list(model.weights) + list(getattr(optimizer, "variables", None) or [])
        needed = int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) * 1.05) + 2**20
        free = shutil.disk_usage(directory).free
        if free < needed:
            raise UserError(f"cannot write {path}: it needs about {needed:,} bytes and the disk has {free:,} free",
                            hint=FULL_DISK_HINT)
    model.save_weights(path)


def _rng_states(model: keras.Model) -> list:
    """The seed-generator states of ``model``'s layers: variables that ``model.weights`` leaves out."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.non_trainable_variables if id(v) not in weights and "seed_generator" in v.path]
