"""Status of a Pulp from what was observed: Kubernetes-convention conditions, computed purely."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import names
from .api.pulp import Condition, PulpSpec
from .desired.inputs import Problem

Live = Mapping[tuple[str, str], Mapping[str, Any]]

COMPONENT_CONDITIONS = (
    "DatabaseReady",
    "CacheReady",
    "StorageReady",
    "MigrationsComplete",
    "APIReady",
    "ContentReady",
    "WorkerReady",
    "WebReady",
)


@dataclass(frozen=True)
class Check:
    type: str
    ok: bool
    reason: str
    message: str
    progressing: bool = False


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workload_check(
    condition: str, label: str, kind: str, name: str, live: Mapping[str, Any] | None
) -> Check:
    """Readiness of a Deployment or StatefulSet; the message names it."""
    if live is None:
        return Check(condition, False, f"{label}Missing", f"{kind} {name} does not exist yet", True)
    spec, status = live.get("spec") or {}, live.get("status") or {}
    meta = live.get("metadata") or {}
    wanted = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Check(
            condition, False, f"{label}Progressing", f"{kind} {name}: change not yet observed", True
        )
    for cond in status.get("conditions") or []:
        if cond.get("reason") == "ProgressDeadlineExceeded" and cond.get("status") == "False":
            return Check(
                condition,
                False,
                f"{label}Failed",
                f"{kind} {name} cannot become available: {cond.get('message', '')}",
            )
    if wanted == 0:
        return Check(condition, True, f"{label}ScaledDown", f"{kind} {name} has 0 replicas")
    ready_field = "availableReplicas" if kind == "Deployment" else "readyReplicas"
    available = status.get(ready_field, 0)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    if available >= wanted and updated >= wanted and total <= wanted:
        return Check(condition, True, f"{label}Ready", f"{kind} {name}: {available}/{wanted} ready")
    return Check(
        condition,
        False,
        f"{label}NotReady",
        f"{kind} {name}: {available}/{wanted} pods available, {updated} updated",
        True,
    )


def checks(
    name: str,
    spec: PulpSpec,
    live: Live,
    *,
    web_wanted: bool,
    migrated: bool,
    migration_message: str,
) -> list[Check]:
    out: list[Check] = []

    def workload(condition: str, label: str, kind: str, obj_name: str) -> None:
        out.append(workload_check(condition, label, kind, obj_name, live.get((kind, obj_name))))

    if spec.database.external_db_secret:
        out.append(Check("DatabaseReady", True, "ExternalDatabase", "external database in use"))
    else:
        workload("DatabaseReady", "Database", "StatefulSet", names.database(name))
    cache = spec.cache
    if cache is None or not cache.enabled:
        out.append(Check("CacheReady", True, "CacheDisabled", "no cache configured"))
    elif cache.external_cache_secret:
        out.append(Check("CacheReady", True, "ExternalCache", "external Redis in use"))
    else:
        workload("CacheReady", "Cache", "Deployment", names.redis(name))
    out.append(storage_check(name, spec, live))
    if migrated:
        out.append(Check("MigrationsComplete", True, "MigrationsComplete", migration_message))
    else:
        out.append(Check("MigrationsComplete", False, "MigrationsRunning", migration_message, True))
    workload("APIReady", "API", "Deployment", names.api(name))
    workload("ContentReady", "Content", "Deployment", names.content(name))
    workload("WorkerReady", "Worker", "Deployment", names.worker(name))
    if web_wanted:
        workload("WebReady", "Web", "Deployment", names.web(name))
    else:
        out.append(Check("WebReady", True, "WebNotNeeded", "pulp-web is not deployed"))
    return out


def storage_check(name: str, spec: PulpSpec, live: Live) -> Check:
    if spec.storage_type != "File":
        return Check("StorageReady", True, "ObjectStorage", f"{spec.storage_type} object storage")
    claim = spec.pvc or names.file_storage(name)
    pvc = live.get(("PersistentVolumeClaim", claim))
    if pvc is None:
        return Check(
            "StorageReady",
            False,
            "StorageMissing",
            f"PersistentVolumeClaim {claim} not found",
            True,
        )
    phase = (pvc.get("status") or {}).get("phase", "Pending")
    if phase == "Lost":
        return Check("StorageReady", False, "StorageLost", f"PersistentVolumeClaim {claim} is Lost")
    return Check("StorageReady", True, "StorageAvailable", f"PersistentVolumeClaim {claim} {phase}")


def conditions(
    previous: Sequence[Condition],
    component_checks: Sequence[Check],
    problems: Sequence[Problem],
    generation: int,
) -> list[Condition]:
    """All conditions, aggregate Ready first; lastTransitionTime kept unless the status flips."""
    found = {c.type: c for c in component_checks}
    for problem in problems:
        if problem.condition in found and problem.condition != "Ready":
            found[problem.condition] = Check(
                problem.condition, False, problem.reason, problem.message
            )
    failing = [c for c in found.values() if not c.ok]
    progressing = [c for c in failing if c.progressing]
    if problems:
        first = problems[0]
        ready = Check("Ready", False, first.reason, first.message)
    elif failing:
        first_failing = failing[0]
        ready = Check("Ready", False, first_failing.reason, first_failing.message)
    else:
        ready = Check("Ready", True, "Ready", "all components are ready")
    stuck = [c for c in failing if not c.progressing]
    aggregate = [
        ready,
        Check(
            "Progressing",
            bool(progressing) and not problems,
            "Progressing" if progressing else "Stable",
            "; ".join(c.message for c in progressing) or "nothing in progress",
        ),
        Check(
            "Degraded",
            bool(problems or stuck),
            (problems[0].reason if problems else stuck[0].reason)
            if (problems or stuck)
            else "NotDegraded",
            "; ".join([p.message for p in problems] + [c.message for c in stuck]) or "no problem",
        ),
    ]
    prev = {c.type: c for c in previous}
    out = []
    for check in [*aggregate, *(found[t] for t in COMPONENT_CONDITIONS if t in found)]:
        status = "True" if check.ok else "False"
        old = prev.get(check.type)
        stamp = old.last_transition_time if old is not None and old.status == status else now()
        out.append(
            Condition(
                type=check.type,
                status=status,
                reason=check.reason,
                message=check.message,
                last_transition_time=stamp,
                observed_generation=generation,
            )
        )
    return out


def single(
    previous: Sequence[Condition],
    reason: str,
    message: str,
    generation: int,
    status: Literal["True", "False", "Unknown"] = "False",
) -> list[Condition]:
    """Conditions when nothing could be built (invalid spec, unmanaged): Ready only, others kept."""
    prev = {c.type: c for c in previous}
    old = prev.get("Ready")
    stamp = old.last_transition_time if old is not None and old.status == status else now()
    ready = Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=stamp,
        observed_generation=generation,
    )
    return [ready, *(c for c in previous if c.type != "Ready")]
