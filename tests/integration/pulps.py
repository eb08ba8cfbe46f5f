"""Helpers for tests that put Pulp CRs and their referenced objects into a real API server."""

from __future__ import annotations

import copy
import glob
import zlib
from pathlib import Path
from typing import Any

import yaml
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import HostPathVolumeSource, PersistentVolumeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume
from lightkube.types import PatchType

from pulp_operator.api.crd import API_VERSION
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired.references import placeholder, references
from pulp_operator.devcluster import ClusterInfo
from pulp_operator.kube import Kube, PulpResource, resource_class

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"
INVALID_AS_WRITTEN = {"pulp-with-hpa.yaml"}


def sample_files() -> list[str]:
    """Upstream sample files holding a valid v1 Pulp."""
    out = []
    for path in sorted(glob.glob(str(SAMPLES / "*.yaml"))):
        name = Path(path).name
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        if name not in INVALID_AS_WRITTEN and any(
            d.get("kind") == "Pulp" and d.get("apiVersion") == API_VERSION for d in docs
        ):
            out.append(name)
    return out


def load_sample(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SAMPLES / name).read_text()) if d]


def kube_for(info: ClusterInfo) -> Kube:
    return Kube.from_config(str(info.kubeconfig))


async def create_all(
    kube: Kube, namespace: str, docs: list[dict[str, Any]], *, stand_ins: bool = True
) -> list[str]:
    """Create the Secrets, ConfigMaps and Pulps of `docs` in `namespace`; returns Pulp names.

    NodePorts are cluster-wide, so a Pulp's nodeport_port is moved to a port derived from the
    namespace. With `stand_ins`, Secrets/ConfigMaps a Pulp names but `docs` lacks are created with
    placeholder data, as `pulp-operator render` assumes them."""
    pulps = []
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
                spec["nodeport_port"] = 30000 + zlib.crc32(namespace.encode()) % 2700
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
        await kube.client.create(PulpResource.from_dict(body))  # type: ignore[attr-defined]
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
