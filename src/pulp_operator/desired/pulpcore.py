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
)
from .signing import gpg_init_container, signing, signing_env, signing_mounts, signing_volumes
from .telemetry import api_env, sidecar, sidecar_volume
from .telemetry import enabled as telemetry_enabled
from .trust import CA_BUNDLE, trusted_ca
from .workload import deployment, pod_spec, service, workload_replicas

WAIT_DB = "/usr/bin/wait_on_postgres.py"
WAIT_MIGRATIONS = "/usr/bin/wait_on_database_migrations.sh"
MAKE_DIRS = "mkdir -p /var/lib/pulp/media /var/lib/pulp/assets /var/lib/pulp/tmp"
RQ_WORKER = ["rq", "worker", "-w", "pulpcore.tasking.worker.PulpWorker", "-c", "pulpcore.rqconfig"]
ADMIN_PASSWORD_FILE = "/etc/pulp/pulp-admin-password"
"""Where the api container finds the admin password (as the upstream operator mounts it)."""

DRAIN_SECONDS = 10
"""A terminating api/content pod keeps serving this long (preStop) before gunicorn gets SIGTERM:
time for the endpoint removal to reach every kube-proxy and ingress, so that no new request is
sent to a pod that stopped listening."""
ROLLING_UPDATE = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
}
"""New pods become ready before old ones stop: no moment with fewer serving pods."""


def drain_hook(seconds: int = DRAIN_SECONDS) -> dict[str, Any]:
    return {"preStop": {"exec": {"command": ["sleep", str(seconds)]}}}


# The resource manager of pulpcore < 3.16 is an RQ worker with the fixed name "resource-manager".
# A second one started next to it fails at start ("There exists an active worker named
# 'resource-manager' already", rq's register_birth), after marking the running one offline in the
# database (pulpcore's register_birth); after a kill, a new one is refused until the dead one's
# Redis key expires (WORKER_TTL + 60 s, longer when it died in a task). So every resource
# manager runs under this guard: it waits for a PostgreSQL advisory lock of the Pulp database
# (polled, so that SIGTERM ends a waiting spare at once), then clears what Redis still holds of
# a dead resource manager (none can be alive: it would hold the lock) and runs the command
# given as its arguments. The lock lives as long as its session: when the active pod dies, its
# connection closes and a spare takes over within seconds. If the session breaks while the
# resource manager runs, the guard stops it and exits non-zero, to wait for the lock again.
RESOURCE_MANAGER_LOCK = 0x70756C70_726D  # "pulprm": one advisory lock key per Pulp database
RESOURCE_MANAGER_GUARD = f"""\
import signal, subprocess, sys, time
import django
django.setup()
from django.db import connection
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
print("resource manager guard: waiting for the lock", flush=True)
while not stopping:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [{RESOURCE_MANAGER_LOCK}])
        if cursor.fetchone()[0]:
            break
    time.sleep(2)
if stopping:
    sys.exit(0)
print("resource manager guard: lock held, this is the active resource manager", flush=True)
try:
    from pulpcore.tasking.connection import get_redis_connection
    redis = get_redis_connection()
    key = "rq:worker:resource-manager"
    if redis.delete(key):
        print("resource manager guard: removed the stale Redis entry of a dead one", flush=True)
    redis.srem("rq:workers", key)
    redis.srem("rq:workers:resource-manager", key)
except Exception as exc:
    print("resource manager guard: could not clear stale Redis entries: %r" % exc, flush=True)
child = subprocess.Popen(sys.argv[1:])
forward = lambda sig, _frame: child.send_signal(sig)
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
if stopping:
    child.terminate()
while True:
    try:
        sys.exit(child.wait(timeout=10))
    except subprocess.TimeoutExpired:
        pass
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        print("resource manager guard: lost the session holding the lock (%r)" % exc, flush=True)
        child.kill()
        child.wait()
        sys.exit(1)
"""


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
    gcs = spec.object_storage_gcs_secret
    if gcs and GCS_KEY in (ctx.inputs.secrets.get(gcs) or {}):
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


def bind_address(ctx: Ctx, port: int) -> str:
    """Dual-stack [::] as upstream binds (IPv4 clients reach it too), IPv4 only when asked."""
    return f"0.0.0.0:{port}" if ctx.spec.ipv6_disabled else f"[::]:{port}"


