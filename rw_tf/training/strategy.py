"""A factory for ``tf.distribute`` strategies, selectable by name from a flag or config.

Example:
    >>> strategy = get_strategy("default")
    >>> with strategy.scope():
    ...     pass  # build and compile the model here, then model.fit(...)
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


def get_strategy(name: str = "default", devices: Optional[Sequence[str]] = None,
                 tpu_address: Optional[str] = None) -> tf.distribute.Strategy:
    """Returns the named strategy.

    - ``default``: no distribution (the current device).
    - ``mirrored``: synchronous data parallelism over ``devices`` (default: all local GPUs, else CPU).
    - ``multi_worker_mirrored``: synchronous over workers described by the ``TF_CONFIG`` env var.
    - ``tpu``: ``TPUStrategy`` on the TPU at ``tpu_address`` ("" or "local" for a TPU VM).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as err:
            raise RuntimeError(f"no TPU reachable at {tpu_address or 'local'}: {err}") from err
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def split_cpu(num_devices: int) -> list:
    """Splits the host CPU into ``num_devices`` logical devices (call before TF initializes);
    lets MirroredStrategy be exercised on a machine without accelerators."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    return [d.name for d in tf.config.list_logical_devices("CPU")]
