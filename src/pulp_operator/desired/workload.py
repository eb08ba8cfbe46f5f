"""Deployment and Service skeletons shared by every component."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import names
from ..api.pulp import PodPlacement, WorkloadSpec
from .common import meta, set_if
from .context import Ctx
from .inputs import Manifest


def hpa_enabled(workload: WorkloadSpec | None) -> bool:
    return workload is not None and workload.hpa is not None and workload.hpa.enabled


def pod_spec(
    placement: PodPlacement | None,
    *,
    containers: list[dict[str, Any]],
    security_context: dict[str, Any],
    volumes: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    service_account: str | None = None,
    grace_seconds: int = 30,
    topology: list[dict[str, Any]] | None = None,
    restart_policy: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    set_if(spec, "serviceAccountName", service_account)
    spec["automountServiceAccountToken"] = False
    set_if(spec, "initContainers", init_containers)
    spec["containers"] = containers
    set_if(spec, "volumes", volumes)
    spec["securityContext"] = security_context
    spec["terminationGracePeriodSeconds"] = grace_seconds
    set_if(spec, "restartPolicy", restart_policy)
    if placement is not None:
        set_if(spec, "affinity", placement.affinity)
        set_if(spec, "nodeSelector", dict(sorted((placement.node_selector or {}).items())))
        set_if(spec, "tolerations", placement.tolerations)
    set_if(spec, "topologySpreadConstraints", topology)
    return spec


def pod_labels(ctx: Ctx, component: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The user's pod labels, then ours (the selector must match whatever the user adds)."""
    return {**dict(sorted((extra or {}).items())), **names.labels(ctx.name, component)}


def deployment(
    ctx: Ctx,
    component: str,
    name: str,
    *,
    pod: dict[str, Any],
    replicas: int | None,
    strategy: dict[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
    extra_pod_labels: Mapping[str, str] | None = None,
) -> Manifest:
    obj = meta(
        "Deployment",
        "apps/v1",
        name,
        ctx.namespace,
        names.labels(ctx.name, component),
        annotations,
    )
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": names.selector(ctx.name, component)}
    set_if(spec, "strategy", strategy)
    template_meta: dict[str, Any] = {"labels": pod_labels(ctx, component, extra_pod_labels)}
    if pod_annotations:
        template_meta["annotations"] = dict(sorted(pod_annotations.items()))
    spec["template"] = {"metadata": template_meta, "spec": pod}
    obj["spec"] = spec
    return obj


def service(
    ctx: Ctx,
    component: str,
    name: str,
    ports: list[dict[str, Any]],
    *,
    service_type: str = "ClusterIP",
    headless: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    obj = meta("Service", "v1", name, ctx.namespace, names.labels(ctx.name, component), annotations)
    spec: dict[str, Any] = {"type": service_type}
    if headless:
        spec["clusterIP"] = "None"
    spec["selector"] = names.selector(ctx.name, component)
    spec["ports"] = ports
    obj["spec"] = spec
    return obj


def workload_replicas(workload: WorkloadSpec) -> int | None:
    return None if hpa_enabled(workload) else workload.replicas
