"""One reconcile pass for one Pulp: observe, build, apply, prune, write status.

The pass is idempotent and converges in one go: everything desired is built from the CR and the
objects it references by the pure builders in `desired`, applied with server-side apply under one
field manager where it differs from what runs, and the status is written once, only if it changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Secret
from pydantic import ValidationError

from . import desired, names, secretgen
from .api.pulp import PulpSpec, PulpStatus, unsupported_fields
from .desired.inputs import ClusterFacts, Inputs, JobState, Problem
from .desired.references import Reference, references
from .diff import normalise_secret, stamped, up_to_date
from .kube import OWNED_KINDS, Kube, Obj, PulpResource, kind_key, resource_class, secret_text
from .render import describe_validation_error
from .status import checks, conditions, single

log = logging.getLogger(__name__)

_REFERENCE_CLASSES: dict[str, type[NamespacedResource]] = {
    "Secret": Secret,
    "ConfigMap": ConfigMap,
    "PersistentVolumeClaim": PersistentVolumeClaim,
}
# Kinds never deleted by pruning: they hold data.
_NEVER_PRUNED = {"PersistentVolumeClaim"}


@dataclass
class Outcome:
    ready: bool = False
    requeue_after: float | None = None
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def owner_reference(pulp: Obj) -> dict[str, Any]:
    return {
        "apiVersion": pulp["apiVersion"],
        "kind": pulp["kind"],
        "name": pulp["metadata"]["name"],
        "uid": pulp["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_state(job: Obj) -> JobState:
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


class Reconciler:
    def __init__(self, kube: Kube, cluster: ClusterFacts | None = None) -> None:
        self.kube = kube
        self.cluster = cluster or ClusterFacts()

    async def reconcile(self, namespace: str, name: str) -> Outcome:
        pulp = await self.kube.get(PulpResource, name, namespace)
        if pulp is None or pulp["metadata"].get("deletionTimestamp"):
            return Outcome()
        meta = pulp["metadata"]
        generation = meta.get("generation", 1)
        status = PulpStatus.model_validate(pulp.get("status") or {})

        try:
            spec = PulpSpec.model_validate(pulp.get("spec") or {})
        except ValidationError as exc:
            message = describe_validation_error(exc, "spec")
            await self._write_status(
                pulp, status, single(status.conditions, "InvalidSpec", message, generation)
            )
            await self._event(pulp, "InvalidSpec", message, warning=True)
            return Outcome(problems=[Problem("InvalidSpec", message)])
        if spec.unmanaged:
            message = "spec.unmanaged is true: the operator changes nothing"
            await self._write_status(
                pulp,
                status,
                single(status.conditions, "Unmanaged", message, generation, status="Unknown"),
            )
            return Outcome()

        outcome = Outcome()
        if (
            status.observed_generation != generation
        ):  # once per spec change: no-op passes stay quiet
            for field in unsupported_fields(spec):
                message = f"{field} is not supported by this operator and is ignored"
                await self._event(pulp, "UnsupportedField", message, warning=True)
        secrets, config_maps, problems = await self._observe_references(namespace, spec)
        owner = owner_reference(pulp)
        for gen in desired.generated_secrets(name, namespace, spec):
            data = await self._ensure_generated(pulp, spec, gen, owner)
            secrets[gen.name] = data

        live = await self._observe_owned(namespace, name)
        jobs = {obj_name: job_state(obj) for (kind, obj_name), obj in live.items() if kind == "Job"}
        status = self._record_jobs(name, spec, status, live)
        inputs = Inputs(
            name=name,
            namespace=namespace,
            spec=spec,
            generation=generation,
            status=status,
            secrets=secrets,
            config_maps=config_maps,
            jobs=jobs,
            cluster=self.cluster,
        )
        built = desired.build(inputs)
        seen = {p.message for p in problems}
        problems.extend(p for p in built.problems if p.message not in seen)
        reference_problems = [p for p in problems if p.reason.endswith("NotFound")]
        if not reference_problems:
            await self._apply_all(pulp, spec, built, live, owner, outcome, problems)
            if not problems:
                await self._prune(pulp, spec, built, live, outcome)

        new_status = status.model_copy(
            update={
                "observed_generation": generation,
                "image": built.image,
                "version": built.image.rsplit(":", 1)[-1],
                "url": built.url,
                "admin_password_secret": spec.admin_password_secret or names.admin_password(name),
                "db_fields_encryption_secret": spec.db_fields_encryption_secret
                or names.db_fields_encryption(name),
                "container_token_secret": spec.container_token_secret or names.container_auth(name),
                "pulp_secret_key": spec.pulp_secret_key or names.secret_key(name),
                "storage_type": spec.storage_type,
                "ingress_type": spec.ingress_kind,
                "managed_cache_enabled": bool(
                    spec.cache and spec.cache.enabled and not spec.cache.external_cache_secret
                ),
            }
        )
        web_wanted = any(
            o["kind"] == "Deployment" and o["metadata"]["name"] == names.web(name)
            for o in built.objects
        )
        migrated = spec.disable_migrations or built.migration_job is None
        migration_message = (
            "migrations disabled"
            if spec.disable_migrations
            else f"Job {built.migration_job} migrates the database"
            if built.migration_job
            else f"database migrated for {status.migrated_image or built.image}"
        )
        component_checks = checks(
            name,
            spec,
            live,
            web_wanted=web_wanted,
            migrated=migrated,
            migration_message=migration_message,
        )
        new_conditions = conditions(status.conditions, component_checks, problems, generation)
        outcome.problems = problems
        outcome.ready = new_conditions[0].status == "True"
        await self._write_status(pulp, new_status, new_conditions)
        if problems:
            outcome.requeue_after = 30.0
        elif not outcome.ready:
            outcome.requeue_after = 10.0
        return outcome

    # --- observation -------------------------------------------------------------------------

    async def _observe_references(
        self, namespace: str, spec: PulpSpec
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], list[Problem]]:
        secrets: dict[str, dict[str, str]] = {}
        config_maps: dict[str, dict[str, str]] = {}
        problems: list[Problem] = []
        for ref in references(spec):
            cls = _REFERENCE_CLASSES[ref.kind]
            obj = await self.kube.get(cls, ref.name, namespace)
            if obj is None:
                problems.append(_missing(ref, namespace))
                continue
            data = secret_text(obj) if ref.kind == "Secret" else dict(obj.get("data") or {})
            missing = [k for k in ref.keys if k not in data]
            if missing:
                problems.append(
                    Problem(
                        f"{ref.kind}KeyNotFound",
                        f"{ref.describe()} has no key {', '.join(missing)}",
                        _condition_for(ref),
                    )
                )
            if ref.kind == "Secret":
                secrets[ref.name] = data
            elif ref.kind == "ConfigMap":
                config_maps[ref.name] = data
        return secrets, config_maps, problems

    async def _observe_owned(self, namespace: str, name: str) -> dict[tuple[str, str], Obj]:
        live: dict[tuple[str, str], Obj] = {}
        for cls in OWNED_KINDS:
            for obj in await self.kube.list_owned(cls, namespace, name):
                live[(kind_key(cls), obj["metadata"]["name"])] = obj
        # A user-provided file storage PVC is not labelled as ours but decides StorageReady.
        return live

    def _record_jobs(
        self, name: str, spec: PulpSpec, status: PulpStatus, live: dict[tuple[str, str], Obj]
    ) -> PulpStatus:
        """Remember what succeeded Jobs achieved in the status (the Jobs are pruned later)."""
        update: dict[str, Any] = {}
        migration = desired.migration_job_name(name, spec)
        password_prefix = names.admin_password_job(name, "")
        for (kind, job_name), job in live.items():
            if kind != "Job" or job_state(job).state != "succeeded":
                continue
            if job_name == migration:
                update["migrated_image"] = desired.spec_image(spec)
            elif job_name.startswith(password_prefix):
                update["admin_password_hash"] = job_name.removeprefix(password_prefix)
        return status.model_copy(update=update) if update else status

    # --- writes --------------------------------------------------------------------------------

    async def _ensure_generated(
        self, pulp: Obj, spec: PulpSpec, gen: desired.GeneratedSecret, owner: dict[str, Any]
    ) -> dict[str, str]:
        namespace = pulp["metadata"]["namespace"]
        live = await self.kube.get(Secret, gen.name, namespace)
        keep = gen.keep and spec.keep_data_on_delete
        if live is None:
            values = secretgen.generate(
                gen.kind, name=pulp["metadata"]["name"], namespace=namespace, spec=spec
            )
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": gen.name,
                    "namespace": namespace,
                    "labels": gen.labels,
                    "annotations": {names.KEEP_ANNOTATION: "true"} if keep else {},
                    "ownerReferences": [] if keep else [owner],
                },
                "stringData": values,
            }
            created = await self.kube.create(body)
            if created is not None:
                await self._event(pulp, "SecretCreated", f"generated Secret {gen.name}")
                return values
            live = await self.kube.get(Secret, gen.name, namespace)
            assert live is not None
        refs = live["metadata"].get("ownerReferences") or []
        owned = any(r.get("uid") == owner["uid"] for r in refs)
        if owned == keep:  # keep_data_on_delete changed: adopt or release the Secret
            others = [r for r in refs if r.get("uid") != owner["uid"]]
            await self.kube.patch_merge(
                Secret,
                gen.name,
                namespace,
                {"metadata": {"ownerReferences": others if keep else [*others, owner]}},
            )
        return secret_text(live)

    async def _apply_all(
        self,
        pulp: Obj,
        spec: PulpSpec,
        built: desired.Desired,
        live: dict[tuple[str, str], Obj],
        owner: dict[str, Any],
        outcome: Outcome,
        problems: list[Problem],
    ) -> None:
        for obj in built.objects:
            key = (obj["kind"], obj["metadata"]["name"])
            keep = key in built.keep and spec.keep_data_on_delete
            manifest = normalise_secret(obj)
            manifest["metadata"] = {
                **manifest["metadata"],
                "ownerReferences": [] if keep else [owner],
            }
            manifest = stamped(manifest)
            current = live.get(key)
            if obj["kind"] == "Job" and current is not None:
                continue  # Jobs are immutable: one per image/password, run once
            if up_to_date(current, manifest):
                continue
            try:
                live[key] = await self.kube.apply(manifest)
            except ApiError as exc:
                what = f"{obj['kind']} {obj['metadata']['name']}"
                message = f"{what} cannot be applied: {exc.status.message}"
                problems.append(Problem("ApplyFailed", message))
                await self._event(pulp, "ApplyFailed", message, warning=True)
                continue
            verb = "Created" if current is None else "Updated"
            outcome.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
            await self._event(pulp, verb, f"{verb.lower()} {obj['kind']} {obj['metadata']['name']}")

    async def _prune(
        self,
        pulp: Obj,
        spec: PulpSpec,
        built: desired.Desired,
        live: dict[tuple[str, str], Obj],
        outcome: Outcome,
    ) -> None:
        wanted = {(o["kind"], o["metadata"]["name"]) for o in built.objects}
        generated = {
            g.name
            for g in desired.generated_secrets(
                pulp["metadata"]["name"], pulp["metadata"]["namespace"], spec
            )
        }
        for (kind, obj_name), obj in list(live.items()):
            if (kind, obj_name) in wanted or kind in _NEVER_PRUNED:
                continue
            if kind == "Secret" and obj_name in generated:
                continue
            if names.KEEP_ANNOTATION in (obj["metadata"].get("annotations") or {}):
                continue
            await self.kube.delete(resource_class(obj), obj_name, pulp["metadata"]["namespace"])
            del live[(kind, obj_name)]
            outcome.deleted.append(f"{kind}/{obj_name}")
            await self._event(pulp, "Deleted", f"deleted {kind} {obj_name}: no longer wanted")

    async def _write_status(self, pulp: Obj, status: PulpStatus, conds: list[Any]) -> None:
        new = status.model_copy(update={"conditions": conds}).model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )
        old = pulp.get("status") or {}
        if new == old:
            return
        # Keys the model no longer carries are cleared explicitly (merge patch semantics).
        patch = {**dict.fromkeys(set(old) - set(new)), **new}
        await self.kube.patch_status(
            PulpResource, pulp["metadata"]["name"], pulp["metadata"]["namespace"], patch
        )

    async def _event(self, pulp: Obj, reason: str, message: str, warning: bool = False) -> None:
        log.log(
            logging.WARNING if warning else logging.INFO,
            "%s/%s: %s",
            pulp["metadata"]["namespace"],
            pulp["metadata"]["name"],
            message,
        )
        await self.kube.event(pulp, reason=reason, message=message, warning=warning)


def _condition_for(ref: Reference) -> str:
    field = ref.field
    if "database" in field:
        return "DatabaseReady"
    if "cache" in field:
        return "CacheReady"
    if "storage" in field or field == "spec.pvc":
        return "StorageReady"
    return "Ready"


def _missing(ref: Reference, namespace: str) -> Problem:
    return Problem(
        f"{ref.kind}NotFound",
        f"{ref.describe()} not found in namespace {namespace}",
        _condition_for(ref),
    )


__all__ = ["Outcome", "Reconciler"]