def grace_seconds(workload: GunicornSpec) -> int:
    """Drain, then gunicorn's graceful shutdown (in-flight requests finish), plus a margin."""
    return DRAIN_SECONDS + workload.gunicorn_timeout + 5


def _gunicorn_args(ctx: Ctx, workload: GunicornSpec, port: int, name: str) -> list[str]:
    args = [
        "--bind",
        bind_address(ctx, port),
        "--name",
        name,
        "--timeout",
        str(workload.gunicorn_timeout),
        # SIGTERM lets the requests in flight finish (a sync worker's request cannot take longer
        # than the timeout anyway).
        "--graceful-timeout",
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
    args = _gunicorn_args(ctx, ctx.spec.api, API_PORT, "pulp-api")
    if at_least(ctx.version, (3, 33)):
        return ["pulpcore-api", *args]
    return ["gunicorn", "pulpcore.app.wsgi:application", *args]


def content_command(ctx: Ctx) -> list[str]:
    args = _gunicorn_args(ctx, ctx.spec.content, CONTENT_PORT, "pulp-content")
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
    """The resource manager under RESOURCE_MANAGER_GUARD (python3 of the image runs it)."""
    if at_least(ctx.version, (3, 13)):
        command = ["pulpcore-worker", "--resource-manager"]
    else:
        command = [*RQ_WORKER, "-n", "resource-manager"]
    return ["python3", "-c", RESOURCE_MANAGER_GUARD, *command]


def resource_manager_replicas(ctx: Ctx) -> int:
    rm = ctx.spec.resource_manager
    return rm.replicas if rm is not None else 1


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
    if component in ("api", "content"):
        container["lifecycle"] = drain_hook()
    set_if(container, "resources", resources(workload.resource_requirements))
    mounts = parts.mounts
    if component == "api":
        mounts = [
            *mounts,
            {
                "name": "admin-password",
                "mountPath": ADMIN_PASSWORD_FILE,
                "subPath": "password",
                "readOnly": True,
            },
        ]
    container["volumeMounts"] = mounts
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
    init_containers = [init_container(ctx, parts, workload, make_dirs=component == "api")]
    sidecars: list[dict[str, Any]] = []
    sign = signing(ctx) if component == "worker" else None
    if sign is not None:  # signing tasks run in the workers
        parts = PodParts(
            volumes=[*parts.volumes, *signing_volumes(ctx, sign)],
            mounts=[*parts.mounts, *signing_mounts(sign)],
            env=[*parts.env, *signing_env(sign)],
        )
        init_containers.append(gpg_init_container(ctx, sign, ctx.pod_image))
    if component == "api" and telemetry_enabled(ctx):
        parts = PodParts(
            volumes=[*parts.volumes, sidecar_volume(ctx)],
            mounts=parts.mounts,
            env=[*parts.env, *api_env(ctx)],
        )
        sidecars.append(sidecar(ctx))
    ports = [{"name": component, "containerPort": port, "protocol": "TCP"}] if port else None
    volumes = parts.volumes
    if component == "api":
        volumes = [
            *volumes,
            {
                "name": "admin-password",
                "secret": {
                    "secretName": ctx.secrets.admin_password,
                    "items": [{"key": "password", "path": "password"}],
                },
            },
        ]
    pod = pod_spec(
        workload,
        containers=[main_container(ctx, parts, component, workload, command, ports), *sidecars],
        init_containers=init_containers,
        volumes=volumes,
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
        strategy=strategy or workload.strategy or ROLLING_UPDATE,
        annotations=workload.deployment_annotations,
        pod_annotations={names.CONFIG_HASH_ANNOTATION: config_hash},
        extra_pod_labels=workload.pod_labels,
    )


def api_objects(ctx: Ctx, config_hash: str) -> list[Manifest]:
    return [
        pulpcore_deployment(
            ctx,
            "api",
            ctx.spec.api,
            api_command(ctx),
            config_hash=config_hash,
            port=API_PORT,
            grace_seconds=grace_seconds(ctx.spec.api),
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
            grace_seconds=grace_seconds(ctx.spec.content),
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
        # One resource manager is active at a time (the guard's lock); the others are hot spares,
        # and a rollout's new pods wait for the old one's lock too.
        objects.append(
            pulpcore_deployment(
                ctx,
                "resource-manager",
                ctx.spec.worker,
                resource_manager_command(ctx),
                config_hash=config_hash,
                grace_seconds=120,
                replicas=resource_manager_replicas(ctx),
                strategy={"type": "Recreate"},
            )
        )
    return objects
