"""``tf.distribute`` strategies by name, created the way each one needs.

Create the strategy before anything else touches TensorFlow: ``MultiWorkerMirroredStrategy``
configures collective ops at program start-up and fails once TensorFlow has run an op. The
runner (``rw_tf.training.runner.run_task``) does this first; Python users do the same.

- ``default``: no distribution (the current device).
- ``mirrored``: synchronous data parallelism over ``devices`` (default: all local GPUs, else CPU).
- ``multi_worker_mirrored``: synchronous over the workers in the ``TF_CONFIG`` environment
  variable; every worker runs the same command. Waits ``worker_timeout_seconds`` for the others.
- ``tpu``: ``TPUStrategy``; ``tpu_address`` is ``local`` (or empty) on a TPU VM, the TPU's name or
  ``grpc://HOST:8470`` for a Cloud TPU node (checked for a connection first).
Workers or a TPU that cannot be reached raise ``UserError`` with a hint.

Example:
    >>> strategy = create_strategy("default")
    >>> with strategy.scope():
    ...     pass  # build and compile the model here, then model.fit(...)
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import shutil
import socket
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

import keras
import tensorflow as tf
from tensorflow.python.distribute import collective_all_reduce_strategy as collective

from rw_tf.config import checks_number_arguments
from rw_tf.errors import UserError
from rw_tf.folder_lock import output_folder_lock

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")

# Every MirroredStrategy numbers its collective groups from 1, and the runtime keeps a group's
# state per key for the life of the process, so a second strategy over the same devices (a
# notebook, a test session) meets the first one's instances: "Shape mismatch in the collective
# instance N". Each strategy made here gets its own key range.
_COLLECTIVE_KEY_RANGES = itertools.count(1)


class _MirroredStrategy(tf.distribute.MirroredStrategy):
    def __init__(self, devices=None):
        self._collective_key_base = 100_000 * next(_COLLECTIVE_KEY_RANGES)
        super().__init__(devices=devices)


# The jobs of a MultiWorkerMirroredStrategy cluster ("ps" belongs to ParameterServerStrategy, an
# "evaluator" runs beside the cluster, which this runner does not do).
TF_CONFIG_JOBS = ("chief", "worker")
_TF_CONFIG_HINT = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
                   '"task": {"type": "worker", "index": 0}}\' on each worker')


def _cluster_from_tf_config() -> dict:
    """TF_CONFIG, checked: TensorFlow takes a float or boolean index, a job it does not run, a
    repeated or port-less address, and then fails deep in start-up or waits for a worker that
    cannot come."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError("--strategy multi_worker_mirrored needs the TF_CONFIG environment variable",
                        hint=_TF_CONFIG_HINT)

    def refuse(reason: str) -> UserError:
        return UserError(f"TF_CONFIG {reason}", hint=_TF_CONFIG_HINT)

    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise refuse(f"is not JSON ({type(err).__name__}: {str(err)[:200]})") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise refuse("needs a \"cluster\" and a \"task\" object")
    unknown = sorted(set(cluster) - set(TF_CONFIG_JOBS))
    if unknown or not cluster:
        raise refuse(f"cluster has the jobs {sorted(cluster)}: multi_worker_mirrored runs "
                     f"{' and '.join(TF_CONFIG_JOBS)}")
    addresses = []
    for job, hosts in cluster.items():
        if not isinstance(hosts, list) or not hosts or (job == "chief" and len(hosts) > 1):
            raise refuse(f"cluster.{job} must be a list of host:port addresses" + (" (one)" if job == "chief" else ""))
        for host in hosts:
            name, _, port = host.rpartition(":") if isinstance(host, str) else ("", "", "")
            if not name or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise refuse(f"cluster.{job} has {host!r}, not a host:port address")
        addresses += hosts
    repeated = sorted(a for a, n in collections.Counter(addresses).items() if n > 1)
    if repeated:
        raise refuse(f"lists {repeated} more than once: each task needs an address of its own")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise refuse(f"task.type is {kind!r}, not one of the cluster's jobs {sorted(cluster)}")
    if type(index) is not int or not 0 <= index < len(cluster[kind]):
        raise refuse(f"task.index is {index!r}: it must be an integer from 0 to {len(cluster[kind]) - 1} "
                     f"(cluster.{kind} has {len(cluster[kind])})")
    return config


