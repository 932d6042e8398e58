"""Save/restore of ``compile()`` for task models whose loss and metrics follow from their config."""
from __future__ import annotations

from typing import Any, Dict

import keras


class OptimizerOnlyCompileConfig:
    """Mixin for ``keras.Model`` subclasses with a defaulting ``compile()``: only the optimizer is
    stored in the saved compile config, so ``keras.saving.load_model`` re-compiles the model."""

    def get_compile_config(self) -> Dict[str, Any]:
        optimizer = getattr(self, "optimizer", None)  # absent until compile()
        return {"optimizer": keras.optimizers.serialize(optimizer)} if optimizer else {}

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        if config:
            self.compile(optimizer=keras.optimizers.deserialize(config["optimizer"]))
            if self.built:
                self.optimizer.build(self.trainable_variables)
