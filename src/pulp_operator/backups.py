"""One pass of a PulpBackup: start a run when one is due, advance it by a step, record what its
Jobs did.

A run is one dated directory in the backup claim, made in these steps:

    Prepare                 the Pulp, the claim (created when the spec names none), the Secrets and
                            ConfigMaps it uses
    DetectDatabaseVersion   external databases only: a Job asks the server its version, to pick
                            a pg_dump of that major version
    DumpDatabase            init container of the backup Job: pg_dump
    CopyFiles               init container: tar of the file storage (PVC storage only)
    WriteObjects            the Job's container: the Pulp CR, Secrets, ConfigMaps, backup.json
                            (the marker of a complete backup) and, with keep, the pruning

Everything a run needs to go on lives in status.run (directory, claim, steps done), and the Jobs
have names derived from it: a pass after an operator restart carries on where the last one
stopped, never redoes a finished step and leaves a running Job alone. A finished one-shot
PulpBackup does nothing more; re-applying it changes nothing.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Secret
from pydantic import ValidationError

from . import names, runs, schedule
from .api.backup import BackupEntry, BackupRun, PulpBackupSpec, PulpBackupStatus, StepRecord
from .api.pulp import PulpSpec
from .api.validation import describe_validation_error
from .desired import backup as build
from .kube import Kube, Obj, PulpBackupResource, PulpResource

log = logging.getLogger(__name__)

CONDITION = "BackupComplete"
POLL_SECONDS = 30.0
"""Re-check of a running Job when no watch event comes (events normally arrive first)."""
MAX_WAIT_SECONDS = 3600.0


def storage_note(pulp: str, spec: PulpSpec) -> str:
    claim = build.files_claim(pulp, spec)
    if claim:
        return f"file storage copied (PersistentVolumeClaim {claim})"
    return (
        f"{spec.storage_type} object storage: the bucket is not part of the backup; back it up"
        " with the storage provider's tools"
    )


class Backups:
    def __init__(self, kube: Kube, clock: Callable[[], datetime.datetime] = runs.now) -> None:
        self.kube = kube
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> float | None:
        obj = await self.kube.get(PulpBackupResource, name, namespace)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return await _Pass(self.kube, obj, self.clock()).run()


class _Pass(runs.RunPass[PulpBackupStatus]):
    resource = PulpBackupResource
    condition_type = CONDITION
    status_model = PulpBackupStatus

    # --- the pass --------------------------------------------------------------------------

    async def run(self) -> float | None:
        try:
            spec = PulpBackupSpec.model_validate(self.obj.get("spec") or {})
            if spec.backup_pvc_namespace not in (None, "", self.namespace):
                raise ValueError(
                    f"spec.backup_pvc_namespace: must be {self.namespace} (the PulpBackup's"
                    " namespace): a pod can mount only claims of its own namespace"
                )
        except (ValidationError, ValueError) as exc:
            message = (
                describe_validation_error(exc, "spec")
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            if self.status.observed_generation != self.generation:
                await runs.event(self.kube, self.obj, "InvalidSpec", message, warning=True)
            self._condition("False", "InvalidSpec", message)
            self.status.phase = "Failed"
            await self._write()
            return None
        delay = await self._decide(spec)
        await self._write()
        return delay

    async def _decide(self, spec: PulpBackupSpec) -> float | None:
        run = self.status.run
        if run is not None and run.result == "Running":
            self.status.phase = "Running"
            try:
                return await self._advance(spec, run)
            except runs.Failure as failure:
                await self._fail(spec, run, failure)
                return self._after_run(spec)
        if spec.schedule:
            return await self._scheduled(spec, spec.schedule)
        if run is None or (run.result == "Failed" and run.generation != self.generation):
            await self._start(spec, None)
            return 0.0
        return None  # a one-shot backup that ran: nothing more to do

    # --- starting and scheduling -------------------------------------------------------------

    async def _scheduled(self, spec: PulpBackupSpec, expression: str) -> float:
        since = max(
            t
            for t in (
                self.status.last_schedule_time,
                self.status.run.start_time if self.status.run else None,
                self.obj["metadata"].get("creationTimestamp"),
            )
            if t
        )
        after = build.parse_time(since)
        slot = schedule.latest_due(expression, after, self.now)
        if slot is not None:
            await self._start(spec, slot)
            return 0.0
        upcoming = schedule.next_after(expression, max(after, self.now))
        self.status.next_schedule_time = build.utc(upcoming)
        self.status.phase = "Scheduled"
        if self.status.run is None:
            self._condition(
                "Unknown", "Scheduled", f"the first backup runs at {build.utc(upcoming)}"
            )
        wait = (upcoming - self.now).total_seconds() + 1
        return min(max(wait, 1.0), MAX_WAIT_SECONDS)

    async def _start(self, spec: PulpBackupSpec, slot: datetime.datetime | None) -> None:
        directory = build.run_directory(self.name, slot or self.now)
        claim = spec.backup_pvc or build.default_claim(self.name)
        await self._delete_previous_runs(directory)
        self.status.run = BackupRun(
            directory=directory,
            claim=claim,
            pulp=spec.deployment_name,
            generation=self.generation,
            start_time=build.utc(self.now),
            scheduled_time=build.utc(slot) if slot else None,
        )
        if slot is not None:
            self.status.last_schedule_time = build.utc(slot)
        self.status.phase = "Running"
        self.status.step = "Prepare"
        if self.status.last_successful_time is None:
            self._condition("False", "Running", f"backup {directory} started")
        await runs.event(
            self.kube,
            self.obj,
            "BackupStarted",
            f"backing up Pulp {spec.deployment_name} into {claim}/{directory}",
        )

    async def _delete_previous_runs(self, directory: str) -> None:
        """Jobs and object Secrets of earlier runs (their outcome is in the status already)."""
        labels = {build.BACKUP_LABEL: self.name}
        for cls in (Job, Secret):
            for old in await self.kube.list_labelled(cls, self.namespace, labels):
                if not old["metadata"]["name"].startswith(directory):
                    await self.kube.delete(cls, old["metadata"]["name"], self.namespace)

    # --- a run, step by step -----------------------------------------------------------------

    async def _advance(self, spec: PulpBackupSpec, run: BackupRun) -> float | None:
        if not any(s.name == "Prepare" for s in run.steps):
            _, pulp_spec = await self._pulp(run)
            await self._prepare(spec, run, pulp_spec)
            return 0.0
        if run.database_image is None:  # an external database: its version decides the client
            return await self._detect(spec, run)
        return await self._backup_job(spec, run)

    async def _pulp(self, run: BackupRun) -> tuple[Obj, PulpSpec]:
        pulp = await self.kube.get(PulpResource, run.pulp, self.namespace)
        if pulp is None:
            raise runs.Failure(
                "Prepare",
                f"Pulp {run.pulp} not found in namespace {self.namespace}",
                "set spec.deployment_name to a Pulp of this namespace",
            )
        try:
            return pulp, PulpSpec.model_validate(pulp.get("spec") or {})
        except ValidationError as exc:
            raise runs.Failure(
                "Prepare",
                f"Pulp {run.pulp} has an invalid spec: {describe_validation_error(exc, 'spec')}",
                "fix the Pulp first",
            ) from None

    async def _prepare(self, spec: PulpBackupSpec, run: BackupRun, pulp_spec: PulpSpec) -> None:
        if spec.backup_pvc:
            if await self.kube.get(PersistentVolumeClaim, spec.backup_pvc, self.namespace) is None:
                raise runs.Failure(
                    "Prepare",
                    f"PersistentVolumeClaim {spec.backup_pvc} (spec.backup_pvc) not found in"
                    f" namespace {self.namespace}",
                    "create it, or leave spec.backup_pvc unset to have one created",
                )
        else:
            claim = build.backup_claim(
                self.name,
                self.namespace,
                spec.backup_storage_requirements,
                spec.backup_storage_class,
            )
            if await self.kube.get(PersistentVolumeClaim, run.claim, self.namespace) is None:
                await self.kube.create(claim)
                self.events.append(
                    ("ClaimCreated", f"created PersistentVolumeClaim {run.claim}", False)
                )
        await self._collect(spec, run, pulp_spec)  # fails early when a Secret is missing
        run.pulp_image = f"{pulp_spec.image}:{pulp_spec.image_version}"
        if not pulp_spec.database.external_db_secret:
            run.database_image = spec.postgres_image or pulp_spec.database.postgres_image
        self.status.deployment_name = run.pulp
        self.status.backup_claim = run.claim
        self.status.backup_namespace = self.namespace
        self.status.admin_password_secret = build.secret_roles(
            run.pulp, pulp_spec, self._overrides(spec)
        )["admin_password_secret"]
        self.status.storage = storage_note(run.pulp, pulp_spec)
        self._done(run, "Prepare", f"backing up into {run.claim}/{run.directory}")

    def _overrides(self, spec: PulpBackupSpec) -> dict[str, str]:
        pairs = {
            "admin_password_secret": spec.admin_password_secret,
            "pulp_secret_key": spec.pulp_secret_key,
            build.POSTGRES_ROLE: spec.postgres_configuration_secret,
        }
        return {k: v for k, v in pairs.items() if v}

    async def _collect(
        self, spec: PulpBackupSpec, run: BackupRun, pulp_spec: PulpSpec
    ) -> tuple[dict[str, Obj], dict[str, Obj]]:
        secrets: dict[str, Obj] = {}
        for role, secret in build.secret_roles(run.pulp, pulp_spec, self._overrides(spec)).items():
            found = await self.kube.get(Secret, secret, self.namespace)
            if found is None:
                raise runs.Failure(
                    "Prepare",
                    f"Secret {secret} ({role} of Pulp {run.pulp}) not found",
                    "a backup holds every Secret the Pulp uses: create it or fix the Pulp",
                )
            secrets[role] = found
        config_maps: dict[str, Obj] = {}
        for role, cm in build.config_map_roles(pulp_spec).items():
            found = await self.kube.get(ConfigMap, cm, self.namespace)
            if found is None:
                raise runs.Failure(
                    "Prepare",
                    f"ConfigMap {cm} ({role} of Pulp {run.pulp}) not found",
                    "create it or fix the Pulp",
                )
            config_maps[role] = found
        return secrets, config_maps

    def _parts(
        self, job_name: str, spec: PulpBackupSpec, node: str | None = None
    ) -> build.JobParts:
        return build.JobParts(
            name=job_name,
            namespace=self.namespace,
            labels=build.backup_labels(self.name),
            owner=runs.owner_reference(self.obj),
            affinity=build.node_affinity(spec.affinity, node),
        )

    async def _detect(self, spec: PulpBackupSpec, run: BackupRun) -> float:
        job = f"{run.directory}-db"
        outcome = await runs.job_outcome(self.kube, self.namespace, job)
        if outcome.state == "missing":
            _, pulp_spec = await self._pulp(run)
            manifest = build.version_job(
                self._parts(job, spec),
                pulp_spec.database.postgres_image,
                build.database_env(run.pulp, pulp_spec),
            )
            await self.kube.create(manifest)
            self.status.step = "DetectDatabaseVersion"
            return POLL_SECONDS
        if outcome.state == "running":
            return outcome.poll(POLL_SECONDS)
        if outcome.state == "failed":
            raise runs.Failure(
                "DetectDatabaseVersion",
                f"Job {job}: {outcome.message or 'failed'}",
                "check the Secret of spec.database.external_db_secret and that the database"
                f" answers from namespace {self.namespace}",
            )
        version = outcome.message.strip()
        major = build.server_major(version)
        if major is None:
            raise runs.Failure(
                "DetectDatabaseVersion",
                f"Job {job} reported no PostgreSQL server version (got {version[:80]!r})",
                f"see the logs of Job {job}",
            )
        _, pulp_spec = await self._pulp(run)
        run.database_version = _version_text(version)
        run.database_image = spec.postgres_image or build.client_image(
            pulp_spec.database.postgres_image, major
        )
        self._done(
            run,
            "DetectDatabaseVersion",
            f"PostgreSQL {run.database_version}: dumping with {run.database_image}",
        )
        return 0.0

    async def _backup_job(self, spec: PulpBackupSpec, run: BackupRun) -> float | None:
        job = run.directory
        outcome = await runs.job_outcome(self.kube, self.namespace, job)
        if outcome.state == "missing":
            steps = await self._create_backup_job(spec, run)
            self.status.step = steps[0]
            return POLL_SECONDS
        steps = [build.STEPS.get(c, c) for c in outcome.containers]
        done = {s.name for s in run.steps}
        finished = outcome.steps_done if outcome.state != "succeeded" else tuple(steps)
        for step in steps:
            if step in finished and step not in done:
                self._done(run, step, _STEP_MESSAGES.get(step, "done"))
        if outcome.state == "running":
            self.status.step = next((s for s in steps if s not in finished), steps[-1])
            return outcome.poll(POLL_SECONDS)
        if outcome.state == "failed":
            step = outcome.failed_step or next(s for s in steps if s not in finished)
            raise runs.Failure(step, f"Job {job}: {outcome.message or 'failed'}", _hint(step, run))
        await self._succeed(spec, run, runs.report(outcome.message))
        return self._after_run(spec)

    async def _create_backup_job(self, spec: PulpBackupSpec, run: BackupRun) -> list[str]:
        """The objects Secret and the backup Job; returns the steps of the Job."""
        pulp, pulp_spec = await self._pulp(run)
        claim = build.files_claim(run.pulp, pulp_spec)
        secrets, config_maps = await self._collect(spec, run, pulp_spec)
        assert run.database_image is not None  # set by Prepare or DetectDatabaseVersion
        meta = build.BackupMeta(
            pulp=run.pulp,
            namespace=self.namespace,
            directory=run.directory,
            created=run.start_time,
            image=f"{pulp_spec.image}:{pulp_spec.image_version}",
            storage_type=pulp_spec.storage_type,
            files=claim is not None,
            external_database=bool(pulp_spec.database.external_db_secret),
            database_image=run.database_image,
        )
        files = build.backup_objects(meta, pulp, secrets, config_maps)
        labels = build.backup_labels(self.name)
        owner = runs.owner_reference(self.obj)
        await self.kube.create(
            build.objects_secret(run.directory, self.namespace, labels, owner, files)
        )
        node = None
        if claim:
            node = await runs.attached_node(
                self.kube, self.namespace, claim, {names.PULP_CR_LABEL: run.pulp}
            )
        manifest = build.backup_job(
            build.BackupJob(
                parts=self._parts(run.directory, spec, node),
                directory=run.directory,
                series=self.name,
                claim=run.claim,
                database_image=run.database_image,
                database_env=build.database_env(
                    run.pulp, pulp_spec, spec.postgres_configuration_secret
                ),
                pulp_image=f"{pulp_spec.image}:{pulp_spec.image_version}",
                objects_secret=run.directory,
                files_claim=claim,
                keep=spec.keep if spec.schedule else None,
            )
        )
        await self.kube.create(manifest)
        await runs.event(
            self.kube,
            self.obj,
            "JobCreated",
            f"Job {run.directory} dumps the database with {run.database_image}"
            + (f", copies {claim}" if claim else "")
            + " and writes the objects",
        )
        return [build.STEPS[c["name"]] for c in _containers(manifest)]

    async def _succeed(self, spec: PulpBackupSpec, run: BackupRun, result: dict[str, Any]) -> None:
        sizes = result.get("sizes") or {}
        run.result = "Succeeded"
        run.completion_time = build.utc(self.now)
        run.size_bytes = _int(sizes.get("total"))
        run.database_bytes = _int(sizes.get("database"))
        run.files_bytes = _int(sizes.get("files"))
        if result.get("databaseVersion") and not run.database_version:
            run.database_version = str(result["databaseVersion"])
        self.status.backup_directory = run.directory
        self.status.last_successful_time = run.completion_time
        kept = result.get("backups")
        if isinstance(kept, list):
            self.status.backups = [
                BackupEntry(directory=str(b["directory"]), size_bytes=_int(b.get("sizeBytes")))
                for b in kept
                if isinstance(b, dict) and "directory" in b
            ]
        else:
            self.status.backups = [
                *(self.status.backups or []),
                BackupEntry(directory=run.directory, size_bytes=run.size_bytes),
            ]
        size = f", {_human(run.size_bytes)}" if run.size_bytes is not None else ""
        message = (
            f"backup {run.directory} complete in claim {run.claim}{size}; {self.status.storage}"
        )
        self._condition("True", "BackupCompleted", message)
        self.status.phase = "Succeeded"
        self.status.step = "WriteObjects"
        # The Jobs go with their pods: a finished pod still holds the claims it mounted (a Pulp's
        # file storage claim could not be deleted). A failed run's Job stays for its logs.
        await self.kube.delete(Secret, run.directory, self.namespace)
        for job in (run.directory, f"{run.directory}-db"):
            await self.kube.delete(Job, job, self.namespace)
        removed = result.get("removed") or []
        detail = f"; removed {', '.join(map(str, removed))}" if removed else ""
        await runs.event(self.kube, self.obj, "BackupCompleted", message + detail)

    async def _fail(self, spec: PulpBackupSpec, run: BackupRun, failure: runs.Failure) -> None:
        run.result = "Failed"
        run.completion_time = build.utc(self.now)
        retry = (
            "the next scheduled run tries again"
            if spec.schedule
            else "change the spec or re-create the PulpBackup to try again"
        )
        run.message = f"step {failure.step} failed: {failure.detail}"
        message = f"{run.message}; {failure.hint}; {retry}"
        self._condition("False", f"{failure.step}Failed", message)
        self.status.phase = "Failed"
        self.status.step = failure.step
        await self.kube.delete(Secret, run.directory, self.namespace)
        await runs.event(self.kube, self.obj, f"{failure.step}Failed", message, warning=True)

    def _after_run(self, spec: PulpBackupSpec) -> float | None:
        if not spec.schedule:
            return None
        upcoming = schedule.next_after(spec.schedule, self.now)
        self.status.next_schedule_time = build.utc(upcoming)
        if self.status.phase == "Succeeded":
            self.status.phase = "Scheduled"
        return 0.0

    # --- status ------------------------------------------------------------------------------

    def _done(self, run: BackupRun, step: str, message: str) -> None:
        run.steps.append(StepRecord(name=step, time=build.utc(self.now), message=message))
        self.status.step = step
        self.events.append((_STEP_EVENTS.get(step, step), f"{step}: {message}", False))


_STEP_MESSAGES = {
    "DumpDatabase": "database dumped",
    "CopyFiles": "file storage copied",
    "WriteObjects": "Pulp CR, Secrets and ConfigMaps written",
}
_STEP_EVENTS = {
    "Prepare": "Prepared",
    "DetectDatabaseVersion": "DatabaseVersionDetected",
    "DumpDatabase": "DatabaseDumped",
    "CopyFiles": "FilesCopied",
    "WriteObjects": "ObjectsWritten",
}


def _containers(job: Obj) -> list[dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return [*(pod.get("initContainers") or []), *pod["containers"]]


def _hint(step: str, run: BackupRun) -> str:
    if step == "DumpDatabase":
        return (
            "check the database credentials (the Secret of the Pulp's database), that the"
            " database runs, and"
            f" the room left in claim {run.claim}; the Job {run.directory} is kept for its logs"
        )
    if step == "CopyFiles":
        return (
            f"check the room left in claim {run.claim} (spec.backup_storage_requirements);"
            f" the Job {run.directory} is kept for its logs"
        )
    return f"see the logs of Job {run.directory}"


def _version_text(version_num: str) -> str:
    text = version_num.strip()
    if text.isdigit() and int(text) >= 100000:
        number = int(text)
        return f"{number // 10000}.{number % 10000}"
    return text


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _human(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
