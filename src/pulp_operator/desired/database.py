"""The managed PostgreSQL: StatefulSet N-database and headless Service N-database-svc."""

from __future__ import annotations

from typing import Any

from .. import names
from .common import (
    POSTGRES_UID,
    container_security_context,
    env_secret,
    env_value,
    meta,
    pod_security_context,
    resources,
    set_if,
)
from .context import Ctx
from .inputs import Manifest
from .workload import pod_labels, pod_spec, service

COMPONENT = "database"
DATA_DIR = "/var/lib/postgresql/data"
PG_ISREADY = 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB" -h 127.0.0.1 -p 5432'


def database_objects(ctx: Ctx) -> list[Manifest]:
    if not ctx.managed_db:
        return []
    return [_service(ctx), _statefulset(ctx)]


def _service(ctx: Ctx) -> Manifest:
    port = ctx.spec.database.postgres_port
    return service(
        ctx,
        COMPONENT,
        names.database_service(ctx.name),
        [{"name": "postgres", "port": port, "protocol": "TCP", "targetPort": "postgres"}],
        headless=True,
    )


def _statefulset(ctx: Ctx) -> Manifest:
    db = ctx.spec.database
    secret = ctx.secrets.postgres
    # The volume is named after the volumeClaimTemplate (upstream's name); with database.pvc too.
    volume = names.database_volume_claim_template(ctx.name)
    probe_exec = {"exec": {"command": ["/bin/sh", "-c", PG_ISREADY]}}
    container: dict[str, Any] = {
        "name": "postgres",
        "image": db.postgres_image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "env": [
            # POSTGRESQL_* for the sclorg/RHEL images (as upstream sets them), POSTGRES_* for the
            # docker-library ones.
            env_secret("POSTGRESQL_DATABASE", secret, "database"),
            env_secret("POSTGRESQL_USER", secret, "username"),
            env_secret("POSTGRESQL_PASSWORD", secret, "password"),
            env_secret("POSTGRES_USER", secret, "username"),
            env_secret("POSTGRES_PASSWORD", secret, "password"),
            env_secret("POSTGRES_DB", secret, "database"),
            env_value("PGDATA", db.postgres_data_path),
            env_value("POSTGRES_INITDB_ARGS", db.postgres_initdb_args),
            env_value("POSTGRES_HOST_AUTH_METHOD", db.postgres_host_auth_method),
        ],
        "ports": [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}],
        "readinessProbe": db.readiness_probe
        or {**probe_exec, "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": db.liveness_probe
        or {
            **probe_exec,
            "initialDelaySeconds": 60,
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "volumeMounts": [{"name": volume, "mountPath": DATA_DIR, "subPath": "data"}],
        "securityContext": container_security_context(),
    }
    if db.postgres_extra_args:
        container["args"] = ["postgres", *db.postgres_extra_args]
    set_if(container, "resources", resources(db.postgres_resource_requirements))
    volumes = [{"name": volume, "persistentVolumeClaim": {"claimName": db.pvc}}] if db.pvc else None
    pod = pod_spec(
        db,
        containers=[container],
        volumes=volumes,
        security_context=pod_security_context(POSTGRES_UID),
        service_account=names.service_account(ctx.name),
        grace_seconds=60,
    )
    obj = meta(
        "StatefulSet",
        "apps/v1",
        names.database(ctx.name),
        ctx.namespace,
        names.labels(ctx.name, COMPONENT),
    )
    # No serviceName, as upstream: the pods are reached through the Service N-database-svc; the
    # field is immutable, so a StatefulSet that has one keeps it (see adopt.py).
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": names.selector(ctx.name, COMPONENT)},
        "template": {
            "metadata": {"labels": pod_labels(ctx, COMPONENT, db.pod_labels)},
            "spec": pod,
        },
    }
    if not db.pvc:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": db.postgres_storage_requirements}},
        }
        if db.postgres_storage_class:
            claim_spec["storageClassName"] = db.postgres_storage_class
        spec["volumeClaimTemplates"] = [{"metadata": {"name": volume}, "spec": claim_spec}]
        if not ctx.spec.keep_data_on_delete:
            spec["persistentVolumeClaimRetentionPolicy"] = {
                "whenDeleted": "Delete",
                "whenScaled": "Retain",
            }
    obj["spec"] = spec
    return obj
