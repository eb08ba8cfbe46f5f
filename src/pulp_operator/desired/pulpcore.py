"""The pulpcore Deployments (api, content, worker, resource-manager) and their Services, and the
pod parts the Jobs share with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.pulp import GunicornSpec, PulpcoreSpec
from .common import (
    API_PORT,
    CONTENT_PORT,
    PULP_UID,
    at_least,
    container_security_context,
    merge_env,
    pod_security_context,
    resources,
    set_if,
)
from .context import Ctx
from .inputs import Manifest
from .settings import (
    FERNET_KEY,
    GCS_KEY,
    KEYS_DIR,
    PRIVATE_KEY,
    PUBLIC_KEY,
    ldap_ca_path,
    secret_env,
    trusted_ca,
)
from .workload import deployment, pod_spec, service, workload_replicas

WAIT_DB = "/usr/bin/wait_on_postgres.py"
WAIT_MIGRATIONS = "/usr/bin/wait_on_database_migrations.sh"
MAKE_DIRS = "mkdir -p /var/lib/pulp/media /var/lib/pulp/assets /var/lib/pulp/tmp"
CA_BUNDLE = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
RQ_WORKER = ["rq", "worker", "-w", "pulpcore.tasking.worker.PulpWorker", "-c", "pulpcore.rqconfig"]


@dataclass(frozen=True)
class PodParts:
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    env: list[dict[str, Any]]


def _file_claim(ctx: Ctx) -> str | None:
    if ctx.spec.file_storage_storage_class:
        return names.file_storage(ctx.name)
    return ctx.spec.pvc


def pod_parts(ctx: Ctx, *, with_storage: bool = True) -> PodParts:
    """Volumes, mounts and environment every pulpcore container gets."""
    spec = ctx.spec
    volumes: list[dict[str, Any]] = [
        {
            "name": "settings",
            "secret": {
                "secretName": names.server_settings(ctx.name),
                "items": [{"key": "settings.py", "path": "settings.py"}],
            },
        },
    ]
    mounts: list[dict[str, Any]] = [
        {
            "name": "settings",
            "mountPath": "/etc/pulp/settings.py",
            "subPath": "settings.py",
            "readOnly": True,
        },
    ]
    sources: list[dict[str, Any]] = [
        {
            "secret": {
                "name": ctx.secrets.db_fields_encryption,
                "items": [{"key": FERNET_KEY, "path": FERNET_KEY}],
            }
        },
        {
            "secret": {
                "name": ctx.secrets.container_auth,
                "items": [
                    {"key": spec.container_auth_private_key_name, "path": PRIVATE_KEY},
                    {"key": spec.container_auth_public_key_name, "path": PUBLIC_KEY},
                ],
            }
        },
    ]
    if spec.object_storage_gcs_secret:
        sources.append(
            {
                "secret": {
                    "name": spec.object_storage_gcs_secret,
                    "items": [{"key": GCS_KEY, "path": GCS_KEY}],
                }
            }
        )
    volumes.append({"name": "keys", "projected": {"sources": sources}})
    mounts.append({"name": "keys", "mountPath": KEYS_DIR, "readOnly": True})

    claim = _file_claim(ctx)
    if claim and with_storage:
        volumes.append({"name": "file-storage", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "file-storage", "mountPath": "/var/lib/pulp"})
    elif claim is None:
        volumes.append({"name": "tmp", "emptyDir": {}})
        mounts.append({"name": "tmp", "mountPath": "/var/lib/pulp/tmp"})

    if spec.ldap and spec.ldap.ca:
        volumes.append(
            {
                "name": "ldap-ca",
                "secret": {
                    "secretName": spec.ldap.ca,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            }
        )
        mounts.append(
            {
                "name": "ldap-ca",
                "mountPath": ldap_ca_path(ctx),
                "subPath": "ca.crt",
                "readOnly": True,
            }
        )
    ca = trusted_ca(ctx)
    if ca:
        volumes.append(
            {
                "name": "trusted-ca",
                "configMap": {"name": ca[0], "items": [{"key": ca[1], "path": "ca-bundle.crt"}]},
            }
        )
        mounts.append(
            {
                "name": "trusted-ca",
                "mountPath": CA_BUNDLE,
                "subPath": "ca-bundle.crt",
                "readOnly": True,
            }
        )
    return PodParts(volumes=volumes, mounts=mounts, env=secret_env(ctx))


def init_container(
    ctx: Ctx, parts: PodParts, workload: PulpcoreSpec, *, make_dirs: bool
) -> dict[str, Any]:
    init = workload.init_container
    script = f"{WAIT_DB} && {WAIT_MIGRATIONS}"
    if make_dirs:
        script = f"{MAKE_DIRS} && {script}"
    container: dict[str, Any] = {
        "name": "init-container",
        "image": (init.image if init and init.image else None) or ctx.pod_image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["/bin/sh", "-c", script],
        "env": merge_env(parts.env, init.env_vars if init else None),
        "volumeMounts": parts.mounts,
        "securityContext": container_security_context(),
    }
    set_if(container, "resources", resources(init.resource_requirements if init else None))
    return container


def _gunicorn_args(workload: GunicornSpec, port: int, name: str) -> list[str]:
    args = [
        "--bind",
        f"0.0.0.0:{port}",
        "--name",
        name,
        "--timeout",
        str(workload.gunicorn_timeout),
        "--workers",
        str(workload.gunicorn_workers),
        "--access-logfile",
        "-",
    ]
    if workload.gunicorn_access_logformat:
        args += ["--access-logformat", workload.gunicorn_access_logformat]
    return args


def api_command(ctx: Ctx) -> list[str]:
    args = _gunicorn_args(ctx.spec.api, API_PORT, "pulp-api")
    if at_least(ctx.version, (3, 33)):
        return ["pulpcore-api", *args]
    return ["gunicorn", "pulpcore.app.wsgi:application", *args]


def content_command(ctx: Ctx) -> list[str]:
    args = _gunicorn_args(ctx.spec.content, CONTENT_PORT, "pulp-content")
    if at_least(ctx.version, (3, 33)):
        return ["pulpcore-content", *args]
    return [
        "gunicorn",
        "pulpcore.content:server",
        "--worker-class",
        "aiohttp.GunicornWebWorker",
        *args,
    ]


def worker_command(ctx: Ctx) -> list[str]:
    if at_least(ctx.version, (3, 13)):
        return ["pulpcore-worker"]
    return RQ_WORKER


def resource_manager_command(ctx: Ctx) -> list[str]:
    if at_least(ctx.version, (3, 13)):
        return ["pulpcore-worker", "--resource-manager"]
    return [*RQ_WORKER, "-n", "resource-manager"]


def needs_resource_manager(ctx: Ctx) -> bool:
    return not at_least(ctx.version, (3, 16))


def _http_probe(path: str, port: int, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, **timing}


def _probes(ctx: Ctx, component: str, workload: PulpcoreSpec) -> dict[str, Any]:
    status = f"{ctx.api_root}api/v3/status/"
    readiness: dict[str, Any] | None = None
    liveness: dict[str, Any] | None = None
    if component == "api":
        readiness = _http_probe(
            status,
            API_PORT,
            initialDelaySeconds=5,
            periodSeconds=10,
            timeoutSeconds=10,
            failureThreshold=3,
        )
        liveness = _http_probe(
            status,
            API_PORT,
            initialDelaySeconds=60,
            periodSeconds=20,
            timeoutSeconds=10,
            failureThreshold=5,
        )
    elif component == "content":
        readiness = _http_probe(
            ctx.content_path,
            CONTENT_PORT,
            initialDelaySeconds=5,
            periodSeconds=10,
            timeoutSeconds=10,
            failureThreshold=3,
        )
    probes: dict[str, Any] = {}
    set_if(probes, "readinessProbe", workload.readiness_probe or readiness)
    set_if(probes, "livenessProbe", workload.liveness_probe or liveness)
    return probes


def main_container(
    ctx: Ctx,
    parts: PodParts,
    component: str,
    workload: PulpcoreSpec,
    command: list[str],
    ports: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": component,
        "image": ctx.pod_image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": command,
        "env": merge_env(parts.env, workload.env_vars),
    }
    set_if(container, "ports", ports)
    container.update(_probes(ctx, component, workload))
    set_if(container, "resources", resources(workload.resource_requirements))
    container["volumeMounts"] = parts.mounts
    container["securityContext"] = container_security_context()
    return container


def pulpcore_deployment(
    ctx: Ctx,
    component: str,
    workload: PulpcoreSpec,
    command: list[str],
    *,
    config_hash: str,
    port: int | None = None,
    grace_seconds: int = 30,
    replicas: int | None = None,
    strategy: dict[str, Any] | None = None,
) -> Manifest:
    parts = pod_parts(ctx)
    ports = [{"name": component, "containerPort": port, "protocol": "TCP"}] if port else None
    pod = pod_spec(
        workload,
        containers=[main_container(ctx, parts, component, workload, command, ports)],
        init_containers=[init_container(ctx, parts, workload, make_dirs=component == "api")],
        volumes=parts.volumes,
        security_context=pod_security_context(PULP_UID),
        service_account=names.service_account(ctx.name),
        grace_seconds=grace_seconds,
        topology=workload.topology_spread_constraints,
    )
    name = {
        "api": names.api,
        "content": names.content,
        "worker": names.worker,
        "resource-manager": names.resource_manager,
    }[component](ctx.name)
    return deployment(
        ctx,
        component,
        name,
        pod=pod,
        replicas=replicas if replicas is not None else workload_replicas(workload),
        strategy=strategy or workload.strategy,
        annotations=workload.deployment_annotations,
        pod_annotations={names.CONFIG_HASH_ANNOTATION: config_hash},
        extra_pod_labels=workload.pod_labels,
    )


def api_objects(ctx: Ctx, config_hash: str) -> list[Manifest]:
    return [
        pulpcore_deployment(
            ctx, "api", ctx.spec.api, api_command(ctx), config_hash=config_hash, port=API_PORT
        ),
        service(
            ctx,
            "api",
            names.api_service(ctx.name),
            [{"name": "api-24817", "port": API_PORT, "protocol": "TCP", "targetPort": API_PORT}],
        ),
    ]


def content_objects(ctx: Ctx, config_hash: str) -> list[Manifest]:
    return [
        pulpcore_deployment(
            ctx,
            "content",
            ctx.spec.content,
            content_command(ctx),
            config_hash=config_hash,
            port=CONTENT_PORT,
        ),
        service(
            ctx,
            "content",
            names.content_service(ctx.name),
            [
                {
                    "name": "content-24816",
                    "port": CONTENT_PORT,
                    "protocol": "TCP",
                    "targetPort": CONTENT_PORT,
                }
            ],
        ),
    ]


def worker_objects(ctx: Ctx, config_hash: str) -> list[Manifest]:
    objects = [
        pulpcore_deployment(
            ctx,
            "worker",
            ctx.spec.worker,
            worker_command(ctx),
            config_hash=config_hash,
            grace_seconds=120,
        )
    ]
    if needs_resource_manager(ctx):
        # Exactly one resource manager may run at a time (pulp.plan.io #3707).
        objects.append(
            pulpcore_deployment(
                ctx,
                "resource-manager",
                ctx.spec.worker,
                resource_manager_command(ctx),
                config_hash=config_hash,
                grace_seconds=120,
                replicas=1,
                strategy={"type": "Recreate"},
            )
        )
    return objects
