"""Objects a Pulp needs: what the operator reads, watches and checks before it builds.

`references` lists what the spec names; `requirements` adds the Secrets the operator generates;
`check` is the one place where a missing object or key becomes a Problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .. import names
from ..api.pulp import PulpSpec
from .inputs import Inputs, Problem

RefKind = Literal["Secret", "ConfigMap", "PersistentVolumeClaim"]

EXTERNAL_DB_KEYS = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USERNAME",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB_NAME",
)
"""Keys an external_db_secret must hold (POSTGRES_SSLMODE is optional)."""
SSO_REQUIRED_KEYS = (
    "social_auth_keycloak_key",
    "social_auth_keycloak_secret",
    "social_auth_keycloak_public_key",
    "keycloak_host",
    "keycloak_protocol",
    "keycloak_port",
    "keycloak_realm",
)
"""Keys an sso_secret must hold (as the upstream operator requires)."""


@dataclass(frozen=True)
class Reference:
    kind: RefKind
    name: str
    field: str
    """The spec field that names the object, as users write it (e.g. spec.database.pvc)."""
    keys: tuple[str, ...] = ()
    """Keys the object must hold."""
    generated: bool = False
    """The operator generates it (the spec does not name it)."""

    def describe(self) -> str:
        how = "generated for" if self.generated else "referenced by"
        return f"{self.kind} {self.name} {how} {self.field}"

    @property
    def condition(self) -> str:
        """The component condition a problem with this object belongs to."""
        if "database" in self.field:
            return "DatabaseReady"
        if "cache" in self.field:
            return "CacheReady"
        if "storage" in self.field or self.field == "spec.pvc":
            return "StorageReady"
        return "Ready"


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
    add("Secret", spec.sso_secret, "spec.sso_secret", *SSO_REQUIRED_KEYS)
    add("Secret", spec.signing_secret, "spec.signing_secret", "signing_service.gpg")
    add("Secret", spec.signing_scripts, "spec.signing_scripts")
    add("ConfigMap", spec.custom_pulp_settings, "spec.custom_pulp_settings")
    if spec.mount_trusted_ca_configmap_key:
        cm, _, key = spec.mount_trusted_ca_configmap_key.partition(":")
        add("ConfigMap", cm, "spec.mount_trusted_ca_configmap_key", *([key] if key else []))
    return refs


def generated_references(name: str, spec: PulpSpec) -> list[Reference]:
    """The Secrets the operator generates (those the spec does not name), with the keys the pods
    read from them."""
    refs: list[Reference] = []

    def add(field: str, chosen: str | None, generated: str, *keys: str) -> None:
        if not chosen:
            refs.append(Reference("Secret", generated, field, keys, generated=True))

    add(
        "spec.admin_password_secret",
        spec.admin_password_secret,
        names.admin_password(name),
        "password",
    )
    add("spec.pulp_secret_key", spec.pulp_secret_key, names.secret_key(name), "secret_key")
    add(
        "spec.db_fields_encryption_secret",
        spec.db_fields_encryption_secret,
        names.db_fields_encryption(name),
        "database_fields.symmetric.key",
    )
    add(
        "spec.container_token_secret",
        spec.container_token_secret,
        names.container_auth(name),
        spec.container_auth_private_key_name,
        spec.container_auth_public_key_name,
    )
    add(
        "spec.database.external_db_secret",
        spec.database.external_db_secret,
        names.postgres_configuration(name),
        "username",
        "password",
        "database",
    )
    return refs


def requirements(name: str, spec: PulpSpec) -> list[Reference]:
    """Every object a Pulp needs before anything can be applied."""
    return [*references(spec), *generated_references(name, spec)]


def check(inputs: Inputs) -> list[Problem]:
    """One Problem per missing object or set of missing keys, keyed by field."""
    found: Mapping[str, Mapping[str, object]]
    problems: dict[str, Problem] = {}
    for ref in requirements(inputs.name, inputs.spec):
        if ref.kind == "Secret":
            found = inputs.secrets
        elif ref.kind == "ConfigMap":
            found = inputs.config_maps
        else:
            found = {claim: {} for claim in inputs.claims}
        data = found.get(ref.name)
        if data is None:
            problem = Problem(
                ref.field,
                "reference",
                f"{ref.kind}NotFound",
                f"{ref.describe()} not found in namespace {inputs.namespace}",
                ref.condition,
            )
        else:
            missing = [k for k in ref.keys if k not in data]
            if not missing:
                continue
            problem = Problem(
                ref.field,
                "reference",
                f"{ref.kind}KeyNotFound",
                f"{ref.describe()} has no key {', '.join(missing)}",
                ref.condition,
            )
        problems.setdefault(ref.field, problem)
    return list(problems.values())


def placeholder(ref: Reference) -> dict[str, str]:
    """Stand-in data for a referenced object that is assumed to exist (used by render)."""
    return {key: f"<{key} from {ref.kind} {ref.name}>" for key in ref.keys}
