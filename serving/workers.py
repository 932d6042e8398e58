"""Where the local server's front ends run requests: one event loop receives them, threads run them.

Both front ends (gRPC and REST) read requests on an asyncio event loop, so a client that sends
slowly, or never finishes its request, holds a coroutine and a socket, not a thread. Only complete
requests reach ``RequestWorkers``: ``max_workers`` threads run them and at most ``max_admitted``
are running or waiting; beyond that a request is refused with UNAVAILABLE (503 over REST), which
clients retry.

Example:
    >>> loop = EventLoopThread()
    >>> workers = RequestWorkers(max_workers=2, max_admitted=8, name="doc")
    >>> loop.run(workers.run(sum, [1, 2, 3]))
    6
    >>> workers.close(); loop.close()
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Coroutine

from rw_tf_serving.errors import unavailable


class EventLoopThread:
    """An asyncio event loop on a daemon thread; ``run`` waits for a coroutine from any other thread."""

    def __init__(self, name: str = "serving-io") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)
        self._thread.start()

    def run(self, coroutine: Coroutine, timeout: "float | None" = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Cancels what still runs on the loop (connections being read), then stops and closes it."""
        try:
            self.run(_cancel_other_tasks(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self.loop.is_running():
                self.loop.close()


async def _cancel_other_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)


class RequestWorkers:
    """Runs complete requests on ``max_workers`` threads, admitting at most ``max_admitted`` at once.

    ``run`` is called on the event loop (the admitted count is only changed there, so it needs no
    lock). A request counts until its thread finishes, even if its client has gone: a client that
    sends requests and hangs up at once cannot grow the queue.
    """

    def __init__(self, max_workers: int, max_admitted: int, name: str) -> None:
        if max_workers < 1 or max_admitted < max_workers:
            raise ValueError(f"need 1 <= max_workers <= max_admitted, got {max_workers} and {max_admitted}")
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self.max_workers, self.max_admitted = max_workers, max_admitted
        self.admitted = 0

    async def run(self, function: Callable, *args: Any) -> Any:
        if self.admitted >= self.max_admitted:
            raise unavailable(f"the server is at its limit of {self.max_admitted} requests running or queued; retry")
        loop = asyncio.get_running_loop()
        future: Future = self._pool.submit(function, *args)
        self.admitted += 1
        future.add_done_callback(lambda _: _call_soon(loop, self._release))
        return await asyncio.wrap_future(future, loop=loop)

    def _release(self) -> None:
        self.admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop has closed: the server is stopping and nothing counts any more
        pass
