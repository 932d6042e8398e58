"""What every rw-tf task model shares: ``get_config``/``from_config`` from two lists of constructor
arguments, ``compile()`` saved as the optimizer only (loss and metrics follow from the model's
config), and a distributed ``fit`` that trains on every batch."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

import keras

from rw_tf.layers.config_fields import ConfigFields


class TaskModelMixin(ConfigFields):
    """Mixin for ``keras.Model`` subclasses with a defaulting ``compile()``: only the optimizer is
    stored in the saved compile config, so ``keras.saving.load_model`` re-compiles the model.

    It also makes ``fit`` and ``evaluate`` work across several workers (see ``_multi_worker_logs``)
    and keeps ``fit`` under a ``tf.distribute`` strategy from losing a batch: Keras 3.12's
    TensorFlow trainer takes the first batch of fit's own iterator to build the compiled metrics
    whenever a strategy is set, even when nothing is left to build, and that batch is never
    trained on (keras-team/keras#20394); under MultiWorkerMirroredStrategy that build even fails on
    dict inputs. ``build_for_training`` builds them symbolically from a batch's shapes instead (the
    runner calls it), after which fit's build step is skipped.

    Serialization: a subclass names its constructor arguments in ``config_fields`` (plain values,
    see ``ConfigFields``) and ``nested_layers`` (Keras layers such as the encoder, saved as nested
    configs; ``None`` stays ``None``).
    """

    nested_layers: ClassVar[Tuple[str, ...]] = ()

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for name in self.nested_layers:
            layer = getattr(self, name)
            config[name] = None if layer is None else keras.saving.serialize_keras_object(layer)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "TaskModelMixin":
        config = dict(config)
        for name in cls.nested_layers:
            if config.get(name) is not None:
                config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def train_step(self, *args):
        return self._multi_worker_logs(super().train_step(*args))

    def test_step(self, *args):
        return self._multi_worker_logs(super().test_step(*args))

    def _multi_worker_logs(self, logs):
        if keras.backend.backend() != "tensorflow":  # JAX steps take and return (state, data)
            return logs
        # Keras 3.12 reduces a multi-worker step's outputs with strategy.reduce(MEAN, axis=0), which
        # fails on scalar metric values (tensorflow/tensorflow#72388). They are already reduced over
        # every worker, so each becomes a 1-element vector whose mean over the replicas is itself.
        extended = self.distribute_strategy.extended
        if not getattr(extended, "_in_multi_worker_mode", lambda: False)():
            return logs
        return {k: keras.ops.reshape(v, (1,)) if len(keras.ops.shape(v)) == 0 else v for k, v in logs.items()}

    def build_for_training(self, batch) -> None:
        """Builds layers, compiled loss and metrics from ``batch`` = (x, y[, sample_weight]) (shapes only)."""
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=tuple(batch) + (None,) * (3 - len(batch)))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and self.fully_built():
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def fully_built(self) -> bool:
        """True when the layers, the compiled loss and the compiled metrics are all built."""
        return (all(layer.built for layer in self._flatten_layers())
                and all(part is None or part.built for part in (getattr(self, "_compile_loss", None),
                                                                 getattr(self, "_compile_metrics", None))))

    def get_compile_config(self) -> Dict[str, Any]:
        optimizer = getattr(self, "optimizer", None)  # absent until compile()
        return {"optimizer": keras.optimizers.serialize(optimizer)} if optimizer else {}

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        if config:
            self.compile(optimizer=keras.optimizers.deserialize(config["optimizer"]))
            if self.built:
                self.optimizer.build(self.trainable_variables)
