"""What every builder needs, resolved once from the Inputs: secret names, custom settings, URLs,
the image the pulpcore pods run, and the problems found on the way."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import names
from ..api.pulp import PulpSpec
from .common import Version, digest, pulpcore_version
from .inputs import Inputs, Problem, ProblemKind
from .upgrade import downgrade_refusal

DEFAULT_API_ROOT = "/pulp/"
DEFAULT_CONTENT_PATH = "/pulp/content/"


@dataclass(frozen=True)
class SecretNames:
    admin_password: str
    secret_key: str
    db_fields_encryption: str
    container_auth: str
    postgres: str
    """The Secret with the database connection: the generated one or database.external_db_secret."""


def secret_names(name: str, spec: PulpSpec) -> SecretNames:
    return SecretNames(
        admin_password=spec.admin_password_secret or names.admin_password(name),
        secret_key=spec.pulp_secret_key or names.secret_key(name),
        db_fields_encryption=spec.db_fields_encryption_secret or names.db_fields_encryption(name),
        container_auth=spec.container_token_secret or names.container_auth(name),
        postgres=spec.database.external_db_secret or names.postgres_configuration(name),
    )


@dataclass
class Problems:
    """Problems in the order found, one per field (the first one found)."""

    items: dict[str, Problem] = field(default_factory=dict)

    def add(
        self,
        field_path: str,
        kind: ProblemKind,
        reason: str,
        message: str,
        condition: str = "Ready",
    ) -> None:
        self.items.setdefault(field_path, Problem(field_path, kind, reason, message, condition))

    def extend(self, problems: list[Problem]) -> None:
        for problem in problems:
            self.items.setdefault(problem.field, problem)

    def as_list(self) -> list[Problem]:
        return list(self.items.values())


@dataclass(frozen=True)
class CustomSettings:
    raw: dict[str, str]
    """Upper-cased setting name -> the user's Python literal text (only valid ones)."""
    values: dict[str, Any]
    """The same, evaluated."""
    valid: bool
    """False when the ConfigMap is missing or holds an invalid entry."""


@dataclass(frozen=True)
class Ctx:
    inputs: Inputs
    secrets: SecretNames
    custom: CustomSettings
    problems: Problems
    spec_image: str
    pod_image: str
    """The image the pulpcore Deployments run: the spec image, or the previous one while the
    migrations of the spec image have not succeeded."""
    migration_job: str | None
    """The migration Job to run (None when none is needed)."""

    @property
    def name(self) -> str:
        return self.inputs.name

    @property
    def namespace(self) -> str:
        return self.inputs.namespace

    @property
    def spec(self) -> PulpSpec:
        return self.inputs.spec

    @property
    def version(self) -> Version | None:
        return pulpcore_version(self.pod_image.rsplit(":", 1)[-1])

    @property
    def managed_db(self) -> bool:
        return not self.spec.database.external_db_secret

    @property
    def cache_enabled(self) -> bool:
        return self.spec.cache is not None and self.spec.cache.enabled

    @property
    def managed_cache(self) -> bool:
        return self.cache_enabled and not (
            self.spec.cache is not None and self.spec.cache.external_cache_secret
        )

    @property
    def web_enabled(self) -> bool:
        return not (self.spec.ingress_kind == "ingress" and self.spec.is_nginx_ingress)

    @property
    def api_root(self) -> str:
        value = self.custom.values.get("API_ROOT")
        return value if isinstance(value, str) and value else DEFAULT_API_ROOT

    @property
    def content_path(self) -> str:
        value = self.custom.values.get("CONTENT_PATH_PREFIX")
        return value if isinstance(value, str) and value else DEFAULT_CONTENT_PATH

    @property
    def internal_url(self) -> str:
        return f"http://{names.web_service(self.name)}.{self.namespace}.svc.cluster.local:24880"

    @property
    def root_url(self) -> str:
        """Where users reach Pulp, as computed from the spec (before custom settings)."""
        spec = self.spec
        if spec.ingress_kind == "ingress" and spec.ingress_host:
            scheme = "https" if spec.ingress_tls_secret else "http"
            return f"{scheme}://{spec.ingress_host}"
        if spec.ingress_kind == "route" and spec.route_host:
            return f"https://{spec.route_host}"
        return self.internal_url

    @property
    def url(self) -> str:
        value = self.custom.values.get("CONTENT_ORIGIN")
        return value if isinstance(value, str) and value else self.root_url

    def secret(self, secret: str) -> Mapping[str, str] | None:
        """Data of a Secret the Pulp references or the operator generated (None: missing; the
        missing objects and keys are reported once, by references.check)."""
        return self.inputs.secrets.get(secret)


