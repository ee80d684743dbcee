"""`MicroBatcher`: concurrent requests from the event loop become one batch on one worker thread.

The batcher collects ``infer`` requests for up to ``max_wait_s`` (or ``max_batch`` of them) and runs
them as one call of the engine on a worker thread, so the event loop keeps serving health checks and
errors while the model runs. A request whose future was cancelled (its client left) is dropped before
its batch runs, never computed.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    submitted: float


def _resolve(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():  # the connection went away meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


class MicroBatcher:
    """Collect requests for up to `max_wait_s` (or `max_batch` items) and run them as one batch.

    `fn(items) -> results` runs on one worker thread (the model is used from one thread only);
    `submit` is awaited from the event loop and resolves to ``(result, timing)``.
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int, max_wait_s: float,
                 on_batch: Callable[[int], None] | None = None,
                 should_wait: Callable[[], bool] | None = None) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        # Waiting only pays when other requests may arrive (e.g. more than one client is connected).
        self.should_wait = should_wait or (lambda: True)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self.dropped = 0  # requests whose waiter was gone before their batch ran
        self._thread = threading.Thread(target=self._run, name="policy-batcher", daemon=True)
        self._thread.start()

    async def submit(self, item: Any) -> tuple[Any, dict[str, float]]:
        """Queue `item`; resolves to ``(result, {queue_ms, infer_ms, batch_size})`` or raises its error."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put(_Pending(item, fut, loop, time.perf_counter()))
        return await fut

    def close(self) -> None:
        """Stop the worker after the batches already queued."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, stop = [first], False
        wait = self.max_wait_s if self.max_batch > 1 and self.should_wait() else 0.0
        deadline = time.perf_counter() + wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                stop = True
                break
            if not self._gone(nxt):
                batch.append(nxt)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if self._gone(first):
                continue
            batch, stop = self._collect(first)
            batch = [p for p in batch if not self._gone(p)]  # some may have left while the batch filled
            if batch:
                self._compute(batch)
            if stop:
                return

    def _gone(self, pending: _Pending) -> bool:
        """Whether nobody waits for `pending` any more (its future was cancelled: the client left)."""
        if pending.future.done():
            self.dropped += 1
            return True
        return False

    def _compute(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        try:
            results = self.fn([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"infer_batch returned {len(results)} results for {len(batch)} requests")
            exc: BaseException | None = None
        except Exception as e:  # noqa: BLE001 - forwarded to every waiting request
            results, exc = [None] * len(batch), e
        end = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for p, res in zip(batch, results):
            timing = {"queue_ms": (start - p.submitted) * 1e3, "infer_ms": (end - start) * 1e3,
                      "batch_size": len(batch)}
            # An engine may fail one item of a batch by returning the exception in its slot.
            item_exc = res if isinstance(res, BaseException) else exc
            try:
                p.loop.call_soon_threadsafe(_resolve, p.future, (res, timing), item_exc)
            except RuntimeError:  # that event loop has shut down; nobody is waiting any more
                pass
