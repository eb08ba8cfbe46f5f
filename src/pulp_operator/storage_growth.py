"""Growing the claims a Pulp's spec sizes: expand where the StorageClass allows it, otherwise keep
the claim's size and say which field cannot take effect.

Pure: decided from the spec and the live PVCs. Three claims are sized by the spec: the file
storage PVC (file_storage_size), the database's (database.postgres_storage_requirements; it
belongs to the StatefulSet's immutable volumeClaimTemplate) and Redis's
(cache.redis_resource_requirements.requests.storage). Claims the user provides (pvc, database.pvc,
cache.pvc) are theirs to size.

A claim is applied with the size it has; growing it is a patch of its size alone, which the API
server accepts when the claim's StorageClass allows expansion (its PersistentVolumeClaimResize
admission): the operator needs no cluster-scoped right to read StorageClasses, and a refusal
becomes a problem naming the field (refused()).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import names
from .api.pulp import PulpSpec
from .desired.cache import DEFAULT_SIZE as REDIS_DEFAULT_SIZE
from .desired.inputs import Problem
from .desired.storage import DEFAULT_SIZE as FILE_DEFAULT_SIZE
from .diff import quantity

Obj = Mapping[str, Any]
Action = Literal["keep", "expand", "refuse", "wait"]
_SHRUG = "the API server refused: "


@dataclass(frozen=True)
class Claim:
    """A PVC whose size the spec sets."""

    name: str
    field: str
    """The spec field that sizes it, as users write it."""
    size: str
    storage_class: str | None
    """The class the spec asks for (None: the cluster default)."""
    access_mode: str | None
    condition: str
    """The component condition a problem with it belongs to."""
    class_field: str | None = None
    access_field: str | None = None


@dataclass(frozen=True)
class Decision:
    claim: Claim
    action: Action
    """keep: nothing to do (or being resized); expand: grow the claim to `target`; refuse: the
    claim keeps its size and `problems` say why; wait: not bound yet, grown once bound."""
    size: str
    """The size the claim is applied with: the spec's when it is created, its own otherwise."""
    problems: tuple[Problem, ...] = ()
    progress: str | None = None
    """A resize under way (for the component condition's message)."""
    target: str | None = None
    """The size to grow it to (expand)."""


def claims(name: str, spec: PulpSpec, database_template: str | None) -> list[Claim]:
    """The claims the spec sizes; database_template names the database StatefulSet's claim
    template (None: no managed database claim)."""
    out: list[Claim] = []
    if spec.file_storage_storage_class:
        out.append(
            Claim(
                names.file_storage(name),
                "spec.file_storage_size",
                spec.file_storage_size or FILE_DEFAULT_SIZE,
                spec.file_storage_storage_class,
                spec.file_storage_access_mode or "ReadWriteMany",
                "StorageReady",
                "spec.file_storage_storage_class",
                "spec.file_storage_access_mode",
            )
        )
    db = spec.database
    if database_template and not db.external_db_secret and not db.pvc:
        out.append(
            Claim(
                names.database_claim(name, database_template),
                "spec.database.postgres_storage_requirements",
                db.postgres_storage_requirements,
                db.postgres_storage_class,
                None,
                "DatabaseReady",
                "spec.database.postgres_storage_class" if db.postgres_storage_class else None,
            )
        )
    cache = spec.cache
    if (
        cache is not None
        and cache.enabled
        and not cache.external_cache_secret
        and cache.redis_storage_class
        and not cache.pvc
    ):
        resources = cache.redis_resource_requirements
        requests = (resources.requests if resources else None) or {}
        out.append(
            Claim(
                names.redis_data(name),
                "spec.cache.redis_resource_requirements.requests.storage",
                requests.get("storage", REDIS_DEFAULT_SIZE),
                cache.redis_storage_class,
                "ReadWriteOnce",
                "CacheReady",
                "spec.cache.redis_storage_class",
            )
        )
    return out


def _size(pvc: Obj, *path: str) -> str | None:
    node: Any = pvc
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return str(node) if node is not None else None


def _bytes(text: str) -> Any:
    value = quantity(text)
    if value is None:
        raise ValueError(f"not a quantity: {text}")
    return value


