"""The desired state of a Pulp: every object the operator applies, computed from the Inputs.

Pure and deterministic: the same Inputs give byte-identical manifests. The reconciler applies
`Desired.objects` in order with server-side apply; `pulp-operator render` prints them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .. import names
from ..api.pulp import PulpSpec
from .autoscaling import hpa_objects, pdb_objects
from .cache import cache_objects
from .common import meta
from .context import (
    Ctx,
    make_ctx,
    migration_job_name,
    migration_settings,
    secret_names,
    spec_image,
)
from .database import database_objects
from .ingress import ingress_objects
from .inputs import ClusterFacts, Inputs, JobState, Manifest, Problem
from .jobs import (
    admin_password_hash,
    admin_password_job,
    admin_password_job_name,
    migration_job,
    signing_job,
)
from .pulpcore import api_objects, content_objects, worker_objects
from .rbac import rbac_objects
from .references import check
from .settings import config_hash, render
from .signing import signing
from .storage import storage_objects
from .telemetry import telemetry_objects
from .trust import trusted_ca_objects
from .versions import version_checks
from .web import web_objects

__all__ = [
    "ClusterFacts",
    "Desired",
    "GeneratedSecret",
    "Inputs",
    "JobState",
    "Manifest",
    "Problem",
    "admin_password_hash",
    "build",
    "generated_secrets",
    "migration_job_name",
    "migration_settings",
    "spec_image",
]

SecretKind = Literal["admin-password", "secret-key", "fernet-key", "container-token", "postgres"]


@dataclass(frozen=True)
class GeneratedSecret:
    name: str
    kind: SecretKind
    keep: bool
    """Survives deletion of the Pulp (admin password, Fernet key, container token keys, postgres
    credentials): a Pulp created again with the same name finds them."""
    labels: dict[str, str]


@dataclass(frozen=True)
class Desired:
    objects: list[Manifest]
    """Every object to apply, in apply order; no ownerReferences, no status."""
    problems: list[Problem]
    image: str
    """image:tag the pulpcore Deployments run in this build."""
    url: str
    """CONTENT_ORIGIN: where users reach Pulp."""
    keep: frozenset[tuple[str, str]]
    """(kind, name) of objects that must not get an ownerReference (data kept on delete)."""
    spec_image: str = ""
    """image:tag the spec asks for (differs from image while its migrations have not succeeded)."""
    migration_job: str | None = None
    """Name of the migration Job in objects; when it succeeded, status.migrated_image becomes
    spec_image."""
    admin_password_job: str | None = None
    """Name of the admin password Job in objects; when it succeeded, status.admin_password_hash
    becomes admin_password_hash."""
    admin_password_hash: str | None = None
    signing_key_fingerprint: str | None = None
    """Fingerprint of the key of spec.signing_secret (None without a usable key)."""


def generated_secrets(name: str, namespace: str, spec: PulpSpec) -> list[GeneratedSecret]:
    """The Secrets the operator generates: those the spec does not name."""
    chosen = secret_names(name, spec)
    labels = names.labels(name, "secrets")
    items: list[GeneratedSecret] = []
    if not spec.admin_password_secret:
        items.append(GeneratedSecret(chosen.admin_password, "admin-password", True, labels))
    if not spec.pulp_secret_key:
        items.append(GeneratedSecret(chosen.secret_key, "secret-key", False, labels))
    if not spec.db_fields_encryption_secret:
        items.append(GeneratedSecret(chosen.db_fields_encryption, "fernet-key", True, labels))
    if not spec.container_token_secret:
        items.append(GeneratedSecret(chosen.container_auth, "container-token", True, labels))
    if not spec.database.external_db_secret:
        items.append(GeneratedSecret(chosen.postgres, "postgres", True, labels))
    return items


def _cache_required(ctx: Ctx) -> None:
    if not ctx.cache_enabled and ctx.version is not None and ctx.version < (3, 14):
        ctx.problems.add(
            "spec.cache.enabled",
            "spec",
            "CacheRequired",
            f"image {ctx.pod_image} (pulpcore < 3.14) dispatches tasks through Redis: set"
            " spec.cache.enabled",
        )


def _server_secret(ctx: Ctx, text: str) -> Manifest:
    obj = meta(
        "Secret",
        "v1",
        names.server_settings(ctx.name),
        ctx.namespace,
        names.labels(ctx.name, "settings"),
    )
    obj["type"] = "Opaque"
    obj["stringData"] = {"settings.py": text}
    return obj


def _keep(ctx: Ctx) -> frozenset[tuple[str, str]]:
    if not ctx.spec.keep_data_on_delete:
        return frozenset()
    keep: set[tuple[str, str]] = set()
    if ctx.spec.file_storage_storage_class:
        keep.add(("PersistentVolumeClaim", names.file_storage(ctx.name)))
    if ctx.spec.mount_trusted_ca and not ctx.spec.mount_trusted_ca_configmap_key:
        keep.add(("ConfigMap", names.trusted_ca_bundle(ctx.name)))
    cache = ctx.spec.cache
    if ctx.managed_cache and cache is not None and cache.redis_storage_class and not cache.pvc:
        keep.add(("PersistentVolumeClaim", names.redis_data(ctx.name)))
    return frozenset(keep)


def build(inputs: Inputs) -> Desired:
    ctx = make_ctx(inputs)
    ctx.problems.extend(check(inputs))
    text = render(ctx)
    digest = config_hash(ctx, text)
    objects: list[Manifest] = [*rbac_objects(ctx)]
    # An invalid custom setting leaves the current settings.py in place (the reconciler does not
    # touch an object it is not given) instead of rolling the pods onto a broken one.
    if ctx.custom.valid:
        objects.append(_server_secret(ctx, text))
    objects += [
        *storage_objects(ctx),
        *trusted_ca_objects(ctx),
        *database_objects(ctx),
        *cache_objects(ctx),
        *api_objects(ctx, digest),
        *telemetry_objects(ctx),
        *migration_job(ctx),
        *content_objects(ctx, digest),
        *worker_objects(ctx, digest),
        *admin_password_job(ctx),
        *signing_job(ctx),
        *web_objects(ctx),
        *ingress_objects(ctx),
        *pdb_objects(ctx),
        *hpa_objects(ctx),
    ]
    _cache_required(ctx)
    version_checks(ctx)
    sign = signing(ctx)
    return Desired(
        # A JSON round trip unshares the parts builders reuse (YAML would dump them as anchors).
        objects=json.loads(json.dumps(objects)),
        problems=ctx.problems.as_list(),
        image=ctx.pod_image,
        url=ctx.url,
        keep=_keep(ctx),
        spec_image=ctx.spec_image,
        migration_job=ctx.migration_job,
        admin_password_job=admin_password_job_name(ctx),
        admin_password_hash=admin_password_hash(inputs),
        signing_key_fingerprint=sign.fingerprint if sign else None,
    )
