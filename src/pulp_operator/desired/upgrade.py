"""Version changes of a Pulp: which release may run, where an upgrade stands, what to report.

Pure: decided from the spec, the status of the previous pass and the observed Deployments. An
upgrade goes through two phases: ``Migrating`` (the new image's migration Job runs while every pod
keeps the old image) and ``Rolling`` (the Deployments move to the new image); it is over when
every pulpcore and pulp-web pod runs it. ``status.version`` names the release every pod runs,
``status.target_version`` the one an upgrade in flight moves to. A downgrade below the newest
release whose migrations ran on the database is refused unless ``spec.allow_downgrade``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..api.pulp import Condition, PulpSpec, PulpStatus
from .inputs import JobState, Manifest, Problem

Phase = Literal["Migrating", "MigrationFailed", "Rolling", "DowngradeRefused"]
Release = tuple[int, ...]

# Components whose pods an upgrade replaces (the Deployments labelled with them).
ROLLED_COMPONENTS = ("api", "content", "worker", "resource-manager", "web")
_COMPONENT_LABEL = "app.kubernetes.io/component"
_RELEASE = re.compile(r"^v?(\d+(?:\.\d+)*)")


def release(tag: str | None) -> Release | None:
    """(3, 122, 2) for the tag 3.122.2 (trailing zeros dropped, so 3.13 == 3.13.0); None for
    tags that name no release (stable, latest, a digest)."""
    match = _RELEASE.match(tag or "")
    if not match:
        return None
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def image_tag(image: str | None) -> str | None:
    """The tag of image:tag (None without a tag or for a digest reference)."""
    if not image or "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    return tag


def schema_version(status: PulpStatus) -> str | None:
    """The newest release whose migrations ran: the recorded one or the last migrated image's."""
    candidates = [status.schema_version, image_tag(status.migrated_image)]
    known = [(r, t) for t in candidates if t and (r := release(t)) is not None]
    if not known:
        return status.schema_version
    return max(known)[1]


def downgrade_refusal(spec: PulpSpec, status: PulpStatus) -> Problem | None:
    """A Problem when spec.image_version is older than the database schema (and not allowed)."""
    if spec.allow_downgrade:
        return None
    schema = schema_version(status)
    wanted, floor = release(spec.image_version), release(schema)
    if wanted is None or floor is None or wanted >= floor:
        return None
    running = image_tag(status.image) or schema
    return Problem(
        "spec.image_version",
        "migration",
        "DowngradeRefused",
        f"spec.image_version {spec.image_version} is older than {schema}, whose migrations ran"
        f" on the database: pulpcore cannot run on a newer schema; the pods keep running"
        f" {running}. Set spec.image_version back, or set spec.allow_downgrade to run it anyway"
        " (going back safely means restoring a backup taken before the upgrade)",
        "MigrationsComplete",
    )


def web_image(spec: PulpSpec, status: PulpStatus, pod_image: str, spec_image: str) -> str:
    """The pulp-web image to run: the spec's, except while the pulpcore pods are held on an
    older image (migrations pending or failed, downgrade refused): then the one that runs."""
    wanted = f"{spec.image_web}:{spec.image_web_version}"
    if pod_image != spec_image and status.web_image:
        return status.web_image
    return wanted


@dataclass(frozen=True)
class Upgrade:
    """Where a Pulp's version stands after this pass."""

    phase: Phase | None
    running: str | None
    """The release every pulpcore pod runs (None until the first rollout finished)."""
    target: str | None
    """The release an upgrade in flight moves to."""
    message: str
    schema_version: str | None
    web_image: str | None

    @property
    def in_flight(self) -> bool:
        return self.phase in ("Migrating", "Rolling")

    def status_fields(self) -> dict[str, Any]:
        """The status fields this module owns."""
        return {
            "version": self.running,
            "target_version": self.target,
            "upgrade_phase": self.phase,
            "schema_version": self.schema_version,
            "web_image": self.web_image,
        }


def _image(obj: Mapping[str, Any]) -> str | None:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    image = containers[0].get("image")
    return image if isinstance(image, str) else None


def rolled_out(desired: Manifest, live: Mapping[str, Any] | None) -> bool:
    """Whether every pod of the live Deployment runs the desired image and no old pod is left."""
    if live is None or _image(live) != _image(desired):
        return False
    meta, spec, status = (live.get(k) or {} for k in ("metadata", "spec", "status"))
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", 0) <= replicas
    )


