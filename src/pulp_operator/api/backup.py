"""The PulpBackup and PulpRestore kinds of repo-manager.pulpproject.org/v1.

The upstream fields keep their names and meaning; the fields after them are this operator's own
(schedules and retention, the database client image, the explicit permission to overwrite an
existing Pulp, spec overrides for a restore into another cluster).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .. import schedule as cron
from .pulp import Condition, SpecModel
from .types import KubeObject, Quantity
from .validation import Rule, rules

Phase = Literal["Pending", "Scheduled", "Running", "Succeeded", "Failed"]
RESTORE_SOURCE_MESSAGE = (
    "set backup_name (a PulpBackup of this namespace), or backup_pvc and backup_dir"
)
KEEP_MESSAGE = "keep applies only with schedule"


class PulpBackupSpec(SpecModel):
    """Desired state of a PulpBackup."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            Rule("!has(self.keep) || has(self.schedule)", KEEP_MESSAGE),
            Rule(
                "!has(self.schedule) || self.schedule.matches('"
                + cron.PATTERN.replace("\\", "\\\\")
                + "')",
                cron.SHAPE_MESSAGE,
            ),
        )
    )

    deployment_name: str = Field(min_length=1)
    """Name of the Pulp to back up (in the namespace of the PulpBackup)."""
    backup_pvc: str | None = None
    """Existing PersistentVolumeClaim for the backup; <backup name>-backup-claim, created by the
    operator and kept when the PulpBackup is deleted, when not set."""
    backup_pvc_namespace: str | None = None
    """Namespace of backup_pvc: only the PulpBackup's own namespace works (a pod mounts claims of
    its own namespace only)."""
    backup_storage_requirements: Quantity = "5Gi"
    """Size of the backup PVC created by the operator."""
    backup_storage_class: str | None = None
    """StorageClass of the backup PVC (the cluster default when not set)."""
    admin_password_secret: str | None = None
    """Secret with the admin password, when not the one the Pulp names or generated."""
    postgres_configuration_secret: str | None = None
    """Secret with the managed database credentials, when not <pulp>-postgres-configuration."""
    pulp_secret_key: str | None = None
    """Secret with Django's SECRET_KEY, when not the one the Pulp names or generated."""
    affinity: KubeObject | None = None
    """core/v1 Affinity of the backup pods."""
    schedule: str | None = None
    """Back up repeatedly on this cron schedule (five fields, UTC, or @daily, @hourly, ...), each
    run into its own dated directory; without it the PulpBackup backs up once."""
    keep: int | None = Field(default=None, ge=1)
    """With schedule: how many complete backups of this PulpBackup to keep in the claim; older
    ones are removed after each successful run (all are kept when not set)."""
    postgres_image: str | None = None
    """Image whose pg_dump makes the database dump. Default: the managed database's own image, or
    for an external database spec.database.postgres_image of the Pulp with its tag set to the
    major version of the database server (detected before each dump)."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else cron.check(value)

    @model_validator(mode="after")
    def _keep(self) -> PulpBackupSpec:
        if self.keep is not None and not self.schedule:
            raise ValueError(KEEP_MESSAGE)
        return self


class PulpRestoreSpec(SpecModel):
    """Desired state of a PulpRestore."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            Rule(
                "has(self.backup_name) || (has(self.backup_pvc) && has(self.backup_dir))",
                RESTORE_SOURCE_MESSAGE,
            ),
        )
    )

    deployment_name: str | None = Field(default=None, min_length=1)
    """Name of the Pulp to restore (the backed-up Pulp's name when not set)."""
    backup_name: str | None = None
    """PulpBackup of this namespace to restore from (its claim and last complete directory)."""
    backup_pvc: str | None = None
    """PersistentVolumeClaim of this namespace holding the backup (from the PulpBackup when not
    set)."""
    backup_dir: str | None = None
    """Directory of the backup in the claim (the PulpBackup's last complete one when not set)."""
    keep_replicas: bool = False
    """Give the restored Pulp the replicas of the backed-up one; without it api, content and
    worker get 1 replica (as upstream) and web keeps the backed-up count."""
    allow_overwrite: bool = False
    """Restore into a Pulp that exists already, replacing its database, files and Fernet key with
    the backup's. Without it the restore stops when the Pulp exists (it never overwrites a running
    Pulp by surprise)."""
    postgres_image: str | None = None
    """Image whose pg_restore loads the dump. Default: the managed database's own image, or for
    an external database the restored spec.database.postgres_image with its tag set to the major
    version of the database server (detected before the restore)."""
    pulp_spec: KubeObject | None = None
    """Fields merged over the backed-up Pulp spec (JSON merge patch; null removes a field), e.g.
    another storage class, NodePort or database in the new cluster."""

    @model_validator(mode="after")
    def _source(self) -> PulpRestoreSpec:
        if not (self.backup_name or (self.backup_pvc and self.backup_dir)):
            raise ValueError(RESTORE_SOURCE_MESSAGE)
        return self


