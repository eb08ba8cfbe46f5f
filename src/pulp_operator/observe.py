"""Everything one pass knows of a Pulp, read in one place: the `Observed` value.

`observe()` reads the Pulp, every object its spec names (Secrets, ConfigMaps, PersistentVolume-
Claims), everything it owns (generated Secrets included) and, for claims still Pending, why they
wait. It reads through a `Reader`: `CachedReader` answers from the operator's watch cache (a pass
with nothing to change makes no API request), `ApiReader` from the API (tests that drive the
reconciler directly, and the periodic resync that corrects what a watch gap may have missed).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from lightkube.core.resource import NamespacedResource
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Secret
from pydantic import ValidationError

from . import names
from .api.crd import name_problem
from .api.pulp import PulpSpec, PulpStatus
from .api.validation import describe_validation_error
from .cache import Stub, WatchCache
from .desired.inputs import Claim, ClusterFacts, Inputs, JobState
from .desired.references import references
from .kube import OWNED_KINDS, Kube, Obj, PulpResource, kind_key
from .status import statefulset_claims

ObjKey = tuple[str, str]
"""(kind, name) within the Pulp's namespace"""

_CLASSES: dict[str, type[NamespacedResource]] = {
    "Secret": Secret,
    "ConfigMap": ConfigMap,
    "PersistentVolumeClaim": PersistentVolumeClaim,
}


