"""Micro-batching queue and metrics (pure Python, no model)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from selfflow_robot.policies.serving.batcher import MicroBatcher
from selfflow_robot.policies.serving.metrics import Metrics


def test_concurrent_requests_are_batched_and_results_routed_back():
    seen: list[list[int]] = []
    gate = threading.Event()

    def fn(items):
        gate.wait(5)  # hold the first batch so the others pile up in the queue
        seen.append(list(items))
        return [i * 10 for i in items]

    batcher = MicroBatcher(fn, max_batch=4, max_wait_s=0.05)

    async def main():
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(9)]
        await asyncio.sleep(0.2)
        gate.set()
        return await asyncio.gather(*tasks)

    try:
        out = asyncio.run(main())
    finally:
        batcher.close()
    assert [r for r, _ in out] == [i * 10 for i in range(9)]
    assert all(len(b) <= 4 for b in seen) and sum(len(b) for b in seen) == 9
    assert max(len(b) for b in seen) == 4  # requests queued together went through together
    assert all(t["batch_size"] == len(next(b for b in seen if i in b)) for i, (_, t) in enumerate(out))


def test_batch_failure_reaches_every_waiter_and_the_worker_survives():
    calls = []

    def fn(items):
        calls.append(items)
        if len(calls) == 1:
            raise ValueError("boom")
        return items

    batcher = MicroBatcher(fn, max_batch=1, max_wait_s=0.0)

    async def main():
        with pytest.raises(ValueError, match="boom"):
            await batcher.submit(1)
        return await batcher.submit(2)

    try:
        assert asyncio.run(main())[0] == 2
    finally:
        batcher.close()


def test_wrong_result_count_is_an_error():
    batcher = MicroBatcher(lambda items: [], max_batch=1, max_wait_s=0.0)

    async def main():
        with pytest.raises(RuntimeError, match="0 results for 1"):
            await batcher.submit(1)

    try:
        asyncio.run(main())
    finally:
        batcher.close()


def test_requests_whose_waiter_left_are_dropped_not_computed():
    """Issue 22: work of clients that disconnected was still computed. A cancelled submit never reaches fn."""
    seen: list[list[int]] = []
    gate = threading.Event()

    def fn(items):
        gate.wait(5)  # the first batch runs while the others queue up
        seen.append(list(items))
        return items

    batcher = MicroBatcher(fn, max_batch=2, max_wait_s=0.0)

    async def main():
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.1)  # the worker is inside fn([0])
        queued = [asyncio.create_task(batcher.submit(i)) for i in range(1, 7)]
        await asyncio.sleep(0.05)
        for task in queued[::2]:  # requests 1, 3, 5: their clients left
            task.cancel()
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*queued, return_exceptions=True)

    try:
        (r0, _), rest = asyncio.run(main())
    finally:
        batcher.close()
    assert r0 == 0 and [r[0] for r in rest[1::2]] == [2, 4, 6]
    assert all(isinstance(r, asyncio.CancelledError) for r in rest[::2])
    assert sorted(i for b in seen for i in b) == [0, 2, 4, 6] and batcher.dropped == 3


def test_metrics_snapshot_percentiles_and_counts():
    m = Metrics()
    for v in range(1, 101):
        m.infer_done(float(v), float(v) / 2)
    for kind in ("infer", "infer"):
        m.count(kind)
    m.error("bad_request")
    m.batch(2)
    m.batch(4)
    s = m.snapshot()
    assert s["requests_total"] == 2 and s["errors"] == {"bad_request": 1}
    assert s["latency_ms"]["p50"] == pytest.approx(50.5) and s["latency_ms"]["max"] == 100
    assert s["latency_ms"]["p99"] == pytest.approx(99.01)
    assert s["mean_batch_size"] == 3.0
    assert Metrics().snapshot()["latency_ms"] == {}
