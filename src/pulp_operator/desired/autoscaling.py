"""HorizontalPodAutoscalers and PodDisruptionBudgets, named like the Deployments they cover."""

from __future__ import annotations

from typing import Any

from .. import names
from ..api.pulp import WorkloadSpec
from .common import meta
from .context import Ctx
from .inputs import Manifest


def _workloads(ctx: Ctx) -> list[tuple[str, str, WorkloadSpec]]:
    spec = ctx.spec
    items: list[tuple[str, str, WorkloadSpec]] = [
        ("api", names.api(ctx.name), spec.api),
        ("content", names.content(ctx.name), spec.content),
        ("worker", names.worker(ctx.name), spec.worker),
    ]
    if ctx.web_enabled and spec.web is not None:
        items.append(("web", names.web(ctx.name), spec.web))
    return items


def pdb_objects(ctx: Ctx) -> list[Manifest]:
    objects = []
    for component, name, workload in _workloads(ctx):
        if workload.pdb is None:
            continue
        obj = meta(
            "PodDisruptionBudget",
            "policy/v1",
            name,
            ctx.namespace,
            names.labels(ctx.name, component),
        )
        obj["spec"] = {
            **{k: v for k, v in workload.pdb.items() if k != "selector"},
            "selector": {"matchLabels": names.selector(ctx.name, component)},
        }
        objects.append(obj)
    return objects


def hpa_objects(ctx: Ctx) -> list[Manifest]:
    objects = []
    for component, name, workload in _workloads(ctx):
        hpa = workload.hpa
        if hpa is None or not hpa.enabled:
            continue
        cpu = hpa.target_cpu_utilization_percentage
        memory = hpa.target_memory_utilization_percentage
        if cpu is None and memory is None:
            cpu = 50
        metrics: list[dict[str, Any]] = []
        for resource, target in (("cpu", cpu), ("memory", memory)):
            if target is not None:
                metrics.append(
                    {
                        "type": "Resource",
                        "resource": {
                            "name": resource,
                            "target": {"type": "Utilization", "averageUtilization": target},
                        },
                    }
                )
        obj = meta(
            "HorizontalPodAutoscaler",
            "autoscaling/v2",
            name,
            ctx.namespace,
            names.labels(ctx.name, component),
        )
        obj["spec"] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": hpa.min_replicas,
            "maxReplicas": hpa.max_replicas,
            "metrics": metrics,
        }
        objects.append(obj)
    return objects