class Reader(Protocol):
    async def pulp(self, namespace: str, name: str) -> Obj | None: ...

    async def owned(self, namespace: str, name: str) -> dict[ObjKey, Obj]:
        """Every object labelled as owned by the Pulp."""
        ...

    async def object(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A Secret, ConfigMap or PersistentVolumeClaim by name (None: it does not exist)."""
        ...

    async def claim_waits(self, namespace: str, claim: str) -> str:
        """Why a Pending claim waits: the latest event on it ("" when none)."""
        ...


@dataclass(frozen=True)
class ApiReader:
    kube: Kube

    async def pulp(self, namespace: str, name: str) -> Obj | None:
        return await self.kube.get(PulpResource, name, namespace)

    async def owned(self, namespace: str, name: str) -> dict[ObjKey, Obj]:
        live: dict[ObjKey, Obj] = {}
        for cls in OWNED_KINDS:
            for obj in await self.kube.list_owned(cls, namespace, name):
                live[(kind_key(cls), obj["metadata"]["name"])] = obj
        return live

    async def object(self, kind: str, namespace: str, name: str) -> Obj | None:
        return await self.kube.get(_CLASSES[kind], name, namespace)

    async def claim_waits(self, namespace: str, claim: str) -> str:
        return await self.kube.latest_event(namespace, "PersistentVolumeClaim", claim)


@dataclass
class CachedReader:
    """Reads from the watch cache; the API only for a referenced object the cache has seen but
    not kept (it keeps it from then on) and, at most once a minute per namespace, for the events
    that say why its claims are Pending (one request for all of them)."""

    cache: WatchCache
    kube: Kube
    waits_ttl: float = 60.0
    _waits: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)

    async def pulp(self, namespace: str, name: str) -> Obj | None:
        found = self.cache.get("Pulp", namespace, name)
        return None if isinstance(found, Stub) else found

    async def owned(self, namespace: str, name: str) -> dict[ObjKey, Obj]:
        return self.cache.owned(namespace, name)

    async def object(self, kind: str, namespace: str, name: str) -> Obj | None:
        found = self.cache.get(kind, namespace, name)
        if not isinstance(found, Stub):
            return found
        obj = await self.kube.get(_CLASSES[kind], name, namespace)
        if obj is not None:
            self.cache.update(kind, obj, referenced=True)
        return obj

    async def claim_waits(self, namespace: str, claim: str) -> str:
        now = time.monotonic()
        known = self._waits.get(namespace)
        if known is None or now - known[0] >= self.waits_ttl:
            texts = await self.kube.latest_events(namespace, "PersistentVolumeClaim")
            self._waits = {
                k: v for k, v in self._waits.items() if now - v[0] < self.waits_ttl
            }  # forget namespaces whose claims are long bound
            known = self._waits[namespace] = (now, texts)
        return known[1].get(claim, "")


@dataclass(frozen=True)
class Observed:
    pulp: Obj
    spec: PulpSpec | None
    """None when the spec is invalid (spec_error says why)."""
    spec_error: str | None
    owned: Mapping[ObjKey, Obj]
    """Everything labelled as owned by the Pulp, by (kind, name)."""
    referenced: Mapping[ObjKey, Obj] = field(default_factory=dict)
    """The objects the spec names that exist, by (kind, name)."""
    named_claims: Mapping[str, Obj] = field(default_factory=dict)
    """The PersistentVolumeClaims the Pulp uses but does not own (named in the spec, made from
    the database's volumeClaimTemplates) that exist."""
    claim_waits: Mapping[str, str] = field(default_factory=dict)
    """Why each Pending claim waits."""

    @property
    def name(self) -> str:
        return str(self.pulp["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.pulp["metadata"]["namespace"])

    @property
    def generation(self) -> int:
        return int(self.pulp["metadata"].get("generation", 1))

    @property
    def status(self) -> PulpStatus:
        return PulpStatus.model_validate(self.pulp.get("status") or {})

    @property
    def jobs(self) -> dict[str, JobState]:
        """The Jobs the operator started for this Pulp, by name."""
        return {name: job_state(obj) for (kind, name), obj in self.owned.items() if kind == "Job"}

    def live(self, kind: str, name: str) -> Obj | None:
        return self.owned.get((kind, name))

    @property
    def claims(self) -> dict[str, Obj]:
        """Every PersistentVolumeClaim the Pulp uses that exists."""
        owned = {n: o for (kind, n), o in self.owned.items() if kind == "PersistentVolumeClaim"}
        return {**owned, **self.named_claims}

    def with_owned(self, objects: Mapping[ObjKey, Obj]) -> Observed:
        return replace(self, owned={**self.owned, **objects})

    def inputs(self, status: PulpStatus, cluster: ClusterFacts) -> Inputs:
        assert self.spec is not None
        secrets = {
            name: secret_text(obj)
            for (kind, name), obj in [*self.owned.items(), *self.referenced.items()]
            if kind == "Secret"
        }
        config_maps = {
            name: dict(obj.get("data") or {})
            for (kind, name), obj in self.referenced.items()
            if kind == "ConfigMap"
        }
        # The operator-created CA bundle ConfigMap holds data others write (OpenShift's CNO).
        bundle = self.owned.get(("ConfigMap", names.trusted_ca_bundle(self.name)))
        if bundle is not None:
            config_maps.setdefault(
                names.trusted_ca_bundle(self.name), dict(bundle.get("data") or {})
            )
        return Inputs(
            name=self.name,
            namespace=self.namespace,
            spec=self.spec,
            generation=self.generation,
            status=status,
            secrets=secrets,
            config_maps=config_maps,
            claims={
                name: claim(obj, self.claim_waits.get(name, ""))
                for name, obj in self.claims.items()
            },
            jobs=self.jobs,
            cluster=cluster,
        )


async def observe(reader: Reader, namespace: str, name: str) -> Observed | None:
    """What one pass needs; None when the Pulp does not exist or is being deleted."""
    pulp = await reader.pulp(namespace, name)
    if pulp is None or pulp["metadata"].get("deletionTimestamp"):
        return None
    try:
        spec: PulpSpec | None = PulpSpec.model_validate(pulp.get("spec") or {})
        error = name_problem(name)
    except ValidationError as exc:
        spec, error = None, describe_validation_error(exc, "spec")
    if error is not None:
        spec = None
    owned = await reader.owned(namespace, name)
    if spec is None or spec.unmanaged:
        return Observed(pulp, spec, error, owned)
    referenced: dict[ObjKey, Obj] = {}
    for ref in references(spec):
        obj = await reader.object(ref.kind, namespace, ref.name)
        if obj is not None:
            referenced[(ref.kind, ref.name)] = obj
    named = {n: o for (kind, n), o in referenced.items() if kind == "PersistentVolumeClaim"}
    for claim_name in statefulset_claims(owned):
        obj = await reader.object("PersistentVolumeClaim", namespace, claim_name)
        if obj is not None:
            named[claim_name] = obj
    observed = Observed(pulp, spec, error, owned, referenced, named)
    waits = {
        n: await reader.claim_waits(namespace, n)
        for n, obj in observed.claims.items()
        if (obj.get("status") or {}).get("phase", "Pending") == "Pending"
    }
    return replace(observed, claim_waits=waits)


def claim(obj: Mapping[str, Any], waiting: str = "") -> Claim:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return Claim(
        phase=status.get("phase", "Pending"),
        storage_class=spec.get("storageClassName"),
        capacity=(status.get("capacity") or {}).get("storage"),
        requested=((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        waiting=waiting,
    )


def job_state(job: Mapping[str, Any]) -> JobState:
    status = job.get("status") or {}
    name = job["metadata"]["name"]
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobState(name, "succeeded")
        if cond.get("type") == "Failed":
            return JobState(name, "failed", cond.get("message") or cond.get("reason") or "")
    return JobState(name, "running")


def secret_text(secret: Mapping[str, Any]) -> dict[str, str]:
    """The data of a Secret (as returned by the API) decoded to text."""
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out
