"""Leader election with a coordination.k8s.io/v1 Lease, with the semantics of client-go's
leaderelection package, so that several replicas of the operator can run and only one works.

Every replica keeps its watches and cache warm; only the holder of the Lease runs the work queue
and writes (kube.Kube's fence asks `may_write` before every write). The timings:

* `lease_duration`: a follower takes the Lease over when it has seen no change of it for this
  long (measured on its own clock from the moment it saw the last change, never from the
  holder's timestamps: clocks of different machines need not agree);
* `renew_deadline`: the leader stops writing, and gives leadership up, when its last successful
  renewal started this long ago. It is shorter than `lease_duration`, so a leader cut off from
  the API server stops before any follower may take over (the margin covers a write already on
  its way);
* `retry_period`: how often the leader renews and followers try to acquire (followers with up to
  20 % jitter).

A replica that loses the Lease goes back to following (its cache stays warm; client-go's users
usually exit instead). On a clean stop the leader releases the Lease (an empty holder), so that a
follower takes over at its next try instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kube import Kube, Obj

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_LEASE_NAME = "pulp-operator-leader"
_JITTER = 1.2


def default_identity() -> str:
    """Unique per process, readable: the host (the pod's name in a cluster) and a random part."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


def own_namespace(fallback: str) -> str:
    """The namespace the operator runs in (in a pod), else POD_NAMESPACE, else `fallback`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or fallback
    except OSError:
        return os.environ.get("POD_NAMESPACE") or fallback


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = DEFAULT_LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > _JITTER * self.retry_period:
            raise ValueError("the renew deadline must be longer than 1.2 retry periods")
        if self.lease_duration != int(self.lease_duration) or self.lease_duration < 1:
            raise ValueError("the lease duration is a whole number of seconds (the Lease says so)")


Callback = Callable[[], Awaitable[None]]


def _micro_time(at: datetime.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquires, renews and releases one Lease; calls `on_started` when this replica becomes
    the leader and `on_stopped` when it stops being one (both awaited, never concurrently)."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        on_started: Callback,
        on_stopped: Callback,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._renewed_at: float | None = None
        """Start of the last successful acquisition or renewal, while leading."""
        self._lease: Obj | None = None
        """The Lease as the last successful write of ours returned it."""
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self.holder: str | None = None
        """The holder as last seen (None: not seen yet, "": released)."""
        self.changed_at = time.monotonic()
        """When this replica last started or stopped leading."""
        self.transitions = 0

    # --- what the rest of the operator asks ----------------------------------------------

    def may_write(self) -> bool:
        """Whether this replica surely still holds the Lease (the fence of every write)."""
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() < renewed + self.settings.renew_deadline

    @property
    def leading(self) -> bool:
        return self._renewed_at is not None

    def report(self) -> dict[str, Any]:
        return {
            "identity": self.settings.identity,
            "leading": self.leading,
            "holder": self.holder,
            "for_seconds": round(time.monotonic() - self.changed_at, 1),
        }

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: acquire, then renew until that fails for renew_deadline, then follow."""
        while True:
            await self._acquire()
            await self._started()
            try:
                await self._renew()
            finally:
                await self._stopped()

    async def release(self) -> None:
        """Give the Lease up if this replica holds it (on a clean stop)."""
        if self._renewed_at is None or self._lease is None:
            return
        self._renewed_at = None  # no write of the work from now on
        lease = self._lease
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
        }
        try:
            if await asyncio.wait_for(self.kube.replace_lease(lease), self.settings.retry_period):
                log.info("released the leader Lease %s", self.settings.name)
        except Exception as exc:  # the API may be away: the Lease expires by itself
            log.warning("cannot release the leader Lease: %s", exc)

    async def _acquire(self) -> None:
        s = self.settings
        log.info("waiting to lead: Lease %s/%s as %s", s.namespace, s.name, s.identity)
        while True:
            if await self._try():
                return
            await asyncio.sleep(s.retry_period * random.uniform(1.0, _JITTER))

    async def _renew(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.retry_period)
            while not await self._try():
                if not self.may_write():
                    log.error(
                        "lost the leader Lease: not renewed for %.0fs (renew deadline %.0fs)",
                        time.monotonic() - (self._renewed_at or 0),
                        s.renew_deadline,
                    )
                    return
                await asyncio.sleep(min(s.retry_period, self._time_left()))

    def _time_left(self) -> float:
        renewed = self._renewed_at or 0.0
        return max(0.05, renewed + self.settings.renew_deadline - time.monotonic())

    async def _started(self) -> None:
        self.changed_at = time.monotonic()
        self.transitions += 1
        log.info("leading: Lease %s/%s", self.settings.namespace, self.settings.name)
        await self._on_started()

    async def _stopped(self) -> None:
        self._renewed_at = None
        self._lease = None
        self.changed_at = time.monotonic()
        log.info("not leading any more")
        await self._on_stopped()

    async def _try(self) -> bool:
        """One attempt to acquire or renew, bounded in time; failures are logged."""
        started = time.monotonic()
        limit = self.settings.retry_period
        if self._renewed_at is not None:
            limit = max(limit, self._time_left())
        try:
            ok = await asyncio.wait_for(self._acquire_or_renew(), limit)
        except Exception as exc:
            log.warning("leader Lease %s: %s", self.settings.name, exc or type(exc).__name__)
            return False
        if ok:
            self._renewed_at = started
        return ok

    async def _acquire_or_renew(self) -> bool:
        s = self.settings
        if self._renewed_at is not None and self._lease is not None:
            renewed = await self.kube.replace_lease(self._renewing(self._lease))
            if renewed is not None:
                self._keep(renewed)
                return True  # else someone changed it: look at it again
        lease = await self.kube.get_lease(s.name, s.namespace)
        if lease is None:
            created = await self.kube.create_lease(self._new())
            if created is not None:
                self._keep(created)
            return created is not None
        spec = dict(lease.get("spec") or {})
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration)
        if holder and holder != s.identity and time.monotonic() < self._observed_at + duration:
            return False  # held by another replica that renewed it recently
        written = await self.kube.replace_lease(self._renewing(lease))
        if written is None:
            return False
        self._keep(written)
        return True

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed, self._observed_at = spec, time.monotonic()
            self.holder = spec.get("holderIdentity") or ""

    def _keep(self, lease: Obj) -> None:
        self._lease = lease
        self._observe(dict(lease.get("spec") or {}))

    def _new(self) -> Obj:
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": {
                "holderIdentity": self.settings.identity,
                "leaseDurationSeconds": int(self.settings.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _renewing(self, lease: Obj) -> Obj:
        """The Lease held by this replica from now (its resourceVersion kept: a concurrent
        change makes the update fail)."""
        s = self.settings
        spec = dict(lease.get("spec") or {})
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        ours = spec.get("holderIdentity") == s.identity
        spec.update(
            holderIdentity=s.identity,
            leaseDurationSeconds=int(s.lease_duration),
            renewTime=now,
            acquireTime=spec.get("acquireTime") if ours else now,
            leaseTransitions=int(spec.get("leaseTransitions") or 0) + (0 if ours else 1),
        )
        return {**lease, "spec": spec}


__all__ = ["LeaderElector", "LeaseSettings", "default_identity", "own_namespace"]
