"""One pass of a PulpRestore: advance the restore by a step.

    ReadBackup              a Job reads the objects of the backup directory (checking that it is
                            complete) and hands them over in one Secret
    CheckTarget             the Pulp to restore: it must not exist, unless this restore created
                            it or spec.allow_overwrite says so
    RestoreObjects          Secrets and ConfigMaps (missing ones created), the Pulp with no pods
                            but its database and with migrations off
    DetectDatabaseVersion   external databases only: the server's version picks the client
    RestoreDatabase         init container of the restore Job: pg_restore, once the database is
                            up and the Pulp's pods are gone
    RestoreFiles            the Job's container: the file storage (PVC storage only)
    StartPulp               the backed-up spec (replicas, migrations) back on the Pulp
    WaitReady               until the Pulp is Ready; then RestoreComplete=True

The steps done are in status.steps; Jobs have fixed names. A pass after an operator restart goes
on from the last step recorded, and a finished PulpRestore does nothing on later passes.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    PersistentVolumeClaim,
    Pod,
    Secret,
    ServiceAccount,
)
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from pydantic import ValidationError

from . import desired, names, runs
from .api.backup import PulpBackupStatus, PulpRestoreSpec, PulpRestoreStatus, StepRecord
from .api.pulp import PulpSpec
from .api.validation import describe_validation_error
from .desired import backup as build
from .kube import Kube, Obj, PulpBackupResource, PulpResource, PulpRestoreResource
from .observe import secret_text

log = logging.getLogger(__name__)

CONDITION = "RestoreComplete"
POLL_SECONDS = 15.0
STOPPED_COMPONENTS = ("api", "content", "worker", "resource-manager", "web")

_GENERATED_ROLE = {
    "admin-password": "admin_password_secret",
    "secret-key": "pulp_secret_key",
    "fernet-key": build.FERNET_ROLE,
    "container-token": "container_token_secret",
    "postgres": build.POSTGRES_ROLE,
}


class Waiting(Exception):
    """The step waits for something outside it: the condition says what."""

    def __init__(self, step: str, reason: str, message: str, delay: float = POLL_SECONDS) -> None:
        super().__init__(message)
        self.step, self.reason, self.message, self.delay = step, reason, message, delay


class Restores:
    def __init__(self, kube: Kube, clock: Callable[[], datetime.datetime] = runs.now) -> None:
        self.kube = kube
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> float | None:
        obj = await self.kube.get(PulpRestoreResource, name, namespace)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return await _Pass(self.kube, obj, self.clock()).run()


def objects_secret_name(restore: str) -> str:
    return f"{restore}-backup-objects"


class _Pass(runs.RunPass[PulpRestoreStatus]):
    resource = PulpRestoreResource
    condition_type = CONDITION
    status_model = PulpRestoreStatus

    async def run(self) -> float | None:
        if self.status.phase == "Succeeded":
            return None  # a finished restore does nothing, whatever happens to its spec
        if self.status.phase == "Failed" and self.status.generation == self.generation:
            return None  # waits for a changed spec
        try:
            spec = PulpRestoreSpec.model_validate(self.obj.get("spec") or {})
        except ValidationError as exc:
            message = describe_validation_error(exc, "spec")
            if self.status.observed_generation != self.generation:
                self.events.append(("InvalidSpec", message, True))
            self._condition("False", "InvalidSpec", message)
            self.status.phase = "Failed"
            self.status.generation = self.generation
            await self._write()
            return None
        if self.status.phase == "Failed" or self.status.generation != self.generation:
            await self._restart()
        try:
            delay = await self._advance(spec)
        except Waiting as waiting:
            self.status.phase = "Running" if self.status.steps else "Pending"
            self.status.step = waiting.step
            self._condition("False", waiting.reason, waiting.message)
            delay = waiting.delay
        except runs.Failure as failure:
            await self._fail(failure)
            delay = None
        await self._write()
        return delay

    async def _restart(self) -> None:
        """A first pass, or a changed spec after a failure: start over (keeping pulpUID, so that
        the Pulp an earlier attempt created is still recognised as this restore's)."""
        if self.status.steps or self.status.phase == "Failed":
            await self._delete_work(jobs=True)
        self.status.steps = []
        self.status.generation = self.generation
        self.status.start_time = build.utc(self.now)
        self.status.completion_time = None
        self.status.message = None
        self.status.phase = "Pending"
        self.status.step = "ReadBackup"

    # --- steps -------------------------------------------------------------------------------

    def _is_done(self, step: str) -> bool:
        return any(s.name == step for s in self.status.steps)

    async def _advance(self, spec: PulpRestoreSpec) -> float | None:
        if not self._is_done("ReadBackup"):
            return await self._read(spec, *await self._source(spec))
        claim, directory = self.status.backup_claim, self.status.backup_directory
        if claim is None or directory is None:  # recorded with ReadBackup
            raise runs.Failure("ReadBackup", "the status lost the backup's claim", "try again")
        contents = await self._contents()
        if contents is None:  # the objects Secret vanished: read the backup again
            self.status.steps = [s for s in self.status.steps if s.name != "ReadBackup"]
            await self.kube.delete(Job, f"{self.name}-read", self.namespace)
            return 5.0
        target = spec.deployment_name or contents.pulp_name
        target_spec = self._target_spec(spec, contents)
        if not self._is_done("CheckTarget"):
            await self._check_target(spec, target)
            return 0.0
        if not self._is_done("RestoreObjects"):
            await self._restore_objects(spec, contents, target, target_spec)
            return 0.0
        pulp = await self._own_pulp(target)
        if not self._is_done("RestoreFiles") or not self._is_done("RestoreDatabase"):
            return await self._restore_data(spec, contents, target, target_spec, claim, directory)
        if not self._is_done("StartPulp"):
            final = build.final_spec(target_spec, spec.keep_replicas)
            updated = await self.kube.patch_json(
                PulpResource,
                target,
                self.namespace,
                [{"op": "replace", "path": "/spec", "value": final}],
            )
            self.status.pulp_generation = updated["metadata"].get("generation")
            self._done("StartPulp", f"Pulp {target} has its backed-up spec again")
            return 0.0
        return await self._wait_ready(pulp, target)

    async def _source(self, spec: PulpRestoreSpec) -> tuple[str, str, str]:
        """Claim, directory and the image (with python3) that reads them."""
        claim, directory = spec.backup_pvc, spec.backup_dir
        image = ""
        if spec.backup_name and (claim is None or directory is None):
            backup = await self.kube.get(PulpBackupResource, spec.backup_name, self.namespace)
            if backup is None:
                raise runs.Failure(
                    "ReadBackup",
                    f"PulpBackup {spec.backup_name} (spec.backup_name) not found in namespace"
                    f" {self.namespace}",
                    "name a PulpBackup of this namespace, or set spec.backup_pvc and"
                    " spec.backup_dir",
                )
            status = PulpBackupStatus.model_validate(backup.get("status") or {})
            claim = claim or status.backup_claim
            directory = directory or status.backup_directory
            image = (status.run.pulp_image if status.run else None) or ""
            if claim is None or directory is None:
                raise Waiting(
                    "ReadBackup",
                    "WaitingForBackup",
                    f"PulpBackup {spec.backup_name} has no complete backup yet",
                )
        if claim is None or directory is None:
            raise runs.Failure(
                "ReadBackup",
                "no backup named",
                "set spec.backup_name, or spec.backup_pvc and spec.backup_dir",
            )
        overrides = spec.pulp_spec or {}
        repo, _, tag = image.rpartition(":")
        repo = str(overrides.get("image") or repo or PulpSpec.model_fields["image"].default)
        tag = str(
            overrides.get("image_version") or tag or PulpSpec.model_fields["image_version"].default
        )
        self.status.backup_claim = claim
        self.status.backup_directory = directory
        return claim, directory, f"{repo}:{tag}"

    def _parts(
        self, job: str, service_account: str | None = None, backoff: int = 1
    ) -> build.JobParts:
        return build.JobParts(
            name=job,
            namespace=self.namespace,
            labels=build.restore_labels(self.name),
            owner=runs.owner_reference(self.obj),
            service_account=service_account,
            backoff_limit=backoff,
        )

    async def _read(self, spec: PulpRestoreSpec, claim: str, directory: str, image: str) -> float:
        job = f"{self.name}-read"
        outcome = await runs.job_outcome(self.kube, self.namespace, job)
        if outcome.state == "missing":
            if await self.kube.get(PersistentVolumeClaim, claim, self.namespace) is None:
                raise runs.Failure(
                    "ReadBackup",
                    f"PersistentVolumeClaim {claim} not found in namespace {self.namespace}",
                    "a restore reads the backup from a claim of its own namespace: bind the"
                    " backup volume to a claim here and set spec.backup_pvc",
                )
            parts = self._parts(job)
            for manifest in build.restore_rbac(parts):
                await self.kube.create(manifest)
            await self.kube.create(
                build.read_job(
                    self._parts(job, service_account=job),
                    claim,
                    directory,
                    image,
                    objects_secret_name(self.name),
                )
            )
            self.status.phase = "Running"
            self.status.step = "ReadBackup"
            self.events.append(("RestoreStarted", f"reading {claim}/{directory}", False))
            return POLL_SECONDS
        if outcome.state == "running":
            return outcome.poll(POLL_SECONDS)
        if outcome.state == "failed":
            raise runs.Failure(
                "ReadBackup",
                f"Job {job}: {outcome.message or 'failed'}",
                f"check spec.backup_pvc and spec.backup_dir ({claim}/{directory}) name a complete"
                " backup",
            )
        if await self._contents() is None:
            raise runs.Failure(
                "ReadBackup",
                f"Job {job} finished without handing over the backup's objects",
                f"see the logs of Job {job}",
            )
        self._done("ReadBackup", f"read {claim}/{directory}")
        return 0.0

    async def _contents(self) -> build.BackupContents | None:
        secret = await self.kube.get(Secret, objects_secret_name(self.name), self.namespace)
        if secret is None:
            return None
        try:
            contents = build.parse_contents(secret_text(secret))
        except ValueError as exc:
            raise runs.Failure(
                "ReadBackup", f"the backup is not usable: {exc}", "restore another backup"
            ) from None
        self.status.database_version = contents.database_version
        return contents

    def _target_spec(self, spec: PulpRestoreSpec, contents: build.BackupContents) -> dict[str, Any]:
        merged = build.merge_patch(contents.pulp.get("spec") or {}, spec.pulp_spec or {})
        try:
            PulpSpec.model_validate(merged)
        except ValidationError as exc:
            where = "spec.pulp_spec" if spec.pulp_spec else "the backed-up Pulp"
            raise runs.Failure(
                "CheckTarget",
                f"the restored spec is invalid: {describe_validation_error(exc, 'spec')}",
                f"fix {where}",
            ) from None
        return dict(merged)

    async def _check_target(self, spec: PulpRestoreSpec, target: str) -> None:
        live = await self.kube.get(PulpResource, target, self.namespace)
        self.status.deployment_name = target
        if live is not None and live["metadata"]["uid"] != self.status.pulp_uid:
            if not spec.allow_overwrite:
                raise runs.Failure(
                    "CheckTarget",
                    f"Pulp {target} exists in namespace {self.namespace}: the restore would"
                    " overwrite its database",
                    "delete it, restore under another spec.deployment_name, or set"
                    " spec.allow_overwrite: true",
                )
            self.status.pulp_uid = live["metadata"]["uid"]
            self.events.append(
                ("OverwritingPulp", f"Pulp {target} exists: its data is replaced", True)
            )
        self._done("CheckTarget", f"restoring into Pulp {target}")

    async def _restore_objects(
        self,
        spec: PulpRestoreSpec,
        contents: build.BackupContents,
        target: str,
        target_spec: dict[str, Any],
    ) -> None:
        parsed = PulpSpec.model_validate(target_spec)
        generated = {
            _GENERATED_ROLE[g.kind]: build.GeneratedName(
                g.name, g.labels, g.keep and parsed.keep_data_on_delete
            )
            for g in desired.generated_secrets(target, self.namespace, parsed)
        }
        for plan in build.secret_plan(contents, target, self.namespace, generated):
            await self._restore_secret(spec, plan)
        for manifest in build.config_map_plan(contents, self.namespace):
            await self._restore_config_map(manifest)
        quiet = build.quiesced_spec(target_spec)
        live = await self.kube.get(PulpResource, target, self.namespace)
        if live is None:
            manifest = build.restored_pulp(contents, target, self.namespace, quiet, self.name)
            created = await self.kube.create(manifest)
            if created is None:  # made in between by someone else
                raise runs.Failure(
                    "RestoreObjects",
                    f"Pulp {target} appeared in namespace {self.namespace} during the restore",
                    "delete it, or set spec.allow_overwrite: true",
                )
            self.status.pulp_uid = created["metadata"]["uid"]
            self.events.append(("PulpCreated", f"created Pulp {target} (no pods yet)", False))
        else:
            if live["metadata"]["uid"] != self.status.pulp_uid:
                raise runs.Failure(
                    "RestoreObjects",
                    f"Pulp {target} was replaced during the restore",
                    "re-create the PulpRestore",
                )
            await self.kube.patch_json(
                PulpResource,
                target,
                self.namespace,
                [{"op": "replace", "path": "/spec", "value": quiet}],
            )
            await self.kube.patch_merge(
                PulpResource,
                target,
                self.namespace,
                {
                    "metadata": {
                        "annotations": {
                            build.RESTORED_FROM_ANNOTATION: f"{self.namespace}/{self.name}"
                        }
                    }
                },
            )
            self.events.append(("PulpStopped", f"stopped the pods of Pulp {target}", True))
        self._done("RestoreObjects", f"Secrets, ConfigMaps and Pulp {target} in place")

    async def _restore_secret(self, spec: PulpRestoreSpec, plan: build.SecretPlan) -> None:
        manifest = plan.manifest
        name = manifest["metadata"]["name"]
        live = await self.kube.get(Secret, name, self.namespace)
        if live is None:
            await self.kube.create(manifest)
            self.events.append(("SecretRestored", f"restored Secret {name}", False))
            return
        if (live.get("data") or {}) == manifest["data"]:
            return
        if not plan.data_bound:
            self.events.append(
                (
                    "SecretKept",
                    f"Secret {name} exists with other data than the backup's: kept",
                    True,
                )
            )
            return
        if not spec.allow_overwrite:
            raise runs.Failure(
                "RestoreObjects",
                f"Secret {name} exists with another Fernet key than the backup's: the restored"
                " encrypted fields could not be read with it",
                "delete the Secret, or set spec.allow_overwrite: true to replace it with the"
                " backup's",
            )
        removed = {k: None for k in (live.get("data") or {}) if k not in manifest["data"]}
        await self.kube.patch_merge(
            Secret, name, self.namespace, {"data": {**removed, **manifest["data"]}}
        )
        self.events.append(("SecretReplaced", f"replaced Secret {name} by the backup's", True))

    async def _restore_config_map(self, manifest: Obj) -> None:
        name = manifest["metadata"]["name"]
        live = await self.kube.get(ConfigMap, name, self.namespace)
        if live is None:
            await self.kube.create(manifest)
            self.events.append(("ConfigMapRestored", f"restored ConfigMap {name}", False))
        elif (live.get("data") or {}) != manifest.get("data"):
            self.events.append(
                ("ConfigMapKept", f"ConfigMap {name} exists with other data: kept", True)
            )

    async def _own_pulp(self, target: str) -> Obj:
        pulp = await self.kube.get(PulpResource, target, self.namespace)
        if pulp is None or pulp["metadata"]["uid"] != self.status.pulp_uid:
            raise runs.Failure(
                self.status.step or "RestoreObjects",
                f"Pulp {target} was deleted or replaced during the restore",
                "re-create the PulpRestore",
            )
        return pulp

    async def _restore_data(
        self,
        spec: PulpRestoreSpec,
        contents: build.BackupContents,
        target: str,
        target_spec: dict[str, Any],
        claim: str,
        directory: str,
    ) -> float:
        parsed = PulpSpec.model_validate(target_spec)
        job = f"{self.name}-restore"
        outcome = await runs.job_outcome(self.kube, self.namespace, job)
        if outcome.state == "missing":
            await self._ready_for_data(target, parsed, contents)
            image = await self._client_image(spec, parsed, contents, target)
            if image is None:
                return POLL_SECONDS
            files = build.files_claim(target, parsed) if contents.has_files else None
            await self.kube.create(
                build.restore_job(
                    build.RestoreJob(
                        parts=self._parts(job, backoff=0),
                        claim=claim,
                        directory=directory,
                        database_image=image,
                        database_env=build.database_env(target, parsed),
                        pulp_image=f"{parsed.image}:{parsed.image_version}",
                        files_claim=files,
                    )
                )
            )
            self.status.step = "RestoreDatabase"
            note = "" if files else f"; {self._files_note(contents, parsed)}"
            self.events.append(("JobCreated", f"Job {job} restores the data{note}", False))
            return POLL_SECONDS
        steps = [build.STEPS.get(c, c) for c in outcome.containers]
        finished = outcome.steps_done if outcome.state != "succeeded" else tuple(steps)
        for step in steps:
            if step in finished and not self._is_done(step):
                self._done(
                    step,
                    "database restored" if step == "RestoreDatabase" else "file storage restored",
                )
        if outcome.state == "running":
            self.status.step = next((s for s in steps if s not in finished), steps[-1])
            return outcome.poll(POLL_SECONDS)
        if outcome.state == "failed":
            step = outcome.failed_step or next(s for s in steps if s not in finished)
            raise runs.Failure(
                step,
                f"Job {job}: {outcome.message or 'failed'}",
                f"the Pulp keeps no pods until the data is back; see the logs of Job {job}, fix"
                " the cause and change the PulpRestore's spec to try again",
            )
        if "RestoreFiles" not in steps:
            self._done("RestoreFiles", self._files_note(contents, parsed))
        return 0.0

    def _files_note(self, contents: build.BackupContents, parsed: PulpSpec) -> str:
        if not contents.has_files:
            return "the backup holds no file storage (object storage is not copied)"
        return f"the backup's files are not restored: the Pulp uses {parsed.storage_type} storage"

    async def _ready_for_data(
        self, target: str, parsed: PulpSpec, contents: build.BackupContents
    ) -> None:
        """Wait until the database is up, the file storage claim exists and no pod of the Pulp
        but its database runs."""
        pods = await self.kube.list_labelled(Pod, self.namespace, {names.PULP_CR_LABEL: target})
        running = [
            p["metadata"]["name"]
            for p in pods
            if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
            in STOPPED_COMPONENTS
        ]
        if running:
            raise Waiting(
                "RestoreDatabase",
                "WaitingForPods",
                f"waiting for pods {', '.join(sorted(running))} of Pulp {target} to stop",
            )
        pulp = await self.kube.get(PulpResource, target, self.namespace) or {}
        conditions = {c.get("type"): c for c in (pulp.get("status") or {}).get("conditions") or []}
        database = conditions.get("DatabaseReady") or {}
        if database.get("status") != "True":
            raise Waiting(
                "RestoreDatabase",
                "WaitingForDatabase",
                f"waiting for the database of Pulp {target}: {database.get('message', '')}",
            )
        claim = build.files_claim(target, parsed)
        if contents.has_files and claim:
            pvc = await self.kube.get(PersistentVolumeClaim, claim, self.namespace)
            if pvc is None or pvc["metadata"].get("deletionTimestamp"):
                state = "to be created" if pvc is None else "to be deleted before it is made anew"
                raise Waiting(
                    "RestoreFiles",
                    "WaitingForClaim",
                    f"waiting for PersistentVolumeClaim {claim} {state}",
                )

    async def _client_image(
        self,
        spec: PulpRestoreSpec,
        parsed: PulpSpec,
        contents: build.BackupContents,
        target: str,
    ) -> str | None:
        dumped = build.server_major(contents.database_version or "")
        if not parsed.database.external_db_secret:
            image = spec.postgres_image or parsed.database.postgres_image
            major = build.image_major(image)
            if dumped and major and major < dumped:
                raise runs.Failure(
                    "RestoreDatabase",
                    f"the backup is of PostgreSQL {contents.database_version}; the database"
                    f" image {image} is older",
                    "set spec.pulp_spec.database.postgres_image (or spec.postgres_image) to a"
                    f" PostgreSQL {dumped} image or newer",
                )
            return image
        if spec.postgres_image:
            return spec.postgres_image
        job = f"{self.name}-db"
        outcome = await runs.job_outcome(self.kube, self.namespace, job)
        if outcome.state == "missing":
            await self.kube.create(
                build.version_job(
                    self._parts(job, backoff=2),
                    parsed.database.postgres_image,
                    build.database_env(target, parsed),
                )
            )
            self.status.step = "DetectDatabaseVersion"
            return None
        if outcome.state == "running":
            return None
        major = build.server_major(outcome.message) if outcome.state == "succeeded" else None
        if major is None:
            raise runs.Failure(
                "DetectDatabaseVersion",
                f"Job {job}: {outcome.message or 'no server version reported'}",
                "check the Secret of spec.database.external_db_secret and that the database"
                f" answers from namespace {self.namespace}",
            )
        if dumped and major < dumped:
            raise runs.Failure(
                "DetectDatabaseVersion",
                f"the backup is of PostgreSQL {contents.database_version}; the database server"
                f" runs {major}",
                f"restore into a PostgreSQL {dumped} server or newer",
            )
        if not self._is_done("DetectDatabaseVersion"):
            self._done("DetectDatabaseVersion", f"the database server runs PostgreSQL {major}")
        return build.client_image(parsed.database.postgres_image, major)

    async def _wait_ready(self, pulp: Obj, target: str) -> float | None:
        status = pulp.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        seen = ready.get("observedGeneration", status.get("observedGeneration", 0)) or 0
        if ready.get("status") != "True" or seen < (self.status.pulp_generation or 0):
            raise Waiting(
                "WaitReady",
                "WaitingForPulp",
                f"waiting for Pulp {target} to be Ready: {ready.get('message', '')}",
            )
        self._done("WaitReady", f"Pulp {target} is Ready")
        self.status.phase = "Succeeded"
        self.status.completion_time = build.utc(self.now)
        message = (
            f"Pulp {target} restored from {self.status.backup_claim}/"
            f"{self.status.backup_directory} and Ready"
        )
        self._condition("True", "RestoreCompleted", message)
        self.events.append(("RestoreCompleted", message, False))
        await self._delete_work(jobs=True)  # finished pods would still hold the claims
        return None

    # --- status ------------------------------------------------------------------------------

    async def _delete_work(self, *, jobs: bool) -> None:
        """The objects Secret and the ReadBackup account (and, to start over, the Jobs)."""
        await self.kube.delete(Secret, objects_secret_name(self.name), self.namespace)
        read = f"{self.name}-read"
        for cls in (RoleBinding, Role, ServiceAccount):
            await self.kube.delete(cls, read, self.namespace)
        if jobs:
            for old in await self.kube.list_labelled(
                Job, self.namespace, {build.RESTORE_LABEL: self.name}
            ):
                await self.kube.delete(Job, old["metadata"]["name"], self.namespace)

    async def _fail(self, failure: runs.Failure) -> None:
        message = f"step {failure.step} failed: {failure.detail}; {failure.hint}"
        self.status.phase = "Failed"
        self.status.step = failure.step
        self.status.message = message
        self.status.completion_time = build.utc(self.now)
        self._condition("False", f"{failure.step}Failed", message)
        self.events.append((f"{failure.step}Failed", message, True))

    def _done(self, step: str, message: str) -> None:
        self.status.steps.append(StepRecord(name=step, time=build.utc(self.now), message=message))
        self.status.step = step
        self.status.phase = "Running"
        self._condition("False", "Running", f"{step}: {message}")
        self.events.append((_EVENTS.get(step, step), f"{step}: {message}", False))


_EVENTS = {
    "ReadBackup": "BackupRead",
    "CheckTarget": "TargetChecked",
    "RestoreObjects": "ObjectsRestored",
    "DetectDatabaseVersion": "DatabaseVersionDetected",
    "RestoreDatabase": "DatabaseRestored",
    "RestoreFiles": "FilesRestored",
    "StartPulp": "PulpStarted",
    "WaitReady": "PulpReady",
}
