"""The PulpBackup and PulpRestore kinds of repo-manager.pulpproject.org/v1."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from .pulp import Condition, SpecModel
from .types import KubeObject, Quantity


class PulpBackupSpec(SpecModel):
    """Desired state of a PulpBackup."""

    deployment_name: str = Field(min_length=1)
    """Name of the Pulp to back up."""
    backup_pvc: str | None = None
    """PersistentVolumeClaim for the backup (<backup name>-backup-claim when not set)."""
    backup_pvc_namespace: str | None = None
    """Namespace of backup_pvc (the backup's namespace when not set)."""
    backup_storage_requirements: Quantity = "5Gi"
    """Size of the backup PVC created by the operator."""
    backup_storage_class: str | None = None
    """StorageClass of the backup PVC (the cluster default when not set)."""
    admin_password_secret: str | None = None
    postgres_configuration_secret: str | None = None
    pulp_secret_key: str | None = None
    affinity: KubeObject | None = None


class PulpRestoreSpec(SpecModel):
    """Desired state of a PulpRestore."""

    deployment_name: str = "pulp"
    """Name of the Pulp to restore."""
    backup_name: str | None = None
    """PulpBackup to restore from."""
    backup_pvc: str | None = None
    """PersistentVolumeClaim holding the backup (from the PulpBackup when not set)."""
    backup_dir: str | None = None
    """Directory of the backup in the PVC (from the PulpBackup status when not set)."""
    keep_replicas: bool = False
    """Restore the replicas of the backed-up Pulp instead of 1."""


class JobStatus(SpecModel):
    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class PulpBackupStatus(JobStatus):
    deployment_name: str | None = Field(default=None, alias="deploymentName")
    backup_claim: str | None = Field(default=None, alias="backupClaim")
    backup_namespace: str | None = Field(default=None, alias="backupNamespace")
    backup_directory: str | None = Field(default=None, alias="backupDirectory")
    admin_password_secret: str | None = Field(default=None, alias="adminPasswordSecret")


class PulpRestoreStatus(JobStatus):
    pass
