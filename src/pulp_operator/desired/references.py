"""Objects a Pulp names: what the operator reads, watches and checks before it builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..api.pulp import PulpSpec

RefKind = Literal["Secret", "ConfigMap", "PersistentVolumeClaim"]

EXTERNAL_DB_KEYS = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USERNAME",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB_NAME",
)
"""Keys an external_db_secret must hold (POSTGRES_SSLMODE is optional)."""


@dataclass(frozen=True)
class Reference:
    kind: RefKind
    name: str
    field: str
    """The spec field that names the object, as users write it (e.g. spec.database.pvc)."""
    keys: tuple[str, ...] = ()
    """Keys the object must hold."""

    def describe(self) -> str:
        return f"{self.kind} {self.name} referenced by {self.field}"


def references(spec: PulpSpec) -> list[Reference]:
    """Every object the spec names, with the keys the operator needs from it."""
    refs: list[Reference] = []

    def add(kind: RefKind, name: str | None, field: str, *keys: str) -> None:
        if name:
            refs.append(Reference(kind, name, field, keys))

    add("Secret", spec.admin_password_secret, "spec.admin_password_secret", "password")
    add("Secret", spec.pulp_secret_key, "spec.pulp_secret_key", "secret_key")
    add(
        "Secret",
        spec.db_fields_encryption_secret,
        "spec.db_fields_encryption_secret",
        "database_fields.symmetric.key",
    )
    add(
        "Secret",
        spec.container_token_secret,
        "spec.container_token_secret",
        spec.container_auth_public_key_name,
        spec.container_auth_private_key_name,
    )
    add(
        "Secret",
        spec.database.external_db_secret,
        "spec.database.external_db_secret",
        *EXTERNAL_DB_KEYS,
    )
    add("PersistentVolumeClaim", spec.database.pvc, "spec.database.pvc")
    if spec.cache is not None and spec.cache.enabled:
        add(
            "Secret",
            spec.cache.external_cache_secret,
            "spec.cache.external_cache_secret",
            "REDIS_HOST",
            "REDIS_PORT",
        )
        if not spec.cache.external_cache_secret:
            add("PersistentVolumeClaim", spec.cache.pvc, "spec.cache.pvc")
    add("PersistentVolumeClaim", spec.pvc, "spec.pvc")
    add(
        "Secret",
        spec.object_storage_s3_secret,
        "spec.object_storage_s3_secret",
        "s3-access-key-id",
        "s3-secret-access-key",
        "s3-bucket-name",
    )
    add(
        "Secret",
        spec.object_storage_azure_secret,
        "spec.object_storage_azure_secret",
        "azure-account-name",
        "azure-account-key",
        "azure-container",
    )
    add(
        "Secret",
        spec.object_storage_gcs_secret,
        "spec.object_storage_gcs_secret",
        "gcs-bucket-name",
    )
    if spec.ldap is not None:
        add("Secret", spec.ldap.config, "spec.ldap.config", "auth_ldap_server_uri")
        add("Secret", spec.ldap.ca, "spec.ldap.ca", "ca.crt")
    add("Secret", spec.sso_secret, "spec.sso_secret")
    add("Secret", spec.signing_secret, "spec.signing_secret", "signing_service.gpg")
    add("Secret", spec.signing_scripts, "spec.signing_scripts")
    add("ConfigMap", spec.custom_pulp_settings, "spec.custom_pulp_settings")
    if spec.mount_trusted_ca_configmap_key:
        cm, key = spec.mount_trusted_ca_configmap_key.split(":", 1)
        add("ConfigMap", cm, "spec.mount_trusted_ca_configmap_key", key)
    return refs


def placeholder(ref: Reference) -> dict[str, str]:
    """Stand-in data for a referenced object that is assumed to exist (used by render)."""
    return {key: f"<{key} from {ref.kind} {ref.name}>" for key in ref.keys}
