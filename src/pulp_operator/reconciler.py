"""One reconcile pass for one Pulp: observe, generate secrets, build, apply, prune, write status.

The pass is idempotent and converges in one go. Everything it reads comes from one `Observed`
value (observe.py); everything desired is built from it by the pure builders in `desired`;
objects are applied with server-side apply under one field manager only where they differ from
what runs, independent ones concurrently; the status is a pure function of what was observed and
built (status.py), written once and only if it changed. A pass with nothing to change makes no
API request when it reads from the watch cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import PersistentVolumeClaim

from . import adopt, desired, metrics, names, secretgen, status, storage_growth
from .api.pulp import PulpStatus
from .desired import upgrade
from .desired.inputs import ClusterFacts, Problem
from .diff import normalise_secret, stamped, up_to_date
from .kube import Kube, Obj, PulpResource, resource_class
from .observe import ApiReader, Observed, Reader, observe

log = logging.getLogger(__name__)

# Kinds never deleted by pruning: they hold data.
_NEVER_PRUNED = {"PersistentVolumeClaim"}
# Apply order by dependency level: what pods mount or run as, then the workloads, then what
# points at the workloads. Objects of one level are applied concurrently.
_LEVELS = {
    # Without the rights to bind a Role, a RoleBinding is accepted only once its Role exists
    "RoleBinding": 1,
    "StatefulSet": 1,
    "Deployment": 1,
    "Job": 1,
    "Ingress": 2,
    "Route": 2,
    "PodDisruptionBudget": 2,
    "HorizontalPodAutoscaler": 2,
}
_CONCURRENT_APPLIES = 8


@dataclass
class Outcome:
    ready: bool = False
    requeue_after: float | None = None
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Applied:
    """What the apply and prune steps changed, and what they could not do."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    """Objects another manager created (the upstream operator), taken over."""
    deleted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    results: dict[tuple[str, str], Obj] = field(default_factory=dict)
    """The objects as the API returned them after the apply, by (kind, name)."""


def owner_reference(pulp: Obj) -> dict[str, Any]:
    return {
        "apiVersion": pulp["apiVersion"],
        "kind": pulp["kind"],
        "name": pulp["metadata"]["name"],
        "uid": pulp["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        cluster: ClusterFacts | None = None,
        reader: Reader | None = None,
        on_write: Callable[[Obj], None] | None = None,
    ) -> None:
        self.kube = kube
        self.cluster = cluster or ClusterFacts()
        self.reader: Reader = reader or ApiReader(kube)
        self.on_write = on_write
        """Called with every object a write returned (keeps the watch cache ahead of events)."""
        self._written: dict[tuple[str, str, str], str] = {}
        """(namespace, kind, name) -> the resourceVersion the last apply of the object returned."""

    async def reconcile(self, namespace: str, name: str) -> Outcome:
        observed = await observe(self.reader, namespace, name)
        if observed is None:
            metrics.forget_pulp(namespace, name)
            return Outcome()
        if observed.spec is None or observed.spec.unmanaged:
            return await self._hold(observed)
        observed = _takeover_spec(observed)
        observed, generated = await self._generate_secrets(observed)
        spec = observed.spec
        assert spec is not None
        jobs_done = status.with_job_results(observed.name, spec, observed.status, observed.jobs)
        inputs = observed.inputs(jobs_done, self.cluster)
        built = desired.build(inputs)
        growth = await self._storage_growth(observed)
        applied = Applied()
        if not any(p.blocks_apply for p in built.problems):
            applied = await self._apply(observed, built, growth)
            if not built.problems and not applied.problems:
                await self._prune(observed, built, applied)
            await self._expand_claims(observed, growth, applied)
        applied.created[:0] = generated  # one Event tells both
        problems = [*built.problems, *applied.problems, *growth.problems()]
        after = observed.with_owned(applied.results)
        new = status.compute(
            after.inputs(jobs_done, self.cluster), after.owned, built, problems, status.now()
        )
        await self._write_status(observed, new)
        await self._announce(observed, new, applied)
        ready = new.conditions[0].status == "True"
        return Outcome(
            ready=ready,
            requeue_after=_requeue_after(problems, after),
            applied=[*applied.created, *applied.updated],
            deleted=applied.deleted,
            problems=problems,
        )

    # --- steps ---------------------------------------------------------------------------------

    async def _hold(self, observed: Observed) -> Outcome:
        """An invalid or unmanaged Pulp: say why in the status, change nothing else."""
        if observed.spec is None:
            message = observed.spec_error or "spec is invalid"
            new = status.held(
                observed.status, observed.generation, "InvalidSpec", message, status.now()
            )
            problem = Problem("spec", "spec", "InvalidSpec", message)
            await self._write_status(observed, new)
            await self._announce(observed, new, Applied())
            return Outcome(problems=[problem])
        message = "spec.unmanaged is true: the operator changes nothing"
        new = status.held(
            observed.status, observed.generation, "Unmanaged", message, status.now(), "Unknown"
        )
        await self._write_status(observed, new)
        return Outcome()

    async def _generate_secrets(self, observed: Observed) -> tuple[Observed, list[str]]:
        """Create the generated Secrets that do not exist; never regenerate one that does.
        Returns what was observed with them, and the ones created."""
        spec = observed.spec
        assert spec is not None
        owner = owner_reference(observed.pulp)
        created: list[str] = []

        async def one(gen: desired.GeneratedSecret) -> Obj | None:
            keep = gen.keep and spec.keep_data_on_delete
            live = observed.live("Secret", gen.name)
            if live is None:
                live = await self._create_secret(observed, gen, owner, keep, created)
            if live is not None:
                live = await self._adopt_or_release(observed, live, gen.labels, owner, keep)
            return live

        wanted = desired.generated_secrets(observed.name, observed.namespace, spec)
        results = await asyncio.gather(*(one(gen) for gen in wanted))
        found = {("Secret", g.name): live for g, live in zip(wanted, results, strict=True) if live}
        return observed.with_owned(found), created

    async def _create_secret(
        self,
        observed: Observed,
        gen: desired.GeneratedSecret,
        owner: dict[str, Any],
        keep: bool,
        created: list[str],
    ) -> Obj | None:
        assert observed.spec is not None
        values = secretgen.generate(
            gen.kind, name=observed.name, namespace=observed.namespace, spec=observed.spec
        )
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": gen.name,
                "namespace": observed.namespace,
                "labels": gen.labels,
                "annotations": {names.KEEP_ANNOTATION: "true"} if keep else {},
                "ownerReferences": [] if keep else [owner],
            },
            "stringData": values,
        }
        result = await self.kube.create(body)
        if result is None:
            # It exists after all: the cache was behind, or the upstream operator (or a deleted
            # Pulp) left it, unlabelled. Used as it is, never regenerated.
            result = await self.kube.get(resource_class(body), gen.name, observed.namespace)
        else:
            created.append(f"Secret {gen.name}")
        self._wrote(result)
        return result

    async def _adopt_or_release(
        self,
        observed: Observed,
        live: Obj,
        labels: dict[str, str],
        owner: dict[str, Any],
        keep: bool,
    ) -> Obj:
        """Our labels on a generated Secret (one the upstream operator made gets them), and an
        ownerReference only when it goes with the Pulp (keep_data_on_delete)."""
        patch = adopt.secret_adoption(live, labels, owner, keep)
        if patch is None:
            return live
        patched = await self.kube.patch_merge(
            resource_class(live), live["metadata"]["name"], observed.namespace, patch
        )
        self._wrote(patched)
        return patched

    async def _apply(
        self, observed: Observed, built: desired.Desired, growth: storage_growth.Plan
    ) -> Applied:
        assert observed.spec is not None
        owner = owner_reference(observed.pulp)
        applied = Applied()
        limit = asyncio.Semaphore(_CONCURRENT_APPLIES)
        pending: dict[int, list[tuple[Obj, Obj | None]]] = {}
        # Objects not in the cache are not labelled as ours: the upstream operator's, or not there
        # yet. They are read by name, all at once (one round trip, not one per object).
        unseen = [
            obj
            for obj in built.objects
            if obj["kind"] != "Job" and observed.live(obj["kind"], obj["metadata"]["name"]) is None
        ]

        async def read(obj: Obj) -> Obj | None:
            async with limit:
                return await self.kube.get(
                    resource_class(obj), obj["metadata"]["name"], observed.namespace
                )

        found = dict(
            zip(
                ((o["kind"], o["metadata"]["name"]) for o in unseen),
                await asyncio.gather(*(read(o) for o in unseen)),
                strict=True,
            )
        )
        for obj in built.objects:
            key = (obj["kind"], obj["metadata"]["name"])
            keep = key in built.keep and observed.spec.keep_data_on_delete
            current = observed.live(*key)
            if obj["kind"] == "Job" and current is not None:
                continue  # Jobs are immutable: one per image/password, run once
            if current is None:
                current = found.get(key)
            carried = adopt.carry_immutable(_claim_template(obj, current, growth), current)
            applied.problems.extend(carried.problems)
            if carried.manifest is None:
                continue
            manifest = normalise_secret(carried.manifest)
            decision = growth.decision(key[1]) if key[0] == "PersistentVolumeClaim" else None
            if decision is not None:
                manifest = storage_growth.sized(manifest, decision.size)
            manifest["metadata"] = {
                **manifest["metadata"],
                "ownerReferences": [] if keep else [owner],
            }
            manifest = stamped(manifest)
            written = self._written.get((observed.namespace, *key))
            if up_to_date(current, manifest, written):
                continue
            pending.setdefault(_LEVELS.get(obj["kind"], 0), []).append((manifest, current))

        async def one(manifest: Obj, current: Obj | None) -> None:
            what = f"{manifest['kind']} {manifest['metadata']['name']}"
            async with limit:
                try:
                    if adopt.foreign(current, observed.name):
                        assert current is not None
                        ops = adopt.takeover_patch(manifest, current, owner["uid"])
                        await self.kube.patch_json(
                            resource_class(manifest), manifest["metadata"]["name"],
                            observed.namespace, ops,
                        )  # fmt: skip
                    result = await self.kube.apply(manifest)
                except ApiError as exc:
                    message = f"{what} cannot be applied: {exc.status.message}"
                    applied.problems.append(Problem(what, "apply", "ApplyFailed", message))
                    return
            self._wrote(result)
            applied.results[(manifest["kind"], manifest["metadata"]["name"])] = result
            if adopt.foreign(current, observed.name):
                applied.adopted.append(what)
            else:
                (applied.updated if current is not None else applied.created).append(what)

        for level in sorted(pending):
            await asyncio.gather(*(one(m, c) for m, c in pending[level]))
        return applied

    async def _storage_growth(self, observed: Observed) -> storage_growth.Plan:
        """The claims the spec sizes and their PVCs; and the claim template a new database
        StatefulSet gets (the one whose PVC exists)."""
        spec = observed.spec
        assert spec is not None
        ns, name = observed.namespace, observed.name
        template = None
        if not spec.database.external_db_secret and not spec.database.pvc:
            candidates = [
                names.database_claim(name, claim_template)
                for claim_template in (None, names.LEGACY_DATABASE_VOLUME_CLAIM_TEMPLATE)
            ]
            sts, *claims = await asyncio.gather(
                self._live_or_read(observed, StatefulSet, names.database(name)),
                *(self.reader.object("PersistentVolumeClaim", ns, c) for c in candidates),
            )
            existing = set()
            if sts is None:
                existing = {c for c, claim in zip(candidates, claims, strict=True) if claim}
            template = adopt.database_claim_template(name, sts, existing)
        decisions = {}
        for claim in storage_growth.claims(name, spec, template):
            pvc = observed.claims.get(claim.name) or await self.reader.object(
                "PersistentVolumeClaim", ns, claim.name
            )
            decisions[claim.name] = storage_growth.decide(claim, pvc)
        return storage_growth.Plan(template, decisions)

    async def _live_or_read(self, observed: Observed, cls: type, name: str) -> Obj | None:
        """An owned object from the cache, else by name (not labelled as ours, or not there)."""
        live = observed.live(cls.__name__, name)
        if live is not None:
            return live
        return await self.kube.get(cls, name, observed.namespace)

    async def _expand_claims(
        self, observed: Observed, growth: storage_growth.Plan, applied: Applied
    ) -> None:
        """Grow the claims the spec asks more of: a patch of the size alone (the API server
        refuses it when the StorageClass does not allow expansion: a problem naming the field)."""
        for decision in growth.expansions():
            assert decision.target is not None
            claim = decision.claim.name
            try:
                result = await self.kube.patch_merge(
                    PersistentVolumeClaim,
                    claim,
                    observed.namespace,
                    storage_growth.expansion_patch(decision.target),
                )
            except ApiError as exc:
                applied.problems.append(storage_growth.refused(decision, exc.status.message or ""))
                continue
            self._wrote(result)
            applied.updated.append(f"PersistentVolumeClaim {claim} (to {decision.target})")

    async def _prune(self, observed: Observed, built: desired.Desired, applied: Applied) -> None:
        assert observed.spec is not None
        wanted = {(o["kind"], o["metadata"]["name"]) for o in built.objects}
        generated = {
            g.name
            for g in desired.generated_secrets(observed.name, observed.namespace, observed.spec)
        }
        for (kind, obj_name), obj in observed.owned.items():
            if (kind, obj_name) in wanted or kind in _NEVER_PRUNED:
                continue
            if kind == "Secret" and obj_name in generated:
                continue
            if names.KEEP_ANNOTATION in (obj["metadata"].get("annotations") or {}):
                continue
            await self.kube.delete(resource_class(obj), obj_name, observed.namespace)
            self._written.pop((observed.namespace, kind, obj_name), None)
            applied.deleted.append(f"{kind} {obj_name}")

    async def _write_status(self, observed: Observed, new: PulpStatus) -> None:
        metrics.pulp_conditions(observed.namespace, observed.name, new.conditions)
        body = new.model_dump(by_alias=True, exclude_none=True, mode="json")
        old = observed.pulp.get("status") or {}
        if body == old:
            return
        # Keys the model no longer carries are cleared explicitly (merge patch semantics).
        patch = {**dict.fromkeys(set(old) - set(body)), **body}
        result = await self.kube.patch_status(
            PulpResource, observed.name, observed.namespace, patch
        )
        self._wrote(result)

    async def _announce(self, observed: Observed, new: PulpStatus, applied: Applied) -> None:
        """Events for what changed: objects written, and a Ready condition that changed reason."""
        pulp = observed.pulp
        for reason, message, warning in upgrade.phase_events(observed.status, new):
            await self._event(pulp, reason, message, warning=warning)
        for reason, items in (
            ("Created", applied.created),
            ("Adopted", applied.adopted),
            ("Updated", applied.updated),
            ("Deleted", applied.deleted),
        ):
            if items:
                await self._event(pulp, reason, f"{reason.lower()} {_listing(items)}")
        for problem in applied.problems:
            await self._event(pulp, problem.reason, problem.message, warning=True)
        before = next((c for c in observed.status.conditions if c.type == "Ready"), None)
        after = new.conditions[0]
        if after.status == "True":
            if before is None or before.status != "True":
                await self._event(pulp, "Ready", after.message)
            return
        # A problem is told once per spec generation, not on every pass.
        if before is not None and (before.status, before.reason, before.observed_generation) == (
            after.status,
            after.reason,
            after.observed_generation,
        ):
            return
        if after.reason not in {p.reason for p in applied.problems} and not _transient(new):
            await self._event(pulp, after.reason, after.message, warning=True)

    # --- helpers -------------------------------------------------------------------------------

    def _wrote(self, obj: Obj | None) -> None:
        if obj is None:
            return
        meta = obj["metadata"]
        self._written[(meta.get("namespace", ""), obj["kind"], meta["name"])] = meta.get(
            "resourceVersion", ""
        )
        if self.on_write is not None:
            self.on_write(obj)

    async def _event(self, pulp: Obj, reason: str, message: str, warning: bool = False) -> None:
        log.log(
            logging.WARNING if warning else logging.INFO,
            "%s/%s: %s",
            pulp["metadata"]["namespace"],
            pulp["metadata"]["name"],
            message,
        )
        await self.kube.event(pulp, reason=reason, message=message, warning=warning)


def _takeover_spec(observed: Observed) -> Observed:
    """The upstream operator writes the names of the Secrets it generates into the spec; such a
    Secret (its labels say an operator generated it for this Pulp) is taken as a generated one:
    kept on delete, never regenerated, labelled as ours."""
    spec = observed.spec
    assert spec is not None
    named = adopt.defaulted_secret_fields(observed.name, spec)
    if not named:
        return observed
    labels = {
        field_name: (observed.referenced.get(("Secret", secret)) or {})
        .get("metadata", {})
        .get("labels")
        or {}
        for field_name, secret in named.items()
    }
    return replace(observed, spec=adopt.generated_secret_spec(observed.name, spec, labels))


def _claim_template(obj: Obj, current: Obj | None, growth: storage_growth.Plan) -> Obj:
    """A new database StatefulSet takes the claim template whose PVC exists already."""
    if obj["kind"] == "StatefulSet" and current is None and growth.database_template:
        return adopt.rename_claim_template(obj, growth.database_template)
    return obj


def _requeue_after(problems: Sequence[Problem], after: Observed) -> float | None:
    """When to look again without an event: failed writes are retried; a claim still Pending
    may be explained by new Events, which are not watched. Everything else that can change is
    watched and comes back as an event."""
    if any(p.kind == "apply" for p in problems):
        return 30.0
    pending = [
        n
        for n, c in after.claims.items()
        if (c.get("status") or {}).get("phase", "Pending") == "Pending"
    ]
    if any(n not in after.claim_waits for n in pending):
        return 5.0  # claims new in this pass: soon, for the first word of their provisioner
    if pending:
        return 60.0
    return None


def _transient(new: PulpStatus) -> bool:
    """Ready is False only because something is still on its way (no Degraded)."""
    degraded = next((c for c in new.conditions if c.type == "Degraded"), None)
    return degraded is not None and degraded.status == "False"


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items)


__all__ = ["Outcome", "Reconciler", "owner_reference"]
