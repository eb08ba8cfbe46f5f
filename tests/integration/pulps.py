"""Helpers for tests that put Pulp CRs and their referenced objects into a real API server."""

from __future__ import annotations

import asyncio
import copy
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import HostPathVolumeSource, PersistentVolumeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, Service
from lightkube.types import PatchType

from pulp_devcluster import ClusterInfo
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired.references import placeholder, references
from pulp_operator.kube import Kube, PulpResource, resource_class

from ..samples import SAMPLES as SAMPLES
from ..samples import load_sample as load_sample
from ..samples import pulp_sample_files

#: The samples' location and loaders live in tests/samples.py (defined once for all tiers).
sample_files = pulp_sample_files

#: The size of the API server's default NodePort range (30000-32767).
NODE_PORTS = 2768


def kube_for(info: ClusterInfo) -> Kube:
    return Kube.from_config(str(info.kubeconfig))


async def create_all(
    kube: Kube, namespace: str, docs: list[dict[str, Any]], *, stand_ins: bool = True
) -> list[str]:
    """Create the Secrets, ConfigMaps and Pulps of `docs` in `namespace`; returns Pulp names.

    NodePorts are cluster-wide and namespaces are never emptied on this tier (no namespace
    controller), so a Pulp's nodeport_port is moved to a port no Service holds yet. With
    `stand_ins`, Secrets/ConfigMaps a Pulp names but `docs` lacks are created with placeholder
    data, as `pulp-operator render` assumes them."""
    pulps = []
    chosen: set[int] = set()
    held = {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind")}
    extra: list[dict[str, Any]] = []
    for doc in docs:
        if doc.get("kind") not in ("Secret", "ConfigMap", "Pulp"):
            continue
        body = copy.deepcopy(doc)
        body["metadata"] = {**body["metadata"], "namespace": namespace}
        if body["kind"] == "Pulp":
            pulps.append(body["metadata"]["name"])
            spec = body.setdefault("spec", {})
            if "nodeport_port" in spec:
                spec["nodeport_port"] = await free_node_port(kube, namespace, chosen)
                chosen.add(spec["nodeport_port"])
            if stand_ins:
                for ref in references(PulpSpec.model_validate(spec)):
                    if ref.kind in ("Secret", "ConfigMap") and (ref.kind, ref.name) not in held:
                        held.add((ref.kind, ref.name))
                        extra.append(
                            {
                                "apiVersion": "v1",
                                "kind": ref.kind,
                                "metadata": {"name": ref.name, "namespace": namespace},
                                ("stringData" if ref.kind == "Secret" else "data"): placeholder(
                                    ref
                                ),
                            }
                        )
        extra.append(body)
    for body in sorted(extra, key=lambda b: b["kind"] == "Pulp"):
        await kube.client.create(resource_class(body).from_dict(body))  # type: ignore[attr-defined]
    return pulps


async def free_node_port(kube: Kube, namespace: str, chosen: set[int]) -> int:
    """A NodePort no Service of the cluster holds and not in `chosen`, starting from one derived
    from `namespace`."""
    taken = chosen | {
        port.nodePort
        async for svc in kube.client.list(Service, namespace="*")
        for port in (svc.spec.ports if svc.spec else None) or []
        if port.nodePort
    }
    start = zlib.crc32(namespace.encode()) % NODE_PORTS
    for step in range(NODE_PORTS):
        port = 30000 + (start + step) % NODE_PORTS
        if port not in taken:
            return port
    raise RuntimeError("every NodePort of the range is taken")


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 30.0, what: str = "condition"
) -> Any:
    """Poll the coroutine function `check` until it returns something true; returns it."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


async def get_pulp(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.get(PulpResource, name, namespace)
    assert obj is not None, f"Pulp {name} not found"
    return obj


def condition(pulp: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (pulp.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    raise AssertionError(f"no condition {type_} in {pulp.get('status')}")


async def patch_spec(kube: Kube, namespace: str, name: str, patch: dict[str, Any]) -> None:
    await kube.client.patch(
        PulpResource, name, {"spec": patch}, namespace=namespace, patch_type=PatchType.MERGE
    )


async def rejected(kube: Kube, namespace: str, body: dict[str, Any]) -> str:
    """Create `body` expecting the API server to refuse it; returns its message."""
    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    try:
        await kube.client.create(PulpResource.from_dict(body))
    except ApiError as exc:
        return str(exc.status.message)
    raise AssertionError("the API server accepted an invalid Pulp")


async def provide_volumes(
    kube: Kube, namespace: str, storage_class: str = "standard", count: int = 4
) -> None:
    """PersistentVolumes the PVCs of a Pulp can bind to: this cluster has no provisioner."""
    for i in range(count):
        pv = PersistentVolume(
            metadata=ObjectMeta(
                name=f"{namespace}-pv{i}"[:63], labels={"test-namespace": namespace}
            ),
            spec=PersistentVolumeSpec(
                capacity={"storage": "100Gi"},
                accessModes=["ReadWriteOnce", "ReadWriteMany"],
                storageClassName=storage_class,
                persistentVolumeReclaimPolicy="Delete",
                hostPath=HostPathVolumeSource(path=f"/tmp/pulp-operator-pv/{namespace}/{i}"),
            ),
        )
        await kube.client.create(pv)