def custom_settings(inputs: Inputs, problems: Problems) -> CustomSettings:
    cm_name = inputs.spec.custom_pulp_settings
    if not cm_name:
        return CustomSettings({}, {}, True)
    data = inputs.config_maps.get(cm_name)
    if data is None:  # reported by references.check
        return CustomSettings({}, {}, False)
    raw: dict[str, str] = {}
    values: dict[str, Any] = {}
    valid = True
    for key in sorted(data):
        setting = key.upper()
        text = data[key].strip()
        where = f"ConfigMap {cm_name} (spec.custom_pulp_settings) key {key}"
        field_path = f"spec.custom_pulp_settings[{key}]"
        if not setting.isidentifier():
            problems.add(
                field_path, "setting", "InvalidSetting", f"{where}: not a valid setting name"
            )
            valid = False
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            problems.add(
                field_path,
                "setting",
                "InvalidSetting",
                f"{where}: value is not a Python literal ({type(exc).__name__})",
            )
            valid = False
            continue
        raw[setting] = text
        values[setting] = value
    return CustomSettings(raw, values, valid)


def spec_image(spec: PulpSpec) -> str:
    return f"{spec.image}:{spec.image_version}"


def migration_settings(spec: PulpSpec) -> str:
    """The settings pulpcore copies into its default domain after migrating (storage backend,
    redirect_to_object_storage, hide_guarded_distributions): a change needs a migration run, or
    the content app keeps serving as before."""
    redirect = spec.redirect_to_object_storage if spec.storage_type != "File" else None
    return f"{spec.storage_type}|redirect={redirect}|hide={spec.hide_guarded_distributions}"


def migration_job_name(name: str, spec: PulpSpec) -> str:
    job_digest = digest(f"{spec_image(spec)}|{migration_settings(spec)}", names.MIGRATION_DIGEST)
    return names.migration_job(name, job_digest)


def make_ctx(inputs: Inputs) -> Ctx:
    problems = Problems()
    custom = custom_settings(inputs, problems)
    spec, status = inputs.spec, inputs.status
    image = spec_image(spec)
    job: str | None = None
    pod_image = image
    refused = downgrade_refusal(spec, status)
    if refused is not None:
        problems.extend([refused])
        pod_image = status.image or image
    elif not spec.disable_migrations and (
        status.migrated_image != image or status.migrated_settings != migration_settings(spec)
    ):
        job = migration_job_name(inputs.name, spec)
        state = inputs.jobs.get(job)
        succeeded = state is not None and state.state == "succeeded"
        if state is not None and state.state == "failed":
            detail = f": {state.message}" if state.message else ""
            problems.add(
                "spec.image_version",
                "migration",
                "MigrationFailed",
                f"migration Job {job} for image {image} failed{detail}; the pods keep running"
                f" {status.image or 'the previous image'} (delete the Job to retry)",
                condition="MigrationsComplete",
            )
        image_migrated = status.migrated_image == image
        if not succeeded and not image_migrated and status.image and status.image != image:
            pod_image = status.image
    return Ctx(
        inputs=inputs,
        secrets=secret_names(inputs.name, spec),
        custom=custom,
        problems=problems,
        spec_image=image,
        pod_image=pod_image,
        migration_job=job,
    )
