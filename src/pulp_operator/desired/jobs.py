"""The migration Job, the admin password Job and the signing services Job.

Their names carry a digest of what they do (image and storage type; password), so that a new image
or a new password gets a new Job and a finished Job is never re-run; the operator reads their
outcome (they have no TTL). Their pod templates carry no config hash: a Job's template cannot
change after creation.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .. import names
from ..api.pulp import PulpcoreSpec
from ..api.types import PulpJob
from .common import (
    PULP_UID,
    container_security_context,
    env_secret,
    merge_env,
    meta,
    pod_security_context,
    resources,
    set_if,
)
from .context import Ctx
from .inputs import Inputs, Manifest
from .pulpcore import WAIT_DB, WAIT_MIGRATIONS, PodParts, pod_parts
from .signing import (
    failed_job_problem,
    job_env,
    job_script,
    signing,
    signing_job_name,
    signing_mounts,
    signing_volumes,
)
from .workload import pod_spec

PASSWORD_ENV = "PULP_ADMIN_PASSWORD"


def admin_password_hash(inputs: Inputs) -> str | None:
    """A short HMAC of the admin password keyed with the Django secret key, so that the status and
    the Job name do not let anyone test guesses of a weak password; None when the password is not
    known. The admin password Job is named after it and status.admin_password_hash records it."""
    admin = inputs.spec.admin_password_secret or names.admin_password(inputs.name)
    password = (inputs.secrets.get(admin) or {}).get("password")
    if password is None:
        return None
    key_secret = inputs.spec.pulp_secret_key or names.secret_key(inputs.name)
    key = (inputs.secrets.get(key_secret) or {}).get("secret_key") or (
        f"{inputs.namespace}/{inputs.name}"
    )
    mac = hmac.new(key.encode(), password.encode(), hashlib.sha256)
    return mac.hexdigest()[: names.ADMIN_PASSWORD_DIGEST]


def _job(
    ctx: Ctx,
    component: str,
    name: str,
    image: str,
    script: str,
    job_spec: PulpJob | None,
    extra_env: list[dict[str, Any]],
    extra_volumes: list[dict[str, Any]] | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> Manifest:
    # A ReadWriteOnce file storage is attached to the api node: a Job elsewhere would wait forever.
    rwo = ctx.spec.file_storage_access_mode == "ReadWriteOnce"
    parts = pod_parts(ctx, with_storage=not rwo)
    parts = PodParts(
        volumes=[*parts.volumes, *(extra_volumes or [])],
        mounts=[*parts.mounts, *(extra_mounts or [])],
        env=parts.env,
    )
    container_spec = job_spec.container if job_spec else None
    container: dict[str, Any] = {
        "name": component,
        "image": (container_spec.image if container_spec else None) or image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["/bin/sh", "-c", script],
        "env": merge_env(
            [*parts.env, *extra_env], container_spec.env_vars if container_spec else None
        ),
        "volumeMounts": parts.mounts,
        "securityContext": container_security_context(),
    }
    set_if(
        container,
        "resources",
        resources(container_spec.resource_requirements if container_spec else None),
    )
    placement: PulpcoreSpec = ctx.spec.api
    pod = pod_spec(
        placement,
        containers=[container],
        volumes=parts.volumes,
        security_context=pod_security_context(PULP_UID),
        service_account=names.service_account(ctx.name),
        restart_policy="Never",
    )
    obj = meta("Job", "batch/v1", name, ctx.namespace, names.labels(ctx.name, component))
    obj["spec"] = {
        "backoffLimit": 2,
        "template": {"metadata": {"labels": names.labels(ctx.name, component)}, "spec": pod},
    }
    return obj


def migration_job(ctx: Ctx) -> list[Manifest]:
    if ctx.migration_job is None:
        return []
    return [
        _job(
            ctx,
            "migration",
            ctx.migration_job,
            ctx.spec_image,
            f"{WAIT_DB} && pulpcore-manager migrate --noinput",
            ctx.spec.migration_job,
            [],
        )
    ]


def admin_password_job_name(ctx: Ctx) -> str | None:
    password_hash = admin_password_hash(ctx.inputs)
    if password_hash is None or password_hash == ctx.inputs.status.admin_password_hash:
        return None
    return names.admin_password_job(ctx.name, password_hash)


def admin_password_job(ctx: Ctx) -> list[Manifest]:
    secret = ctx.secrets.admin_password
    name = admin_password_job_name(ctx)
    if name is None:
        return []
    script = (
        f"{WAIT_DB} && {WAIT_MIGRATIONS} && "
        f'pulpcore-manager reset-admin-password --password "${PASSWORD_ENV}"'
    )
    return [
        _job(
            ctx,
            "admin-password",
            name,
            ctx.pod_image,
            script,
            ctx.spec.admin_password_job,
            [env_secret(PASSWORD_ENV, secret, "password")],
        )
    ]


def signing_job(ctx: Ctx) -> list[Manifest]:
    sign = signing(ctx)
    name = signing_job_name(ctx, sign)
    if sign is None or name is None:
        return []
    failed_job_problem(ctx, name)
    return [
        _job(
            ctx,
            "signing",
            name,
            ctx.pod_image,
            job_script(f"{WAIT_DB} && {WAIT_MIGRATIONS}"),
            ctx.spec.signing_job,
            job_env(sign),
            signing_volumes(ctx, sign),
            signing_mounts(sign),
        )
    ]
