"""Names and labels of everything the operator creates, in one place.

Object names match the upstream operator's so that users can switch operators without renaming.
Selectors use only labels that never change after creation.
"""

from __future__ import annotations

import hashlib

MANAGER = "pulp-operator"
PART_OF = "pulp"
PULP_CR_LABEL = "pulp_cr"
OWNED_LABEL = "repo-manager.pulpproject.org/owned-by"
"""Label on every object the operator manages: its value is the Pulp name. Watches select on it."""
KEEP_ANNOTATION = "repo-manager.pulpproject.org/keep-on-delete"
"""Annotation on data the operator keeps when its Pulp is deleted (no ownerReference then)."""
CONFIG_HASH_ANNOTATION = "repo-manager.pulpproject.org/config-hash"
"""Pod template annotation: hash of the configuration the pods read; a change rolls the pods."""


def api(name: str) -> str:
    return f"{name}-api"


def api_service(name: str) -> str:
    return f"{name}-api-svc"


def content(name: str) -> str:
    return f"{name}-content"


def content_service(name: str) -> str:
    return f"{name}-content-svc"


def worker(name: str) -> str:
    return f"{name}-worker"


def resource_manager(name: str) -> str:
    return f"{name}-resource-manager"


def web(name: str) -> str:
    return f"{name}-web"


def web_service(name: str) -> str:
    return f"{name}-web-svc"


def web_config(name: str) -> str:
    return f"{name}-configmap"


def database(name: str) -> str:
    return f"{name}-database"


def database_service(name: str) -> str:
    return f"{name}-database-svc"


def database_volume_claim_template(name: str) -> str:
    """The database StatefulSet's volumeClaimTemplate, as the upstream operator names it (its PVC
    is <name>-postgres-<name>-database-0)."""
    return f"{name}-postgres"


LEGACY_DATABASE_VOLUME_CLAIM_TEMPLATE = "postgres"
"""The volumeClaimTemplate name of database StatefulSets created by earlier releases of this
operator (PVC postgres-<name>-database-0); such StatefulSets keep it (it is immutable)."""


def database_claim(name: str, template: str | None = None) -> str:
    """The PVC the database StatefulSet's pod uses, for a volumeClaimTemplate name."""
    return f"{template or database_volume_claim_template(name)}-{database(name)}-0"


def postgres_configuration(name: str) -> str:
    return f"{name}-postgres-configuration"


def redis(name: str) -> str:
    return f"{name}-redis"


def redis_service(name: str) -> str:
    return f"{name}-redis-svc"


def redis_data(name: str) -> str:
    return f"{name}-redis-data"


def file_storage(name: str) -> str:
    return f"{name}-file-storage"


def server_settings(name: str) -> str:
    return f"{name}-server"


def admin_password(name: str) -> str:
    return f"{name}-admin-password"


def secret_key(name: str) -> str:
    return f"{name}-secret-key"


def db_fields_encryption(name: str) -> str:
    return f"{name}-db-fields-encryption"


def container_auth(name: str) -> str:
    return f"{name}-container-auth"


def otel_collector_config(name: str) -> str:
    return f"{name}-otel-collector-config"


def otel_collector_service(name: str) -> str:
    return f"{name}-otel-collector-svc"


def signing_job(name: str, digest: str) -> str:
    return f"{name}-signing-metadata-{digest}"


def trusted_ca_bundle(name: str) -> str:
    """ConfigMap of the CA bundle with mount_trusted_ca and no mount_trusted_ca_configmap_key (on
    OpenShift the Cluster Network Operator injects the cluster's trusted CAs into it)."""
    return f"{name}-user-ca-bundle"


def service_account(name: str) -> str:
    return name


def ingress(name: str) -> str:
    return name


def _job_prefix(name: str, middle: str, digest_length: int) -> str:
    """The start of a Job name, before its digest, such that the whole name fits 63 characters
    (the job-name label the Job controller adds to its pods must be a label value): long Pulp
    names are cut, and stay unique by a hash of their own. It depends on the name only, so that
    a Job is recognised by its prefix."""
    if len(name) + len(middle) + digest_length + 2 <= 63:
        return f"{name}-{middle}-"
    tag = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = 63 - len(middle) - digest_length - len(tag) - 3
    return f"{name[:keep].rstrip('-')}-{tag}-{middle}-"


MIGRATION_DIGEST = 10
ADMIN_PASSWORD_DIGEST = 16


def migration_job(name: str, digest: str) -> str:
    return _job_prefix(name, "pulpcore-migration", MIGRATION_DIGEST) + digest


def admin_password_job(name: str, digest: str) -> str:
    return _job_prefix(name, "reset-admin-password", ADMIN_PASSWORD_DIGEST) + digest


def selector(name: str, component: str) -> dict[str, str]:
    """Pod selector of a component's workload: the labels the upstream operator selects on, so that
    its Deployments (whose selectors are immutable) can be taken over as they are."""
    return {
        "app.kubernetes.io/name": f"pulp-{component}",
        "app.kubernetes.io/instance": f"pulp-{component}-{name}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGER,
        "app": f"pulp-{component}",
        PULP_CR_LABEL: name,
    }


def labels(name: str, component: str) -> dict[str, str]:
    """Labels of an object of a component (api, content, worker, web, database, cache, ...)."""
    return {**selector(name, component), OWNED_LABEL: name}
