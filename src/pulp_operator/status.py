"""Status of a Pulp, a pure function of what was observed, what was built and the time.

Kubernetes-convention conditions: an aggregate Ready (plus Progressing and Degraded) and one per
component, each naming the object or field at fault; lastTransitionTime changes only when a
condition's status flips.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import desired, names
from .api.pulp import Condition, PulpSpec, PulpStatus
from .desired import upgrade
from .desired.inputs import Claim, Inputs, JobState, Problem

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
    """The time as conditions record it."""
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
    inputs: Inputs,
    live: Live,
    *,
    web_wanted: bool,
    migrated: bool,
    migration_message: str,
) -> list[Check]:
    name, spec = inputs.name, inputs.spec
    out: list[Check] = []

    def workload(condition: str, label: str, kind: str, obj_name: str) -> Check:
        check = workload_check(condition, label, kind, obj_name, live.get((kind, obj_name)))
        out.append(check)
        return check

    if spec.database.external_db_secret:
        out.append(Check("DatabaseReady", True, "ExternalDatabase", "external database in use"))
    else:
        sts = workload("DatabaseReady", "Database", "StatefulSet", names.database(name))
        claims = [spec.database.pvc] if spec.database.pvc else statefulset_claims(live)
        _claims_check(out, sts, "DatabaseStorage", claims, inputs.claims)
    cache = spec.cache
    if cache is None or not cache.enabled:
        out.append(Check("CacheReady", True, "CacheDisabled", "no cache configured"))
    elif cache.external_cache_secret:
        out.append(Check("CacheReady", True, "ExternalCache", "external Redis in use"))
    else:
        redis = workload("CacheReady", "Cache", "Deployment", names.redis(name))
        claim = cache.pvc or (names.redis_data(name) if cache.redis_storage_class else None)
        _claims_check(out, redis, "CacheStorage", [claim] if claim else [], inputs.claims)
    out.append(storage_check(name, spec, inputs.claims))
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


def statefulset_claims(live: Live) -> list[str]:
    """Claims the StatefulSets' volumeClaimTemplates make: <template>-<set>-<ordinal>."""
    out = []
    for (kind, name), obj in live.items():
        if kind != "StatefulSet":
            continue
        spec = obj.get("spec") or {}
        for template in spec.get("volumeClaimTemplates") or []:
            for ordinal in range(int(spec.get("replicas", 1) or 0)):
                out.append(f"{template['metadata']['name']}-{name}-{ordinal}")
    return out


def _claims_check(
    out: list[Check], workload: Check, label: str, claims: Sequence[str], found: Mapping[str, Claim]
) -> None:
    """A claim that is not bound makes the component's condition say so (instead of the pods'
    state, which only says they do not start)."""
    if workload.ok:
        return
    for claim_name in claims:
        check = claim_check(workload.type, label, claim_name, found.get(claim_name))
        if check is not None and not check.ok:
            out[out.index(workload)] = check
            return


def claim_check(condition: str, label: str, claim: str, found: Claim | None) -> Check | None:
    """Whether a claim is usable; reasons <label>Lost, <label>Bound, <label>Pending."""
    what = f"PersistentVolumeClaim {claim}"
    if found is None:
        return None
    if found.phase == "Lost":
        return Check(condition, False, f"{label}Lost", f"{what} is Lost")
    if found.phase == "Bound":
        return Check(condition, True, f"{label}Bound", f"{what} Bound")
    if found.waiting:
        why = found.waiting
    elif not found.storage_class:
        why = "no StorageClass is set and no PersistentVolume matches (is there a default class?)"
    else:
        why = f"waiting for a volume of StorageClass {found.storage_class}"
    failed = why.startswith(("ProvisioningFailed", "FailedBinding"))
    return Check(condition, False, f"{label}Pending", f"{what} is Pending: {why}", not failed)


def storage_check(name: str, spec: PulpSpec, claims: Mapping[str, Claim]) -> Check:
    if spec.storage_type != "File":
        return Check("StorageReady", True, "ObjectStorage", f"{spec.storage_type} object storage")
    claim = spec.pvc or names.file_storage(name)
    found = claims.get(claim)
    if found is None:
        return Check(
            "StorageReady",
            False,
            "StorageMissing",
            f"PersistentVolumeClaim {claim} not found",
            True,
        )
    check = claim_check("StorageReady", "Storage", claim, found)
    assert check is not None
    if check.ok:
        return Check("StorageReady", True, "StorageAvailable", check.message)
    return check


