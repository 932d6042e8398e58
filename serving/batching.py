"""Server-side batching as TF Serving does it: concurrent requests to one signature run as one call.

A request waits at most ``batch_timeout_micros`` for others; a batch holds at most
``max_batch_size`` rows (a larger request runs alone). The queue is bounded: when it holds
``max_enqueued_batches`` batches' worth of rows, a new request is refused with UNAVAILABLE at once.
With ``allowed_batch_sizes`` a batch is padded (repeating its last row) up to the smallest allowed
size, so the model sees few distinct shapes; the padding rows' outputs are dropped. Every input and
output must be batch-major (leading dimension = rows); otherwise the request runs unbatched. When
a merged call fails, its requests run one by one so only the bad request gets the error.
"""
from __future__ import annotations

import bisect
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from rw_tf_serving.errors import unavailable

Arrays = Dict[str, np.ndarray]
_STOP = object()


# Upper bounds TF Serving leaves to the operator, which here would fail inside the server instead of
# at start: every batch thread is started at once (num_batch_threads 10**9 cannot start), a batch
# is padded to an allowed size (10**12 rows cannot be allocated), and a wait past about 292 years
# overflows Python's timers (the batch thread died of OverflowError and requests were never answered).
MAX_BATCHING = {"max_batch_size": 1 << 20, "num_batch_threads": 1024, "max_enqueued_batches": 1 << 20,
                "batch_timeout_micros": 3_600_000_000}


def check_batching(max_batch_size: int, batch_timeout_micros: int, num_batch_threads: int,
                   max_enqueued_batches: int, allowed_batch_sizes: Sequence[int]) -> None:
    """TF Serving's rules for batching parameters, and ``MAX_BATCHING`` (``ValueError`` naming the
    first one broken)."""
    for name, value in (("max_batch_size", max_batch_size), ("num_batch_threads", num_batch_threads),
                        ("max_enqueued_batches", max_enqueued_batches)):
        if not 1 <= value <= MAX_BATCHING[name]:
            raise ValueError(f"batching {name} must be 1 to {MAX_BATCHING[name]:,}, got {value:,}")
    if not 0 <= batch_timeout_micros <= MAX_BATCHING["batch_timeout_micros"]:
        raise ValueError(f"batching batch_timeout_micros must be 0 to {MAX_BATCHING['batch_timeout_micros']:,} "
                         f"(an hour), got {batch_timeout_micros:,}")
    sizes = list(allowed_batch_sizes)
    if sizes and (sizes[0] < 1 or sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size):
        raise ValueError(f"allowed_batch_sizes must increase from >= 1 and end with max_batch_size "
                         f"({max_batch_size}), got {sizes}")


class Batcher:
    """Collects requests for ``run_fn`` (a function of a dict of arrays) and runs them in batches."""

    def __init__(self, run_fn: Callable[[Arrays], Arrays], max_batch_size: int = 32,
                 batch_timeout_micros: int = 2000, num_batch_threads: int = 1, max_enqueued_batches: int = 100,
                 allowed_batch_sizes: Sequence[int] = ()) -> None:
        check_batching(max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches,
                       allowed_batch_sizes)
        self._run = run_fn
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.max_queued_rows = max_enqueued_batches * max_batch_size
        self.allowed_batch_sizes = list(allowed_batch_sizes)
        self._queue: "queue.Queue" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.queued_rows = 0
        self.batches_run = 0
        self.rows_run = 0
        self.padded_rows = 0
        self._threads = [threading.Thread(target=self._loop, daemon=True, name=f"batcher-{i}")
                         for i in range(num_batch_threads)]
        for t in self._threads:
            t.start()

    def submit(self, inputs: Arrays) -> Future:
        future: Future = Future()
        rows = {len(v) if np.ndim(v) else -1 for v in inputs.values()}
        with self._lock:
            batchable = not self._closed and len(rows) == 1 and -1 not in rows
            if batchable:
                count = rows.pop()
                if self.queued_rows + count > self.max_queued_rows:
                    raise unavailable(f"the batching queue is full ({self.queued_rows} rows waiting; "
                                      f"max_enqueued_batches x max_batch_size = {self.max_queued_rows})")
                self.queued_rows += count
                self._queue.put((inputs, future, count))
                return future
        self._execute([(inputs, future, 0)])  # closed (version unloading) or not batch-major
        return future

    def close(self) -> None:
        """Stops accepting work; requests already queued still run."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch: List[Tuple] = [item]
            rows = item[2]
            deadline = time.monotonic() + self.timeout
            while rows < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)  # let this thread exit after running its batch
                    break
                if rows + nxt[2] > self.max_batch_size or not _compatible(batch[0][0], nxt[0]):
                    self._dequeued([nxt])
                    self._execute([nxt])
                    continue
                batch.append(nxt)
                rows += nxt[2]
            self._dequeued(batch)
            self._execute(batch)

    def _dequeued(self, batch: List[Tuple]) -> None:
        with self._lock:
            self.queued_rows -= sum(b[2] for b in batch)

    def _padded(self, merged: Arrays, rows: int) -> Arrays:
        """``merged`` with its last row repeated up to the smallest allowed batch size >= rows."""
        index = bisect.bisect_left(self.allowed_batch_sizes, rows)
        if not self.allowed_batch_sizes or index == len(self.allowed_batch_sizes):
            return merged
        extra = self.allowed_batch_sizes[index] - rows
        self.padded_rows += extra
        return {k: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) if extra else v for k, v in merged.items()}

    def _execute(self, batch: List[Tuple]) -> None:
        try:
            total = sum(b[2] for b in batch)
            if len(batch) == 1 and not (self.allowed_batch_sizes and total):
                outputs = [self._run(batch[0][0])]
            else:
                merged = {k: np.concatenate([b[0][k] for b in batch]) for k in batch[0][0]}
                result = self._run(self._padded(merged, total))
                if any(np.ndim(v) == 0 or len(v) < total for v in result.values()):
                    outputs = [self._run(b[0]) for b in batch]  # outputs not batch-major: run apart
                else:
                    bounds = np.cumsum([0] + [b[2] for b in batch])
                    outputs = [{k: v[bounds[i]:bounds[i + 1]] for k, v in result.items()}
                               for i in range(len(batch))]
            self.batches_run += 1
            self.rows_run += sum(max(b[2], 1) for b in batch)
            for (_, future, _), out in zip(batch, outputs):
                future.set_result(out)
        except Exception as err:  # noqa: BLE001 - every waiting request must learn about the failure
            if len(batch) > 1:
                # One request's bad input (e.g. a QA context that is too long) fails the merged call;
                # run the requests apart so only that request gets the error.
                for item in batch:
                    if not item[1].done():
                        self._execute([item])
                return
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(err)


def _compatible(a: Arrays, b: Arrays) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape[1:] == b[k].shape[1:] for k in a)
