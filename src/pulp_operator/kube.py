"""The one module that talks to the Kubernetes API (lightkube, server-side apply)."""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    PersistentVolumeClaim,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.networking_v1 import Ingress
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import CascadeType, PatchType

from .api.crd import GROUP, VERSION
from .names import MANAGER, OWNED_LABEL

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PulpResource = create_namespaced_resource(GROUP, VERSION, "Pulp", "pulps")
PulpBackupResource = create_namespaced_resource(GROUP, VERSION, "PulpBackup", "pulpbackups")
PulpRestoreResource = create_namespaced_resource(GROUP, VERSION, "PulpRestore", "pulprestores")
RouteResource = create_namespaced_resource("route.openshift.io", "v1", "Route", "routes")

# Kinds the operator creates and prunes, in deletion-safe order (workloads first).
OWNED_KINDS: tuple[type[NamespacedResource], ...] = (
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    Ingress,
    Deployment,
    StatefulSet,
    Job,
    Service,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    RoleBinding,
    Role,
    ServiceAccount,
)


def resource_class(obj: Mapping[str, Any]) -> type[NamespacedResource]:
    cls = resource_registry.load(obj["apiVersion"], obj["kind"])
    if cls is None:
        raise ValueError(f"unknown kind {obj['apiVersion']}/{obj['kind']}")
    return cls  # type: ignore[return-value]


def kind_key(cls: type[NamespacedResource]) -> str:
    return cls._api_info.resource.kind


def secret_text(secret: Mapping[str, Any]) -> dict[str, str]:
    """The data of a Secret (as returned by the API) decoded to text."""
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out


class Kube:
    """Thin async facade over lightkube: dicts in, dicts out, every write counted."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.writes: Counter[str] = Counter()

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> Kube:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else None
        return cls(AsyncClient(config=config, field_manager=MANAGER))

    async def close(self) -> None:
        await self.client.close()

    # Reads
    async def get(self, cls: type[NamespacedResource], name: str, namespace: str) -> Obj | None:
        try:
            obj = await self.client.get(cls, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return _to_dict(obj)

    async def list_owned(
        self, cls: type[NamespacedResource], namespace: str, pulp: str
    ) -> list[Obj]:
        items = self.client.list(cls, namespace=namespace, labels={OWNED_LABEL: pulp})
        return [_to_dict(o) async for o in items]

    async def has_routes(self) -> bool:
        """Whether the route.openshift.io API exists (OpenShift)."""
        try:
            async for _ in self.client.list(RouteResource, namespace="default", chunk_size=1):
                break
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise
        except httpx2.HTTPStatusError as exc:  # a 404 without a Status body
            if exc.response.status_code == 404:
                return False
            raise
        return True

    # Writes
    async def apply(self, obj: Obj) -> Obj:
        cls = resource_class(obj)
        meta = obj["metadata"]
        self.writes["apply"] += 1
        result = await self.client.patch(
            cls,
            meta["name"],
            obj,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=MANAGER,
            force=True,
        )
        return _to_dict(result)

    async def create(self, obj: Obj) -> Obj | None:
        """Create; None when it exists already (never overwrites)."""
        cls = resource_class(obj)
        self.writes["create"] += 1
        try:
            result = await self.client.create(cls.from_dict(obj))  # type: ignore[attr-defined]
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise
        return _to_dict(result)

    async def patch_merge(
        self, cls: type[NamespacedResource], name: str, namespace: str, patch: Obj
    ) -> None:
        self.writes["patch"] += 1
        await self.client.patch(cls, name, patch, namespace=namespace, patch_type=PatchType.MERGE)

    async def patch_status(
        self, cls: type[NamespacedResource], name: str, namespace: str, status: Obj
    ) -> None:
        self.writes["status"] += 1
        await self.client.patch(
            cls.Status,  # type: ignore[attr-defined]
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    async def delete(self, cls: type[NamespacedResource], name: str, namespace: str) -> None:
        self.writes["delete"] += 1
        try:
            await self.client.delete(cls, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    async def event(
        self, involved: Obj, *, reason: str, message: str, warning: bool = False
    ) -> None:
        """A core/v1 Event on the object; failures to post are logged, never raised."""
        meta = involved["metadata"]
        body = Event(
            metadata=ObjectMeta(generateName=f"{meta['name']}.", namespace=meta["namespace"]),
            involvedObject=ObjectReference(
                apiVersion=involved["apiVersion"],
                kind=involved["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=EventSource(component=MANAGER),
            reportingComponent=MANAGER,
        )
        self.writes["event"] += 1
        try:
            await self.client.create(body)
        except ApiError as exc:
            log.warning("cannot post event %s on %s: %s", reason, meta["name"], exc)


def _to_dict(obj: Any) -> Obj:
    if isinstance(obj, dict):
        return obj
    result: Obj = obj.to_dict()
    return result
