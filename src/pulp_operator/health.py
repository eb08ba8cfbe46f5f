"""The operator's health endpoints, JSON bodies: `/healthz` for liveness, `/readyz` beside it
for readiness.

`/healthz` fails (503) only where restarting the process helps: a key has waited in the work
queue for 10 minutes while this replica leads (the queue is stuck), or the Pulp watch stopped
delivering (a Pulp changed in the cluster and the periodic resync found the watch never told:
kopf issues #1276 and #996). An API server outage does not fail it: a restart cannot mend the API
server, and restarts during an outage only add back-off delays to the recovery.

`/readyz` fails for the same reasons and, besides, while the API server does not answer (it
reports the outage: for how long, the last error) and while a watch has failed to start again for
over a minute (a 404 or an error event from the API server; `operator._unending`). When the
operator's own client has heard from the API server in the last few seconds that is proof
enough; otherwise one cheap request asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .kube import Kube

log = logging.getLogger(__name__)

FRESH = 5.0
"""An answer of the API server this recent needs no new request."""
PING_TIMEOUT = 3.0
QUEUE_STUCK = 600.0


@dataclass
class ApiContact:
    """Whether the API server answers, from the client's own requests or one ping."""

    kube: Kube
    ping: Callable[[], Awaitable[None]]
    outage_since: float | None = None
    last_error: str = ""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def check(self) -> dict[str, Any]:
        async with self._lock:
            now = time.monotonic()
            last = self.kube.last_contact
            if last is None or now - last > FRESH:
                try:
                    await asyncio.wait_for(self.ping(), PING_TIMEOUT)
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    if self.outage_since is None:
                        self.outage_since = now
                        log.warning("the API server does not answer: %s", self.last_error)
                else:
                    if self.outage_since is not None:
                        log.info(
                            "the API server answers again after %.0fs", now - self.outage_since
                        )
                    self.outage_since = None
            if self.outage_since is not None:
                return {
                    "reachable": False,
                    "unreachable_for_seconds": round(now - self.outage_since, 1),
                    "error": self.last_error,
                }
            answered = self.kube.last_contact
            return {
                "reachable": True,
                "last_answer_seconds_ago": round(now - answered, 1) if answered else None,
            }


Check = Callable[[], Awaitable[tuple[str | None, dict[str, Any]]]]
"""A liveness check: (the problem or None, what to show)."""


@dataclass
class Health:
    api: ApiContact
    checks: dict[str, Check]
    ready_checks: dict[str, Check] = field(default_factory=dict)
    """Checks of readiness only (a restart would not mend what they find)."""

    async def live(self) -> tuple[list[str], dict[str, Any]]:
        problems: list[str] = []
        body: dict[str, Any] = {}
        for name, check in self.checks.items():
            problem, shown = await check()
            body[name] = shown
            if problem:
                problems.append(f"{name}: {problem}")
        return problems, body

    async def ready(self) -> tuple[list[str], dict[str, Any]]:
        problems, body = await self.live()
        for name, check in self.ready_checks.items():
            problem, _ = await check()
            if problem:
                problems.append(f"{name}: {problem}")
        body["api"] = await self.api.check()
        if not body["api"]["reachable"]:
            problems.append(
                f"api: the API server has not answered for "
                f"{body['api']['unreachable_for_seconds']}s ({body['api']['error']})"
            )
        return problems, body


def _response(problems: list[str], body: dict[str, Any]) -> web.Response:
    payload = {"ok": not problems, "problems": problems, **body}
    return web.Response(
        status=503 if problems else 200,
        text=json.dumps(payload, sort_keys=True),
        content_type="application/json",
    )


async def serve(health: Health, address: str) -> web.AppRunner:
    """Serve `address`'s path as /healthz and `readyz` beside it; returns the runner to stop."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme != "http":
        raise ValueError(f"the health address must be an http:// URL, not {address!r}")
    live_path = parts.path or "/healthz"
    ready_path = live_path.rsplit("/", 1)[0] + "/readyz"

    async def live(_: web.Request) -> web.Response:
        return _response(*await health.live())

    async def ready(_: web.Request) -> web.Response:
        return _response(*await health.ready())

    app = web.Application()
    app.add_routes([web.get(live_path, live), web.get(ready_path, ready)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 80)
    await site.start()
    log.info("health endpoints at %s and %s", live_path, ready_path)
    return runner


def queue_check(oldest_wait: Callable[[], float], leading: Callable[[], bool]) -> Check:
    async def check() -> tuple[str | None, dict[str, Any]]:
        oldest = oldest_wait()
        shown = {"oldest_wait_seconds": round(oldest, 1)}
        if leading() and oldest > QUEUE_STUCK:
            return f"a reconcile has waited {oldest:.0f}s", shown
        return None, shown

    return check


__all__ = ["ApiContact", "Health", "queue_check", "serve"]