def conditions(
    previous: Sequence[Condition],
    component_checks: Sequence[Check],
    problems: Sequence[Problem],
    generation: int,
    now: str,
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
        stamp = old.last_transition_time if old is not None and old.status == status else now
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
    now: str,
    status: Literal["True", "False", "Unknown"] = "False",
) -> list[Condition]:
    """Conditions when nothing could be built (invalid spec, unmanaged): Ready only, others kept."""
    prev = {c.type: c for c in previous}
    old = prev.get("Ready")
    stamp = old.last_transition_time if old is not None and old.status == status else now
    ready = Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=stamp,
        observed_generation=generation,
    )
    return [ready, *(c for c in previous if c.type != "Ready")]


def with_job_results(
    name: str, spec: PulpSpec, status: PulpStatus, jobs: Mapping[str, JobState]
) -> PulpStatus:
    """The status with what succeeded Jobs achieved (they are pruned later, their result stays):
    the image whose migrations ran, the hash of the admin password last set, the hash of the
    signing key and scripts last registered."""
    update: dict[str, Any] = {}
    migration = desired.migration_job_name(name, spec)
    password_prefix = names.admin_password_job(name, "")
    signing_prefix = names.signing_job(name, "")
    for job_name, state in jobs.items():
        if state.state != "succeeded":
            continue
        if job_name == migration:
            update["migrated_image"] = desired.spec_image(spec)
            update["migrated_settings"] = desired.migration_settings(spec)
        elif job_name.startswith(password_prefix):
            update["admin_password_hash"] = job_name.removeprefix(password_prefix)
        elif job_name.startswith(signing_prefix):
            update["signing_services_hash"] = job_name.removeprefix(signing_prefix)
    return status.model_copy(update=update) if update else status


def compute(
    inputs: Inputs,
    live: Live,
    built: desired.Desired,
    problems: Sequence[Problem],
    now: str,
) -> PulpStatus:
    """The whole status of a Pulp after a pass."""
    spec, status, name = inputs.spec, inputs.status, inputs.name
    web_wanted = any(
        o["kind"] == "Deployment" and o["metadata"]["name"] == names.web(name)
        for o in built.objects
    )
    migrated = spec.disable_migrations or built.migration_job is None
    migration_message = (
        "migrations disabled"
        if spec.disable_migrations
        else f"Job {built.migration_job} migrates the database"
        if built.migration_job
        else f"database migrated for {status.migrated_image or built.image}"
    )
    component_checks = checks(
        inputs, live, web_wanted=web_wanted, migrated=migrated, migration_message=migration_message
    )
    version = upgrade.observe(
        spec,
        status,
        pod_image=built.image,
        migration_job=built.migration_job,
        jobs=inputs.jobs,
        problems=problems,
        objects=built.objects,
        live=live,
    )
    new_conditions = conditions(
        status.conditions, component_checks, problems, inputs.generation, now
    )
    return status.model_copy(
        update={
            "conditions": upgrade.mark_progressing(new_conditions, status.conditions, version, now),
            "observed_generation": inputs.generation,
            "image": built.image,
            **version.status_fields(),
            "url": built.url,
            "admin_password_secret": spec.admin_password_secret or names.admin_password(name),
            "db_fields_encryption_secret": spec.db_fields_encryption_secret
            or names.db_fields_encryption(name),
            "container_token_secret": spec.container_token_secret or names.container_auth(name),
            "pulp_secret_key": spec.pulp_secret_key or names.secret_key(name),
            "storage_type": spec.storage_type,
            "ingress_type": spec.ingress_kind,
            "managed_cache_enabled": bool(
                spec.cache and spec.cache.enabled and not spec.cache.external_cache_secret
            ),
            "telemetry_enabled": bool(spec.telemetry and spec.telemetry.enabled),
            "signing_key_fingerprint": built.signing_key_fingerprint,
        }
    )


def held(
    status: PulpStatus,
    generation: int,
    reason: str,
    message: str,
    now: str,
    condition: Literal["True", "False", "Unknown"] = "False",
) -> PulpStatus:
    """The status of a Pulp the operator does not act on (invalid spec, unmanaged)."""
    return status.model_copy(
        update={
            "conditions": single(status.conditions, reason, message, generation, now, condition)
        }
    )
