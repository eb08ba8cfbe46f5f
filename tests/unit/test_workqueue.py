"""The work queue coalesces keys, never runs one key twice at once, and retries with backoff."""

from __future__ import annotations

import asyncio
import itertools

from pulp_operator.workqueue import WorkQueue


async def test_coalesces_and_serialises() -> None:
    running: set[str] = set()
    calls: list[str] = []
    overlap = False
    gate = asyncio.Event()

    async def handler(key: str) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        calls.append(key)
        await gate.wait()
        running.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=3)
    task = asyncio.create_task(queue.run())
    queue.add("a")
    queue.add("a")  # coalesced with the waiting one
    await asyncio.sleep(0.05)
    queue.add("a")  # while processing: runs once more afterwards
    queue.add("a")
    queue.add("b")
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(queue.wait_idle(), 2)
    task.cancel()
    assert sorted(calls) == ["a", "a", "b"]
    assert not overlap


async def test_failures_retry_with_backoff_then_succeed() -> None:
    attempts: list[float] = []

    async def handler(key: str) -> float | None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise RuntimeError("boom")
        return None

    queue: WorkQueue[str] = WorkQueue(handler, base_delay=0.05)
    task = asyncio.create_task(queue.run())
    queue.add("k")
    for _ in range(100):
        if len(attempts) >= 3:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[1] > gaps[0] * 1.2  # exponential


async def test_requeue_after_delay() -> None:
    calls = 0

    async def handler(key: str) -> float | None:
        nonlocal calls
        calls += 1
        return 0.05 if calls == 1 else None

    queue: WorkQueue[str] = WorkQueue(handler)
    task = asyncio.create_task(queue.run())
    queue.add("k")
    await asyncio.sleep(0.3)
    task.cancel()
    assert calls == 2