def _multi_worker(worker_timeout_seconds: float) -> tf.distribute.Strategy:
    config = _cluster_from_tf_config()
    # The strategy's start-up barrier waits forever by default; bound it so an absent worker is
    # an error the user sees, not a hang (the attribute is TF's own knob for this barrier).
    collective.CollectiveAllReduceExtended._check_health_initial_timeout = int(worker_timeout_seconds)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        if "program startup" in str(err):
            raise RuntimeError("MultiWorkerMirroredStrategy must be created before TensorFlow runs any op; "
                               "call create_strategy first") from err
        raise UserError(f"workers {sum(config['cluster'].values(), [])} did not all join within "
                        f"{worker_timeout_seconds:.0f} s ({err})",
                        hint="start the same command on every worker listed in TF_CONFIG") from None


def _reachable(address: str, timeout: float) -> bool:
    host, _, port = address.partition("://")[2].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def _tpu(tpu_address: Optional[str], timeout: float) -> tf.distribute.Strategy:
    address = "" if tpu_address in (None, "local") else tpu_address
    hint = "on a TPU VM use --tpu local; for a Cloud TPU node --tpu NAME or grpc://HOST:8470"
    # TF waits indefinitely for an unreachable TPU worker; a connection check turns that into an error.
    if address.startswith("grpc://") and not _reachable(address, timeout):
        raise UserError(f"no TPU reachable at {address} (no answer within {timeout:.0f} s)", hint=hint)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
            tf.errors.UnavailableError) as err:
        raise UserError(f"no TPU reachable at {tpu_address or 'local'}: {str(err).splitlines()[0]}",
                        hint=hint) from None
    return tf.distribute.TPUStrategy(resolver)


# A MultiWorkerMirroredStrategy configures the process's collective ops and a TPUStrategy initializes
# the TPU system: a second one in the same process re-does that under the first one's tensors (TF
# warns that they may break; re-initializing a TPU wipes its memory). Commands that train several
# tasks in one process (rw-tf recipe) get the first one again.
_PROCESS_STRATEGIES: Dict[Tuple[str, str], tf.distribute.Strategy] = {}


@checks_number_arguments()
def create_strategy(name: str = "default", devices: Optional[Sequence[str]] = None,
                    tpu_address: Optional[str] = None, worker_timeout_seconds: float = 120.0
                    ) -> tf.distribute.Strategy:
    """Returns the named strategy (see the module docstring); the same multi-worker or TPU strategy
    each time in one process. Every trainer calls it first, so it also refuses a Keras backend that
    is not TensorFlow's (a shell with KERAS_BACKEND=jax: a model of that backend has no strategy)."""
    if keras.backend.backend() != "tensorflow":
        raise UserError(f"training runs with tf.distribute, but Keras runs on {keras.backend.backend()} "
                        f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')!r})",
                        hint="unset KERAS_BACKEND for rw-tf; its layers and models alone also run under JAX")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _MirroredStrategy(devices=list(devices) if devices else None)
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    key = (name, os.environ.get("TF_CONFIG", "") if name == "multi_worker_mirrored" else tpu_address or "local")
    if key not in _PROCESS_STRATEGIES:
        _PROCESS_STRATEGIES[key] = (_multi_worker(worker_timeout_seconds) if name == "multi_worker_mirrored"
                                    else _tpu(tpu_address, worker_timeout_seconds))
    return _PROCESS_STRATEGIES[key]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True except on the non-chief workers of a multi-worker run (they must not write outputs)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


@contextlib.contextmanager
def worker_output_dir(output_dir: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
    """Where this worker writes: ``output_dir`` on the chief. A non-chief worker still prepares its
    files and saves the model (saving may read variables with collective ops, so a worker that
    skipped it would leave the others waiting), but into a temporary folder removed at the end:
    on shared storage it would overwrite the chief's files while they are read, and on local disks
    hundreds of MB a run would stay behind. The chief holds ``output_dir``'s lock while it writes
    (``rw_tf.folder_lock``): a second run into the same folder is refused."""
    if is_chief(strategy):
        with output_folder_lock(output_dir):
            yield output_dir
        return
    scratch = tempfile.mkdtemp(prefix="rw_tf_worker_")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of a multi-worker strategy has called it (one all-reduce across
    them), so that what the chief wrote before its call is complete when the others read it. Does
    nothing for strategies of one worker."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.function(lambda: tf.ones(()))), axis=None)


@checks_number_arguments()
def split_cpu(num_devices: int) -> list:
    """Splits the host CPU into ``num_devices`` logical devices (call before TF initializes);
    lets MirroredStrategy be exercised on a machine without accelerators."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    return [d.name for d in tf.config.list_logical_devices("CPU")]
