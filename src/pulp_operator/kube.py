"""The one module that talks to the Kubernetes API (lightkube, server-side apply)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig, operators
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.batch_v1 import Job
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.networking_v1 import Ingress
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import CascadeType, PatchType

from . import metrics
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
# Kinds a Pulp may name without owning them, with their classes.
REFERENCED_KINDS: tuple[tuple[str, type[NamespacedResource]], ...] = (
    ("Secret", Secret),
    ("ConfigMap", ConfigMap),
    ("PersistentVolumeClaim", PersistentVolumeClaim),
)


def resource_class(obj: Mapping[str, Any]) -> type[NamespacedResource]:
    cls = resource_registry.load(obj["apiVersion"], obj["kind"])
    if cls is None:
        raise ValueError(f"unknown kind {obj['apiVersion']}/{obj['kind']}")
    return cls  # type: ignore[return-value]


def kind_key(cls: type[NamespacedResource]) -> str:
    return cls._api_info.resource.kind


TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def transient_error(exc: BaseException) -> bool:
    """An error of the API server's availability (unreachable, a dropped connection, a timeout,
    429 or 5xx), not of the request: the same request may well succeed in a few seconds."""
    if isinstance(exc, ApiError):
        return exc.status.code in TRANSIENT_STATUS
    return isinstance(exc, httpx2.TransportError | TimeoutError | ConnectionError)


class NotLeading(Exception):
    """A write refused because this replica does not (or no longer surely) hold the lease."""


class Kube:
    """Thin async facade over lightkube: dicts in, dicts out, every request counted (`requests`
    by verb; `writes` counts the writes among them).

    `fence`, when set, is asked before every write except those of the leader-election Lease:
    a replica that is not the leader (leader.py) writes nothing. `last_contact` is when the API
    server last answered anything (monotonic clock), for the health endpoint."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.writes: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        metrics.instrument(client)
        self.fence: Callable[[], bool] | None = None
        self.last_contact: float | None = None
        hooks: dict[str, list[Any]] = client._client._client.event_hooks
        hooks["response"].append(self._answered)

    def _count(self, verb: str) -> None:
        self.requests[verb] += 1
        metrics.requested(verb)

    async def _answered(self, response: httpx2.Response) -> None:
        self.last_contact = time.monotonic()

    def _may_write(self, what: str) -> None:
        if self.fence is not None and not self.fence():
            raise NotLeading(f"not the leader: {what} not written")

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> Kube:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else None
        return cls(AsyncClient(config=config, field_manager=MANAGER))

    async def close(self) -> None:
        await self.client.close()

    # Reads
    async def get(self, cls: type[NamespacedResource], name: str, namespace: str) -> Obj | None:
        self._count("get")
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
        self._count("list")
        items = self.client.list(cls, namespace=namespace, labels={OWNED_LABEL: pulp})
        return [_to_dict(o) async for o in items]

    async def list_labelled(
        self, cls: type[NamespacedResource], namespace: str, labels: Mapping[str, str]
    ) -> list[Obj]:
        """Objects of a kind in a namespace that carry all of `labels`."""
        self._count("list")
        items = self.client.list(cls, namespace=namespace, labels=dict(labels))
        return [_to_dict(o) async for o in items]

    async def list_all_owned(self, cls: type[NamespacedResource], namespace: str) -> list[Obj]:
        """Every object of a kind in a namespace labelled as owned by some Pulp."""
        self._count("list")
        items = self.client.list(cls, namespace=namespace, labels={OWNED_LABEL: operators.exists()})
        return [_to_dict(o) async for o in items]

    async def list_objects(self, cls: type[NamespacedResource], namespace: str | None) -> list[Obj]:
        """Every object of a kind in a namespace (None: in every namespace)."""
        self._count("list")
        items = self.client.list(cls, namespace=namespace or "*", chunk_size=500)
        return [_to_dict(o) async for o in items]

    async def iterate(
        self,
        cls: type[NamespacedResource],
        namespace: str | None,
        label: str | None = None,
        page: int = 100,
    ) -> AsyncIterator[Obj]:
        """Every object of a kind in a namespace (None: everywhere), optionally only those with
        a label, page by page (a large listing is never all in memory)."""
        self._count("list")
        labels: dict[str, Any] | None = {label: operators.exists()} if label else None
        async for obj in self.client.list(
            cls, namespace=namespace or "*", labels=labels, chunk_size=page
        ):
            yield _to_dict(obj)

    async def namespaces(self) -> list[str]:
        self._count("list")
        return [
            n.metadata.name
            async for n in self.client.list(Namespace)
            if n.metadata and n.metadata.name
        ]

    async def ping(self, cls: type[NamespacedResource], namespace: str | None) -> None:
        """The cheapest authorised request: one object of a kind (raises when unanswered)."""
        self._count("list")
        async for _ in self.client.list(cls, namespace=namespace or "*", chunk_size=1):
            break

    async def may(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        """Whether this client may `verb` the resource (namespace "": cluster-wide)."""
        review = SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(
                resourceAttributes=ResourceAttributes(
                    verb=verb, group=group, resource=resource, namespace=namespace or None
                )
            )
        )
        self._count("create")
        result = await self.client.create(review)
        return bool(result.status is not None and result.status.allowed)

    async def latest_events(self, namespace: str, kind: str) -> dict[str, str]:
        """`Reason: message` of the most recent Event about each object of a kind in a
        namespace, by object name (one request for all of them)."""
        self._count("list")
        fields: dict[str, Any] = {"involvedObject.kind": kind}
        latest: dict[str, tuple[str, str]] = {}
        async for event in self.client.list(Event, namespace=namespace, fields=fields):
            name = event.involvedObject.name if event.involvedObject else None
            if not name:
                continue
            stamp = _event_time(event)
            if name not in latest or stamp >= latest[name][0]:
                text = f"{event.reason}: {event.message}" if event.message else str(event.reason)
                latest[name] = (stamp, text)
        return {name: text for name, (_, text) in latest.items()}

    async def latest_event(self, namespace: str, kind: str, name: str) -> str:
        """`Reason: message` of the most recent Event about an object ("" when there is none)."""
        self._count("list")
        fields: dict[str, Any] = {"involvedObject.kind": kind, "involvedObject.name": name}
        events = [e async for e in self.client.list(Event, namespace=namespace, fields=fields)]
        if not events:
            return ""

        latest = max(events, key=_event_time)
        return f"{latest.reason}: {latest.message}" if latest.message else str(latest.reason or "")

    async def has_routes(self, namespace: str = "default") -> bool:
        """Whether the route.openshift.io API exists (OpenShift); asked in a watched namespace."""
        self._count("list")
        try:
            async for _ in self.client.list(RouteResource, namespace=namespace, chunk_size=1):
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
        self._may_write(f"{obj['kind']} {meta['name']}")
        self.writes["apply"] += 1
        self._count("patch")
        result = await self.client.patch(
            cls,
            meta["name"],
            obj,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=MANAGER,
            force=True,
        )
        metrics.applied(obj["kind"])
        return _to_dict(result)

    async def create(self, obj: Obj) -> Obj | None:
        """Create; None when it exists already (never overwrites)."""
        cls = resource_class(obj)
        self._may_write(f"{obj['kind']} {obj['metadata']['name']}")
        self.writes["create"] += 1
        self._count("create")
        try:
            result = await self.client.create(cls.from_dict(obj))  # type: ignore[attr-defined]
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise
        return _to_dict(result)

    async def patch_merge(
        self, cls: type[NamespacedResource], name: str, namespace: str, patch: Obj
    ) -> Obj:
        self._may_write(f"{kind_key(cls)} {name}")
        self.writes["patch"] += 1
        self._count("patch")
        result = await self.client.patch(
            cls, name, patch, namespace=namespace, patch_type=PatchType.MERGE
        )
        return _to_dict(result)

    async def patch_json(
        self, cls: type[NamespacedResource], name: str, namespace: str, ops: list[Obj]
    ) -> Obj:
        """A JSON patch (RFC 6902), e.g. to replace a whole spec."""
        self.writes["patch"] += 1
        self._count("patch")
        result = await self.client.patch(
            cls, name, ops, namespace=namespace, patch_type=PatchType.JSON
        )
        return _to_dict(result)

    async def patch_status(
        self, cls: type[NamespacedResource], name: str, namespace: str, status: Obj
    ) -> Obj:
        self._may_write(f"the status of {name}")
        self.writes["status"] += 1
        self._count("patch")
        result = await self.client.patch(
            cls.Status,  # type: ignore[attr-defined]
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        return _to_dict(result)

    async def delete(self, cls: type[NamespacedResource], name: str, namespace: str) -> None:
        self._may_write(f"the deletion of {kind_key(cls)} {name}")
        self.writes["delete"] += 1
        self._count("delete")
        try:
            await self.client.delete(cls, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
        metrics.deleted(kind_key(cls))

    async def event(
        self, involved: Obj, *, reason: str, message: str, warning: bool = False
    ) -> None:
        """A core/v1 Event on the object; failures to post are logged, never raised (a replica
        that is not the leader posts none)."""
        meta = involved["metadata"]
        if self.fence is not None and not self.fence():
            return
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
        self._count("create")
        try:
            await self.client.create(body)
        except ApiError as exc:
            log.warning("cannot post event %s on %s: %s", reason, meta["name"], exc)

    # The leader-election Lease (leader.py): never fenced, optimistic concurrency on updates
    async def get_lease(self, name: str, namespace: str) -> Obj | None:
        self._count("get")
        try:
            return _to_dict(await self.client.get(Lease, name, namespace=namespace))
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    async def create_lease(self, body: Obj) -> Obj | None:
        """Create; None when another replica created it first."""
        self._count("create")
        try:
            return _to_dict(await self.client.create(Lease.from_dict(body)))
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise

    async def replace_lease(self, body: Obj) -> Obj | None:
        """Update (its resourceVersion must be current); None when it changed meanwhile."""
        self._count("update")
        try:
            return _to_dict(await self.client.replace(Lease.from_dict(body)))
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise


def _event_time(event: Event) -> str:
    created = event.metadata.creationTimestamp if event.metadata else None
    stamp = event.lastTimestamp or event.eventTime or created
    return stamp.isoformat() if stamp is not None else ""


def _to_dict(obj: Any) -> Obj:
    if isinstance(obj, dict):
        return obj
    result: Obj = obj.to_dict()
    return result
