"""The operator's Prometheus metrics: every definition, and small functions that record them.

The rest of the code calls only the functions below (one line per hook), so the metric names,
labels and buckets live here and nowhere else. `pulp-operator run --metrics-port` serves them;
the alerts and the dashboard of config/monitoring/ read them.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx2
from prometheus_client import Counter, Gauge, Histogram

_NAMESPACE = "pulp_operator"
CONDITION_STATUSES = ("True", "False", "Unknown")

RECONCILES = Counter(
    "reconciles", "Reconcile passes by result (ok or error)", ["result"], namespace=_NAMESPACE
)
RECONCILE_DURATION = Histogram(
    "reconcile_duration_seconds",
    "Duration of one reconcile pass",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    namespace=_NAMESPACE,
)
APPLIED = Counter(
    "applied_objects",
    "Objects written with server-side apply, by kind",
    ["kind"],
    namespace=_NAMESPACE,
)
DELETED = Counter(
    "deleted_objects", "Objects deleted by pruning, by kind", ["kind"], namespace=_NAMESPACE
)
API_ERRORS = Counter(
    "api_errors",
    "Kubernetes API requests of the operator that returned an error status (404 and 409 are"
    " expected at times: the alerts leave them out)",
    ["method", "resource", "code"],
    namespace=_NAMESPACE,
)
API_REQUESTS = Counter(
    "api_requests",
    "Requests of the operator's own client to the Kubernetes API, by verb (kopf's watches and"
    " listings aside)",
    ["verb"],
    namespace=_NAMESPACE,
)
QUEUE_DEPTH = Gauge("queue_depth", "Keys waiting to be reconciled", namespace=_NAMESPACE)
QUEUE_OLDEST = Gauge(
    "queue_oldest_seconds", "How long the oldest waiting key has waited", namespace=_NAMESPACE
)
QUEUE_WAIT = Histogram(
    "queue_wait_seconds",
    "Time a key waited in the queue before a worker took it",
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900),
    namespace=_NAMESPACE,
)
PULP_CONDITION = Gauge(
    "pulp_condition",
    "Conditions of each Pulp: 1 for the condition's current status, 0 for the other two",
    ["namespace", "pulp", "condition", "status"],
    namespace=_NAMESPACE,
)
PULP_CONDITION_REASON = Gauge(
    "pulp_condition_reason",
    "The current reason of each condition of each Pulp (always 1)",
    ["namespace", "pulp", "condition", "reason"],
    namespace=_NAMESPACE,
)

# Reasons currently exported per Pulp, to remove the series of a reason that no longer holds.
_reasons: dict[tuple[str, str], set[tuple[str, str]]] = {}


def requested(verb: str) -> None:
    API_REQUESTS.labels(verb=verb).inc()


def reconciled(ok: bool, seconds: float) -> None:
    RECONCILES.labels(result="ok" if ok else "error").inc()
    RECONCILE_DURATION.observe(seconds)


def applied(kind: str) -> None:
    APPLIED.labels(kind=kind).inc()


def deleted(kind: str) -> None:
    DELETED.labels(kind=kind).inc()


def dequeued(waited_seconds: float) -> None:
    QUEUE_WAIT.observe(waited_seconds)


def track_queue(depth: Callable[[], int], oldest: Callable[[], float]) -> None:
    """Queue gauges computed at scrape time (the HTTP server thread reads them)."""
    QUEUE_DEPTH.set_function(lambda: _safe(depth))
    QUEUE_OLDEST.set_function(lambda: _safe(oldest))


def _safe(read: Callable[[], float]) -> float:
    try:
        return float(read())
    except (RuntimeError, ValueError):  # the queue changed while the scrape read it
        return math.nan


def pulp_conditions(namespace: str, pulp: str, conditions: Iterable[Any]) -> None:
    """Export the conditions of a Pulp (objects with type, status and reason attributes)."""
    current: set[tuple[str, str]] = set()
    for cond in conditions:
        for status in CONDITION_STATUSES:
            PULP_CONDITION.labels(namespace, pulp, cond.type, status).set(
                1 if cond.status == status else 0
            )
        current.add((cond.type, cond.reason))
        PULP_CONDITION_REASON.labels(namespace, pulp, cond.type, cond.reason).set(1)
    for condition, reason in _reasons.get((namespace, pulp), set()) - current:
        PULP_CONDITION_REASON.remove(namespace, pulp, condition, reason)
    _reasons[(namespace, pulp)] = current


def forget_pulp(namespace: str, pulp: str) -> None:
    """Remove the series of a Pulp that is gone."""
    for condition, reason in _reasons.pop((namespace, pulp), set()):
        PULP_CONDITION_REASON.remove(namespace, pulp, condition, reason)
        for status in CONDITION_STATUSES:
            with contextlib.suppress(KeyError):
                PULP_CONDITION.remove(namespace, pulp, condition, status)


# /api/v1/namespaces/ns/secrets/name, /apis/apps/v1/deployments, .../pulps/name/status
_PATH = re.compile(
    r"^/(?:api/[^/]+|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)"
    r"(?:/[^/]+(?:/(?P<sub>[^/]+))?)?$"
)


def resource_of(path: str) -> str:
    """The resource (plural, with /subresource) of an API path."""
    match = _PATH.match(path)
    if match is None:
        return "other"
    return match["resource"] + (f"/{match['sub']}" if match["sub"] else "")


async def _record_response(response: httpx2.Response) -> None:
    if response.status_code >= 400:
        request = response.request
        API_ERRORS.labels(
            request.method, resource_of(request.url.path), str(response.status_code)
        ).inc()


def instrument(client: Any) -> None:
    """Count the error responses of a lightkube AsyncClient (an httpx response hook)."""
    hooks: Mapping[str, list[Any]] = client._client._client.event_hooks
    hooks["response"].append(_record_response)