def _fixed_fields(claim: Claim, pvc: Obj) -> list[Problem]:
    """Class and access mode cannot change once the claim exists."""
    spec = pvc.get("spec") or {}
    out = []
    have_class = spec.get("storageClassName")
    if claim.class_field and claim.storage_class and have_class != claim.storage_class:
        out.append(
            Problem(
                claim.class_field,
                "spec",
                "ImmutableField",
                f"{claim.class_field}: PersistentVolumeClaim {claim.name} has StorageClass"
                f" {have_class or '(none)'}, which cannot change; it keeps it (move the data to a"
                " new claim to switch)",
                claim.condition,
            )
        )
    modes = spec.get("accessModes") or []
    if claim.access_field and claim.access_mode and modes and claim.access_mode not in modes:
        out.append(
            Problem(
                claim.access_field,
                "spec",
                "ImmutableField",
                f"{claim.access_field}: PersistentVolumeClaim {claim.name} has access mode"
                f" {', '.join(modes)}, which cannot change; it keeps it",
                claim.condition,
            )
        )
    return out


def decide(claim: Claim, pvc: Obj | None) -> Decision:
    """What to do with one claim, given its live PVC."""
    if pvc is None:
        return Decision(claim, "keep", claim.size)
    fixed = tuple(_fixed_fields(claim, pvc))
    have = _size(pvc, "spec", "resources", "requests", "storage") or claim.size
    capacity = _size(pvc, "status", "capacity", "storage")
    want_b, have_b = _bytes(claim.size), _bytes(have)
    if want_b == have_b:
        progress = None
        if capacity is not None and _bytes(capacity) < have_b:
            progress = f"PersistentVolumeClaim {claim.name} is being expanded to {have}"
        return Decision(claim, "keep", have, fixed, progress)
    if want_b < have_b:
        problem = Problem(
            claim.field,
            "spec",
            "StorageShrinkRefused",
            f"{claim.field}: {claim.size} is smaller than PersistentVolumeClaim {claim.name}"
            f" ({have}): a volume cannot shrink; the claim keeps {have}",
            claim.condition,
        )
        return Decision(claim, "refuse", have, (*fixed, problem))
    if (pvc.get("status") or {}).get("phase") != "Bound":
        return Decision(
            claim,
            "wait",
            have,
            fixed,
            f"PersistentVolumeClaim {claim.name} is not bound yet; it grows to {claim.size} then",
        )
    return Decision(
        claim,
        "expand",
        have,
        fixed,
        f"PersistentVolumeClaim {claim.name} is being expanded to {claim.size}",
        claim.size,
    )


def refused(decision: Decision, reason: str) -> Problem:
    """The problem when the API server refuses to grow the claim (its StorageClass does not allow
    expansion, or it has none)."""
    claim = decision.claim
    return Problem(
        claim.field,
        "platform",
        "StorageExpansionUnsupported",
        f"{claim.field}: {decision.target} asks to grow PersistentVolumeClaim {claim.name} from"
        f" {decision.size}, but {_SHRUG}{reason.rstrip('.')} (its StorageClass must have"
        f" allowVolumeExpansion: true); the claim keeps {decision.size}",
        claim.condition,
    )


def sized(manifest: dict[str, Any], size: str) -> dict[str, Any]:
    """A PVC manifest requesting `size`."""
    out = {**manifest, "spec": {**manifest["spec"]}}
    resources = dict(out["spec"].get("resources") or {})
    resources["requests"] = {**(resources.get("requests") or {}), "storage": size}
    out["spec"]["resources"] = resources
    return out


def expansion_patch(size: str) -> dict[str, Any]:
    return {"spec": {"resources": {"requests": {"storage": size}}}}


@dataclass(frozen=True)
class Plan:
    """The claims of one pass: the database's claim template and a decision per claim."""

    database_template: str | None = None
    decisions: Mapping[str, Decision] | None = None

    def decision(self, claim: str) -> Decision | None:
        return (self.decisions or {}).get(claim)

    def problems(self) -> list[Problem]:
        return [p for d in (self.decisions or {}).values() for p in d.problems]

    def expansions(self) -> list[Decision]:
        return [d for d in (self.decisions or {}).values() if d.action == "expand"]