class StepRecord(SpecModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    """The step."""
    time: str
    """When it finished."""
    message: str | None = None
    """What it did."""


class JobStatus(SpecModel):
    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list)
    """Kubernetes-convention conditions."""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    """The generation of the spec the status describes."""
    phase: Phase | None = None
    """Pending, Scheduled (waiting for the next run), Running, Succeeded or Failed."""
    step: str | None = None
    """The step running now, or the last one."""


class BackupRun(SpecModel):
    """One backup run: one dated directory in the claim."""

    model_config = ConfigDict(extra="ignore")

    directory: str
    """The run's directory in the claim (also the name of its Job)."""
    claim: str
    """The PersistentVolumeClaim written into."""
    pulp: str
    """The Pulp backed up."""
    generation: int
    """metadata.generation of the PulpBackup the run started for."""
    start_time: str = Field(alias="startTime")
    """When the run started."""
    scheduled_time: str | None = Field(default=None, alias="scheduledTime")
    """The schedule's time the run is for."""
    completion_time: str | None = Field(default=None, alias="completionTime")
    """When the run ended."""
    result: Literal["Running", "Succeeded", "Failed"] = "Running"
    """Running, Succeeded or Failed."""
    steps: list[StepRecord] = Field(default_factory=list)
    """Steps done, in order, with the time each finished."""
    pulp_image: str | None = Field(default=None, alias="pulpImage")
    """The image (image:tag) the Pulp ran at the backup."""
    database_image: str | None = Field(default=None, alias="databaseImage")
    """The image whose pg_dump made the dump."""
    database_version: str | None = Field(default=None, alias="databaseVersion")
    """The version of the database server that was dumped."""
    size_bytes: int | None = Field(default=None, alias="sizeBytes")
    """Size of the run's directory."""
    database_bytes: int | None = Field(default=None, alias="databaseBytes")
    """Size of database.dump."""
    files_bytes: int | None = Field(default=None, alias="filesBytes")
    """Size of files.tar."""
    message: str | None = None
    """Why the run failed."""


class BackupEntry(SpecModel):
    model_config = ConfigDict(extra="ignore")

    directory: str
    """A complete backup's directory in the claim."""
    size_bytes: int | None = Field(default=None, alias="sizeBytes")
    """Its size."""


class PulpBackupStatus(JobStatus):
    deployment_name: str | None = Field(default=None, alias="deploymentName")
    """The Pulp that was backed up."""
    backup_claim: str | None = Field(default=None, alias="backupClaim")
    """The PersistentVolumeClaim holding the backup."""
    backup_namespace: str | None = Field(default=None, alias="backupNamespace")
    """The namespace of that claim."""
    backup_directory: str | None = Field(default=None, alias="backupDirectory")
    """The last complete backup directory in backupClaim."""
    admin_password_secret: str | None = Field(default=None, alias="adminPasswordSecret")
    """The admin password Secret that was backed up."""
    storage: str | None = None
    """What became of the file storage: copied, or object storage that is not."""
    run: BackupRun | None = None
    """The current or last run."""
    last_schedule_time: str | None = Field(default=None, alias="lastScheduleTime")
    """The schedule's time of the last run started."""
    next_schedule_time: str | None = Field(default=None, alias="nextScheduleTime")
    """When the next scheduled run starts."""
    last_successful_time: str | None = Field(default=None, alias="lastSuccessfulTime")
    """When the last successful run ended."""
    backups: list[BackupEntry] | None = None
    """The complete backups of this PulpBackup left in the claim after the last run's pruning."""


class PulpRestoreStatus(JobStatus):
    deployment_name: str | None = Field(default=None, alias="deploymentName")
    """The Pulp restored into."""
    backup_claim: str | None = Field(default=None, alias="backupClaim")
    """The PersistentVolumeClaim the backup is read from."""
    backup_directory: str | None = Field(default=None, alias="backupDirectory")
    """The backup's directory in that claim."""
    pulp_uid: str | None = Field(default=None, alias="pulpUID")
    """uid of the Pulp this restore created or took over (later passes recognise it)."""
    generation: int | None = None
    """metadata.generation of the PulpRestore the restore started for."""
    steps: list[StepRecord] = Field(default_factory=list)
    """Steps done, in order, with the time each finished."""
    start_time: str | None = Field(default=None, alias="startTime")
    """When the restore started."""
    completion_time: str | None = Field(default=None, alias="completionTime")
    """When it ended."""
    database_version: str | None = Field(default=None, alias="databaseVersion")
    """The version of the database server the backup was dumped from."""
    pulp_generation: int | None = Field(default=None, alias="pulpGeneration")
    """metadata.generation of the Pulp after the restore gave it its final spec."""
    message: str | None = None
    """Why the restore failed."""
