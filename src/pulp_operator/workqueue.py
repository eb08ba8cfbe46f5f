"""A coalescing work queue with per-key serialisation, backoff and delayed re-adds.

Events of a Pulp and of all its children end up as one key; adding a key that is already waiting is
a no-op, a key added while it is being processed runs once more afterwards, and a key is never
processed by two workers at once. Failures come back with exponential backoff and jitter; a
failure the handler's `transient` predicate accepts (the API server away or overloaded) comes back
after at most `transient_max_delay`, so that the keys of an outage do not sit out minutes of backoff
once the API server is back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from . import metrics

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# A handler returns the delay after which the key should be processed again, or None.
Handler = Callable[[K], Awaitable[float | None]]


class WorkQueue(Generic[K]):
    def __init__(
        self,
        handler: Handler[K],
        *,
        workers: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        transient: Callable[[BaseException], bool] = lambda _: False,
        transient_max_delay: float = 8.0,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._transient = transient
        self._transient_max_delay = transient_max_delay
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: dict[K, float] = {}
        self._processing: set[K] = set()
        self._again: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0
        """Keys processed so far (passes run)."""
        metrics.track_queue(lambda: len(self._waiting), self.oldest_wait)

    def add(self, key: K, delay: float = 0.0) -> None:
        if delay > 0:
            timer = self._timers.get(key)
            when = asyncio.get_running_loop().time() + delay
            if timer is not None and timer.when() <= when:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = asyncio.get_running_loop().call_at(when, self._fire, key)
            return
        if key in self._processing:
            self._again.add(key)
            return
        if key in self._waiting:
            return
        self._waiting[key] = time.monotonic()
        self._idle.clear()
        self._queue.put_nowait(key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def oldest_wait(self) -> float:
        return time.monotonic() - min(self._waiting.values()) if self._waiting else 0.0

    async def wait_idle(self) -> None:
        """Until nothing is waiting or being processed (delayed re-adds do not count)."""
        await self._idle.wait()

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self._workers)))

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            metrics.dequeued(time.monotonic() - self._waiting.pop(key, time.monotonic()))
            self._processing.add(key)
            try:
                await self._process(key)
            finally:
                self.processed += 1
                self._processing.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.add(key)
                if not self._waiting and not self._processing:
                    self._idle.set()

    async def _process(self, key: K) -> None:
        started = time.monotonic()
        try:
            delay = await self._handler(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            transient = self._transient(exc)
            limit = self._transient_max_delay if transient else self._max_delay
            backoff = min(limit, self._base_delay * 2 ** (failures - 1))
            backoff *= random.uniform(0.8, 1.2)
            if not transient:
                log.exception(
                    "reconcile of %s failed (attempt %d); retry in %.1fs", key, failures, backoff
                )
            elif failures == 1 or failures % 20 == 0:  # one line, not one per retry of an outage
                log.warning(
                    "reconcile of %s failed (attempt %d), the API server is away or busy: %s:"
                    " %s; retry in %.1fs", key, failures, type(exc).__name__, exc, backoff
                )  # fmt: skip
            metrics.reconciled(False, time.monotonic() - started)
            self.add(key, backoff)
            return
        metrics.reconciled(True, time.monotonic() - started)
        self._failures.pop(key, None)
        if delay is not None:
            self.add(key, delay)
