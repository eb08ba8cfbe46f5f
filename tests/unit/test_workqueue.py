"""The work queue coalesces keys, never runs one key twice at once, and retries with backoff."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict

import httpx2
from lightkube.core.exceptions import ApiError

from pulp_operator.kube import transient_error
from pulp_operator.workqueue import WorkQueue

WITHIN = 5.0  # seconds any awaited condition may take before the test fails


async def test_coalesces_and_serialises() -> None:
    running: set[str] = set()
    calls: list[str] = []
    overlap = False
    started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
    gate = asyncio.Event()

    async def handler(key: str) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        calls.append(key)
        started[key].set()
        await gate.wait()
        running.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=3)
    task = asyncio.create_task(queue.run())
    queue.add("a")
    queue.add("a")  # coalesced with the waiting one
    await asyncio.wait_for(started["a"].wait(), WITHIN)
    queue.add("a")  # while processing: runs once more afterwards
    queue.add("a")
    queue.add("b")
    await asyncio.wait_for(started["b"].wait(), WITHIN)
    assert calls == ["a", "b"]  # a free worker did not start "a" a second time
    gate.set()
    await asyncio.wait_for(queue.wait_idle(), WITHIN)
    task.cancel()
    assert sorted(calls) == ["a", "a", "b"]
    assert not overlap


async def test_failures_retry_with_backoff_then_succeed() -> None:
    attempts: list[float] = []
    succeeded = asyncio.Event()

    async def handler(key: str) -> float | None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise RuntimeError("boom")
        succeeded.set()
        return None

    queue: WorkQueue[str] = WorkQueue(handler, base_delay=0.05)
    task = asyncio.create_task(queue.run())
    queue.add("k")
    await asyncio.wait_for(succeeded.wait(), WITHIN)
    await asyncio.wait_for(queue.wait_idle(), WITHIN)
    task.cancel()
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 * 0.8  # base delay, jitter 0.8-1.2
    assert gaps[1] > gaps[0] * 1.2  # exponential


async def test_requeue_after_delay() -> None:
    calls: list[float] = []
    again = asyncio.Event()

    async def handler(key: str) -> float | None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            return 0.05
        again.set()
        return None

    queue: WorkQueue[str] = WorkQueue(handler)
    task = asyncio.create_task(queue.run())
    queue.add("k")
    await asyncio.wait_for(again.wait(), WITHIN)
    await asyncio.wait_for(queue.wait_idle(), WITHIN)
    task.cancel()
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.05


async def attempts_until_success(error: Exception, failures: int) -> list[float]:
    """When a handler failing `failures` times with `error` was called (transient: ConnectionError,
    capped at 0.05 s; the base delay 0.02 s)."""
    times: list[float] = []
    succeeded = asyncio.Event()

    async def handler(key: str) -> float | None:
        times.append(asyncio.get_running_loop().time())
        if len(times) <= failures:
            raise error
        succeeded.set()
        return None

    queue: WorkQueue[str] = WorkQueue(
        handler,
        base_delay=0.02,
        transient=lambda exc: isinstance(exc, ConnectionError),
        transient_max_delay=0.05,
    )
    task = asyncio.create_task(queue.run())
    queue.add("k")
    await asyncio.wait_for(succeeded.wait(), WITHIN)
    task.cancel()
    return times


async def test_transient_failures_retry_within_their_cap_others_back_off_further() -> None:
    """An outage's failures (the API server away) do not pile up backoff: once it is back, the
    key's next try comes within the transient cap, however many tries failed before."""
    transient = await attempts_until_success(ConnectionError("refused"), 7)
    gaps = [b - a for a, b in itertools.pairwise(transient)]
    assert max(gaps) < 0.05 * 1.2 + 0.05, gaps  # capped (uncapped, the last is 1.28 s)
    other = await attempts_until_success(RuntimeError("a bug"), 6)
    gaps = [b - a for a, b in itertools.pairwise(other)]
    assert gaps[-1] >= 0.02 * 2**5 * 0.8, gaps  # plain exponential backoff


def api_error(code: int) -> ApiError:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    return ApiError(response=httpx2.Response(code, json=body))


def test_transient_errors_are_those_of_the_api_servers_availability() -> None:
    request = httpx2.Request("GET", "https://127.0.0.1:6443/api")
    assert transient_error(httpx2.ConnectError("refused", request=request))
    assert transient_error(httpx2.RemoteProtocolError("dropped", request=request))
    assert transient_error(httpx2.ReadTimeout("slow", request=request))
    assert transient_error(TimeoutError())
    for code in (429, 500, 503, 504):
        assert transient_error(api_error(code)), code
    for code in (400, 403, 404, 409, 422):
        assert not transient_error(api_error(code)), code
    assert not transient_error(ValueError("a bug"))