def _rolled(objects: Sequence[Manifest]) -> list[Manifest]:
    return [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and (o["metadata"].get("labels") or {}).get(_COMPONENT_LABEL) in ROLLED_COMPONENTS
    ]


def observe(
    spec: PulpSpec,
    status: PulpStatus,
    *,
    pod_image: str,
    migration_job: str | None,
    jobs: Mapping[str, JobState],
    problems: Sequence[Problem],
    objects: Sequence[Manifest],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
) -> Upgrade:
    """The upgrade state from what this pass built (objects, the pod image, the migration Job)
    and the live Deployments (after this pass's applies)."""
    workloads = _rolled(objects)
    pending = [
        o["metadata"]["name"]
        for o in workloads
        if not rolled_out(o, live.get(("Deployment", o["metadata"]["name"])))
    ]
    web = next(
        (
            _image(o)
            for o in workloads
            if (o["metadata"].get("labels") or {}).get(_COMPONENT_LABEL) == "web"
        ),
        None,
    )
    # What ran before: as recorded, or (a Pulp the upstream operator ran) its status.image.
    previous = status.version or image_tag(status.image)
    target = spec.image_version
    spec_image = f"{spec.image}:{target}"
    running = status.version
    if pod_image == spec_image and not pending:
        running = target
    schema = schema_version(status)

    def result(phase: Phase | None, message: str = "", in_flight: bool = False) -> Upgrade:
        return Upgrade(phase, running, target if in_flight else None, message, schema, web)

    refused = next((p for p in problems if p.reason == "DowngradeRefused"), None)
    if refused is not None:
        return result("DowngradeRefused", refused.message)
    if previous is None or previous == target or running == target:
        return result(None)
    moving = f"upgrading from {previous} to {target}"
    state = jobs.get(migration_job) if migration_job else None
    if migration_job is not None and pod_image != spec_image:
        if state is not None and state.state == "failed":
            detail = f": {state.message}" if state.message else ""
            return result(
                "MigrationFailed",
                f"{moving} stopped: migration Job {migration_job} failed{detail}; the pods keep"
                f" running {previous} (delete the Job to retry)",
            )
        return result(
            "Migrating",
            f"{moving}: Job {migration_job} migrates the database first; the pods keep running"
            f" {previous}",
            in_flight=True,
        )
    return result(
        "Rolling",
        f"{moving}: migrations done, rolling {', '.join(pending) or 'the pods'}",
        in_flight=True,
    )


_EVENTS: dict[Phase, tuple[str, bool, str]] = {
    # phase: (reason, warning, the condition whose message says where it stands)
    "Migrating": ("UpgradeMigrating", False, "Progressing"),
    "Rolling": ("UpgradeRolling", False, "Progressing"),
    "MigrationFailed": ("UpgradeFailed", True, "MigrationsComplete"),
    "DowngradeRefused": ("DowngradeRefused", True, "MigrationsComplete"),
}


def phase_events(old: PulpStatus, new: PulpStatus) -> list[tuple[str, str, bool]]:
    """Events (reason, message, warning) marking a change of upgrade phase between two
    statuses."""
    if new.upgrade_phase == old.upgrade_phase:
        return []
    if new.upgrade_phase is not None:
        reason, warning, condition = _EVENTS[new.upgrade_phase]
        found = next((c for c in new.conditions if c.type == condition), None)
        return [(reason, found.message if found else new.upgrade_phase, warning)]
    if old.upgrade_phase in ("Migrating", "Rolling", "MigrationFailed") and new.version:
        return [("UpgradeComplete", f"every pod runs {new.version}", False)]
    return []


def mark_progressing(
    conditions: Sequence[Condition],
    previous: Sequence[Condition],
    upgrade: Upgrade,
    now: str,
) -> list[Condition]:
    """The conditions with Progressing=True, reason Upgrading, while an upgrade is in flight."""
    out = list(conditions)
    if not upgrade.in_flight:
        return out
    old = next((c for c in previous if c.type == "Progressing"), None)
    stamp = old.last_transition_time if old is not None and old.status == "True" else now
    for i, cond in enumerate(out):
        if cond.type == "Progressing":
            out[i] = _progressing("Upgrading", upgrade.message, stamp, cond.observed_generation)
    return out


def _progressing(reason: str, message: str, stamp: str, generation: int | None) -> Condition:
    return Condition(
        type="Progressing",
        status="True",
        reason=reason,
        message=message,
        last_transition_time=stamp,
        observed_generation=generation,
    )
