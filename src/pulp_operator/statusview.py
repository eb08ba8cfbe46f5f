"""`pulp-operator status`: what each Pulp runs and what is wrong with it, read from the cluster.

`collect` reads (a Pulp, the Deployments and StatefulSets labelled as its own); `format_report`
turns that into text and is pure, so the table is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.resources.apps_v1 import Deployment, StatefulSet

from . import names
from .api.pulp import PulpSpec
from .kube import PulpResource

Obj = Mapping[str, Any]

# Component label values in display order (the database is a StatefulSet, the rest Deployments).
COMPONENT_ORDER = ("api", "content", "worker", "resource-manager", "web", "database", "cache")


@dataclass(frozen=True)
class Component:
    name: str
    kind: str
    object_name: str
    ready: int
    desired: int
    images: tuple[str, ...]


@dataclass(frozen=True)
class PulpReport:
    namespace: str
    name: str
    ready: bool
    ready_reason: str
    url: str | None
    running_version: str | None
    desired_version: str
    components: tuple[Component, ...] = ()
    problems: tuple[tuple[str, str, str, str], ...] = field(default=())
    """(type, status, reason, message) of every condition that is not True."""


def component_of(workload: Obj) -> Component:
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    labels = meta.get("labels") or {}
    kind = workload.get("kind") or ""
    ready_field = "availableReplicas" if kind == "Deployment" else "readyReplicas"
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return Component(
        name=labels.get("app.kubernetes.io/component", "?"),
        kind=kind,
        object_name=meta.get("name", "?"),
        ready=int(status.get(ready_field) or 0),
        desired=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        images=tuple(c.get("image", "") for c in containers),
    )


def report_of(pulp: Obj, workloads: Sequence[Obj]) -> PulpReport:
    meta = pulp.get("metadata") or {}
    status = pulp.get("status") or {}
    conditions = status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    try:
        spec = PulpSpec.model_validate(pulp.get("spec") or {})
        desired = spec.image_version
    except ValueError:
        desired = str((pulp.get("spec") or {}).get("image_version", "?"))
    components = sorted(
        (component_of(w) for w in workloads),
        key=lambda c: (
            COMPONENT_ORDER.index(c.name) if c.name in COMPONENT_ORDER else len(COMPONENT_ORDER),
            c.object_name,
        ),
    )
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    problems = [
        (c.get("type", "?"), c.get("status", "?"), c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c.get("status") != "True" and c.get("type") not in ("Progressing", "Degraded")
    ]
    # Degraded is "bad when True": shown when it is True.
    problems += [
        (c.get("type", ""), "True", c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c.get("type") == "Degraded" and c.get("status") == "True"
    ]
    if ready is None:
        problems.insert(
            0, ("Ready", "Unknown", "NotReconciled", "the operator has not written a status")
        )
    elif generation is not None and observed is not None and observed < generation:
        problems.insert(
            0,
            (
                "Ready",
                "Unknown",
                "StaleStatus",
                f"status is of generation {observed}, spec is {generation}",
            ),
        )
    is_ready = (
        ready is not None
        and ready.get("status") == "True"
        and (observed is None or generation is None or observed >= generation)
    )
    return PulpReport(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        ready=is_ready,
        ready_reason=(ready or {}).get("reason", "NotReconciled"),
        url=status.get("url"),
        running_version=status.get("version"),
        desired_version=desired,
        components=tuple(components),
        problems=tuple(problems),
    )


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_report(report: PulpReport) -> str:
    state = "Ready" if report.ready else f"NOT READY ({report.ready_reason})"
    running = report.running_version or "none yet"
    versions = f"running {running}, desired {report.desired_version}"
    if report.running_version and report.running_version != report.desired_version:
        versions += " (upgrading)"
    lines = [
        f"Pulp {report.namespace}/{report.name}: {state}",
        f"  URL:      {report.url or '-'}",
        f"  version:  {versions}",
    ]
    if report.components:
        rows = [("COMPONENT", "KIND", "NAME", "READY", "IMAGE")]
        rows += [
            (
                c.name,
                c.kind,
                c.object_name,
                f"{c.ready}/{c.desired}",
                ", ".join(c.images) or "-",
            )
            for c in report.components
        ]
        lines += ["", *("  " + line for line in _table(rows))]
    else:
        lines.append("  no components deployed yet")
    if report.problems:
        lines += ["", "  conditions not True:"]
        for type_, status, reason, message in report.problems:
            lines.append(f"    {type_}={status} {reason}: {message}")
    return "\n".join(lines) + "\n"


def _dict(obj: Any) -> Obj:
    result: Obj = obj.to_dict()
    return result


def collect(
    client: Client, namespace: str | None, name: str | None = None
) -> list[tuple[Obj, list[Obj]]]:
    """The Pulps (one, those of a namespace, or all with namespace None) and their workloads."""
    if name is not None:
        assert namespace is not None
        pulps: list[Obj] = [_dict(client.get(PulpResource, name, namespace=namespace))]
    else:
        pulps = [_dict(p) for p in client.list(PulpResource, namespace=namespace or "*")]
    found = []
    for pulp in sorted(pulps, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        meta = pulp["metadata"]
        selector = {names.OWNED_LABEL: meta["name"]}
        workloads: list[Obj] = []
        for cls in (Deployment, StatefulSet):
            workloads += [
                _dict(w) for w in client.list(cls, namespace=meta["namespace"], labels=selector)
            ]
        found.append((pulp, workloads))
    return found


def run(namespace: str | None, name: str | None, all_namespaces: bool) -> int:
    """Print the report of the selected Pulps; 0 when all are Ready, 1 otherwise."""
    import sys

    try:
        client = Client(field_manager=names.MANAGER)
    except (ConfigError, OSError) as exc:
        print(f"error: no cluster configuration: {exc}", file=sys.stderr)
        return 1
    ns = None if all_namespaces else (namespace or client.namespace)
    try:
        found = collect(client, ns, name)
    except ApiError as exc:
        if exc.status.code == 404 and name is not None:
            print(f"error: Pulp {name} not found in namespace {ns}", file=sys.stderr)
        else:
            print(f"error: {exc.status.message}", file=sys.stderr)
        return 1
    if not found:
        where = "any namespace" if ns is None else f"namespace {ns}"
        print(f"no Pulp in {where}", file=sys.stderr)
        return 1
    reports = [report_of(pulp, workloads) for pulp, workloads in found]
    sys.stdout.write("\n".join(format_report(r) for r in reports))
    return 0 if all(r.ready for r in reports) else 1
