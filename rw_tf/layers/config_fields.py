"""``get_config`` from a list of constructor arguments, for layers, models and losses.

Keras needs ``get_config`` to return every constructor argument; writing each name three times
(signature, ``self.x = x``, ``get_config``) is where they drift apart. A class names its plain-value
arguments once in ``config_fields``, stores them with ``set_config_fields(locals())`` and gets
``get_config`` from here.

Example:
    >>> class Scale(ConfigFields, keras.layers.Layer):
    ...     config_fields = ("factor",)
    ...     def __init__(self, factor=2.0, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.set_config_fields(locals())
    >>> Scale(3.0).get_config()["factor"]
    3.0
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple


class ConfigFields:
    """Mixin (before the Keras base class): ``get_config`` = the base's config plus ``config_fields``
    read back from attributes of the same name."""

    config_fields: ClassVar[Tuple[str, ...]] = ()

    def set_config_fields(self, arguments: Dict[str, Any]) -> None:
        """Stores each of ``config_fields`` found in ``arguments`` (the constructor's ``locals()``; a
        subclass sets its own fields after the base constructor)."""
        for name in self.config_fields:
            if name in arguments:
                setattr(self, name, arguments[name])

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), **{name: getattr(self, name) for name in self.config_fields}}
