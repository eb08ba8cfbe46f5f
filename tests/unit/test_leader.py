"""Leader election semantics with an in-memory Lease that behaves like the API's (optimistic
concurrency on resourceVersion): the edge cases the two-replica tests cannot time precisely."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from pulp_operator.leader import LeaderElector, LeaseSettings

Obj = dict[str, Any]


class FakeLeases:
    """The Lease part of kube.Kube, in memory; `down` makes every call fail."""

    def __init__(self) -> None:
        self.lease: Obj | None = None
        self.version = 0
        self.down = False
        self.updates = 0

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("the API server does not answer")

    async def get_lease(self, name: str, namespace: str) -> Obj | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create_lease(self, body: Obj) -> Obj | None:
        self._check()
        if self.lease is not None:
            return None
        return self._store(body)

    async def replace_lease(self, body: Obj) -> Obj | None:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            return None  # 409
        self.updates += 1
        return self._store(body)

    def _store(self, body: Obj) -> Obj:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)


def settings(identity: str) -> LeaseSettings:
    return LeaseSettings(
        namespace="ns", identity=identity, lease_duration=1, renew_deadline=0.6, retry_period=0.1
    )


class Replica:
    def __init__(self, leases: FakeLeases, identity: str) -> None:
        self.leading = asyncio.Event()
        self.stopped = asyncio.Event()

        async def started() -> None:
            self.stopped.clear()
            self.leading.set()

        async def stopped() -> None:
            self.leading.clear()
            self.stopped.set()

        self.elector = LeaderElector(leases, settings(identity), started, stopped)  # type: ignore[arg-type]
        self.task = asyncio.create_task(self.elector.run())

    async def close(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_one_leader_and_the_follower_waits_for_the_lease_to_expire() -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await asyncio.wait_for(a.leading.wait(), 2)
    b = Replica(leases, "b")
    await asyncio.sleep(1.5)  # longer than the lease duration: a renews, b must not take over
    assert a.elector.may_write()
    assert not b.elector.may_write()
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "a"
    await a.close()  # a stops renewing (no release: as if killed)
    killed = time.monotonic()
    await asyncio.wait_for(b.leading.wait(), 3)
    took = time.monotonic() - killed
    assert 0.9 <= took <= 1.0 + 0.25, took  # the lease duration, plus up to a jittered retry
    assert leases.lease["spec"]["holderIdentity"] == "b"
    assert leases.lease["spec"]["leaseTransitions"] == 1
    await b.close()


async def test_a_cut_off_leader_stops_writing_before_the_lease_can_be_taken_over() -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await asyncio.wait_for(a.leading.wait(), 2)
    leases.down = True
    cut = time.monotonic()
    await asyncio.wait_for(a.stopped.wait(), 2)
    stopped = time.monotonic() - cut
    assert not a.elector.may_write()
    assert stopped < settings("a").lease_duration, stopped
    leases.down = False  # back: it leads again (nobody else wanted the Lease)
    await asyncio.wait_for(a.leading.wait(), 3)
    await a.close()


async def test_the_fence_closes_on_time_even_if_the_loop_is_late() -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await asyncio.wait_for(a.leading.wait(), 2)
    leases.down = True
    time.sleep(0.7)  # the event loop is stuck past the renew deadline  # noqa: ASYNC251
    assert not a.elector.may_write(), "a leader whose renewal is overdue must not write"
    await a.close()


async def test_release_hands_the_lease_over_at_once() -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await asyncio.wait_for(a.leading.wait(), 2)
    b = Replica(leases, "b")
    await asyncio.sleep(0.3)
    a.task.cancel()
    await a.elector.release()
    released = time.monotonic()
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == ""
    await asyncio.wait_for(b.leading.wait(), 2)
    assert time.monotonic() - released < 0.5  # the next retry, not the lease duration
    await b.close()


def test_settings_follow_client_go_rules() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseSettings(namespace="ns", lease_duration=5, renew_deadline=6)
    with pytest.raises(ValueError, match=r"1\.2 retry periods"):
        LeaseSettings(namespace="ns", lease_duration=10, renew_deadline=2, retry_period=2)
