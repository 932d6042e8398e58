"""Importing TensorFlow without the start-up lines that are a known defect of its wheel, and with
the standard descriptors held.

A process started with descriptor 0, 1 or 2 closed (``<&-``, ``>&-``, some schedulers) hands the
number to the next file it opens: TensorFlow opens files on import and keeps some, and its C++ logs
go to descriptor 2 whatever file holds it now. ``reserve_standard_descriptors`` opens ``/dev/null``
on any that is closed, before TensorFlow is imported.

TensorFlow 2.16's wheel registers its CUDA plug-ins twice and logs three ERROR lines at import on
every machine, GPU or not ("Unable to register cuFFT factory: Attempting to register factory for
plugin cuFFT when one has already been registered", the same for cuDNN and cuBLAS; tensorflow
issue 62075, harmless). On a CPU without AVX-512 its oneDNN build also logs, at ERROR and once per
process, "oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back to the default
Eigen-based implementation" the first time a graph transposes integers (the tokenizers and the
masking do, so every ``rw-tf embed``, ``predict`` and training run printed it mid-run; it is
TensorFlow's normal integer kernel). ``TF_CPP_MIN_LOG_LEVEL=3`` would hide these but also every
other C++ error, so instead the import runs with file descriptor 2 captured, spends the once-only
oneDNN notice on a two-number graph, and writes back everything else it printed.
``TF_CPP_MIN_LOG_LEVEL=0`` or ``1`` (asking for TensorFlow's logs) keeps them.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

PLUGIN_NOISE = re.compile(rb"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin "
                          rb"cu\w+ when one has already been registered"
                          rb"|oneDNN supports DT_\w+ only on platforms with AVX-512\. Falling back to the default "
                          rb"Eigen-based implementation")


def without_plugin_noise(output: bytes) -> bytes:
    """``output`` without the lines of the duplicate CUDA plug-in registration and oneDNN's notice."""
    return b"".join(line for line in output.splitlines(keepends=True) if not PLUGIN_NOISE.search(line))


def _flush(stream) -> None:
    if stream is not None:  # None when the process started without a standard error
        stream.flush()


@contextlib.contextmanager
def _stderr_without_plugin_noise() -> Iterator[None]:
    """Captures fd 2 for the block and writes back what it printed, filtered; filters nothing when
    there is no standard error or no writable temporary folder (rather than fail the import)."""
    try:
        saved = os.dup(2)   # first: with fd 2 closed, the temporary file below would become fd 2
    except OSError:
        yield
        return
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        os.close(saved)
        yield
        return
    with capture:
        _flush(sys.stderr)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush(sys.stderr)
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = memoryview(without_plugin_noise(capture.read()))
            while kept:  # os.write may write less than it was given
                kept = kept[os.write(2, kept):]


def reserve_standard_descriptors() -> None:
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:   # closed: the lowest free number, so open() takes this one (dup2 in case)
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def import_keras() -> None:
    """Imports Keras, saying what to do when ``KERAS_BACKEND`` names a backend it cannot load (a
    shell that exported ``KERAS_BACKEND=torch`` for other work, without PyTorch here)."""
    try:
        import keras  # noqa: F401
    except (ImportError, ValueError) as err:
        backend = os.environ.get("KERAS_BACKEND")
        if not backend or backend == "tensorflow":
            raise
        raise ImportError(f"Keras cannot load the backend that KERAS_BACKEND={backend!r} names ({err}); rw_tf "
                          "trains, exports and serves with TensorFlow's: unset KERAS_BACKEND") from None


def _spend_onednn_integer_notice() -> None:
    """Runs one integer transpose in a graph session of its own, so oneDNN's once-per-process notice
    is logged now, inside the captured import, and never later. A session (not an eager op or a
    tf.function) leaves TensorFlow's eager context uninitialized: virtual devices, GPU memory growth
    and thread counts can still be configured after ``import rw_tf``; it sees the CPU only, so no
    GPU is initialized or its memory taken. Costs about 20 ms; skipped with
    ``TF_ENABLE_ONEDNN_OPTS=0`` (no oneDNN, no notice)."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        transposed = tf.transpose(tf.constant([[0, 1]], tf.int32))
    # TensorFlow's default thread settings: a session of one intra-op thread made every later
    # matmul of the process 1.6 times slower (oneDNN kept that first thread count; measured).
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0})
    try:
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            session.run(transposed)
    except tf.errors.OpError:   # a device that cannot run it: the notice may then appear later, nothing worse
        pass


def import_tensorflow_quietly() -> None:
    reserve_standard_descriptors()
    asked_for_logs = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") in ("0", "1")
    if asked_for_logs or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    with _stderr_without_plugin_noise():
        import tensorflow  # noqa: F401
        _spend_onednn_integer_notice()
