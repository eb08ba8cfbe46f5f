"""`pulp-operator convert`: Pulp CRs of the original (Ansible) operator as v1 CRs.

The original operator served ``pulpproject.org/v1alpha1`` (2019), then ``pulp.pulpproject.org``
``v1alpha1`` and ``v1beta1``. Their CRs become a ``repo-manager.pulpproject.org/v1`` Pulp, plus the
objects v1 reads what the old spec held inline from: a ConfigMap with the Pulp settings
(``pulp_settings``, as ``custom_pulp_settings``), a Secret with the database credentials, a Secret
for an external Redis. Every field that has no v1 equivalent is reported as a note (the CLI prints
them on stderr); input that is not a valid old CR raises ConvertError naming the field.

Pure: documents in, documents and notes out. The result is validated with the v1 model.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from . import names
from .api.crd import API_VERSION
from .api.pulp import PulpSpec
from .api.validation import describe_validation_error
from .desired.inputs import Manifest

OLD_API_VERSIONS = (
    "pulpproject.org/v1alpha1",
    "pulp.pulpproject.org/v1alpha1",
    "pulp.pulpproject.org/v1beta1",
)
DEFAULT_STORAGE_CLASS = "standard"
# The original operator's defaults (roles/*/defaults, deploy/crds/*.default.yaml).
_OLD_REGISTRY, _OLD_PROJECT, _OLD_IMAGE, _OLD_WEB_IMAGE = "quay.io", "pulp", "pulp", "pulp-web"
_OLD_FILE_SIZE = "100Gi"
_OLD_REPLICAS = {"api": 1, "content": 2, "worker": 2}
# Service names the original operator deployed its PostgreSQL and Redis under.
_MANAGED_DB_HOSTS = {"postgres", ""}
_MANAGED_REDIS_HOSTS = {"redis", ""}


class ConvertError(Exception):
    """Input that cannot be converted; the message is one line naming the field."""


@dataclass
class Converted:
    objects: list[Manifest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Fields:
    """A mapping of the old spec whose keys are taken one by one; what is left has no v1
    equivalent."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConvertError(f"{path}: expected a mapping, got {_kind(data)}")
        self.data = data
        self.path = path
        self.taken: set[str] = set()
        self.sections: dict[str, _Fields] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.taken.add(key)
        return self.data.get(key)

    def section(self, key: str) -> _Fields:
        if key not in self.sections:
            self.sections[key] = _Fields(self.raw(key), f"{self.path}.{key}")
        return self.sections[key]

    def text(self, key: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConvertError(f"{self.path}.{key}: expected a string, got {_kind(value)}")
        return str(value)

    def integer(self, key: str) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().isdigit():
                return int(value)
            raise ConvertError(f"{self.path}.{key}: expected an integer, got {_kind(value)}")
        return value

    def mapping(self, key: str) -> dict[str, Any] | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConvertError(f"{self.path}.{key}: expected a mapping, got {_kind(value)}")
        return value

    def leftovers(self) -> Iterator[str]:
        for key in self.data:
            if key in self.sections:
                yield from self.sections[key].leftovers()
            elif key not in self.taken:
                yield f"{self.path}.{key}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def python_literal(value: Any) -> str:
    """A setting's value as the original operator wrote it into settings.py: the strings True and
    False as booleans, anything else as its literal."""
    if isinstance(value, str) and value in ("True", "False"):
        return value
    return repr(value)


def convert(docs: list[dict[str, Any]], *, storage_class: str = DEFAULT_STORAGE_CLASS) -> Converted:
    """The v1 objects for the old Pulp CRs in docs; other documents pass through unchanged."""
    pulps = [d for d in docs if d.get("kind") == "Pulp"]
    if not pulps:
        raise ConvertError(f"no Pulp found (expected apiVersion {' or '.join(OLD_API_VERSIONS)})")
    out = Converted()
    secrets = {(d.get("metadata") or {}).get("name"): d for d in docs if d.get("kind") == "Secret"}
    for doc in docs:
        if doc.get("kind") != "Pulp":
            out.objects.append(doc)
            continue
        _convert_one(doc, secrets, storage_class, out)
    return out


def _convert_one(
    doc: dict[str, Any], secrets: dict[Any, dict[str, Any]], storage_class: str, out: Converted
) -> None:
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ConvertError("Pulp: metadata.name is required")
    name = meta["name"]
    api_version = doc.get("apiVersion")
    if api_version == API_VERSION:
        raise ConvertError(f"Pulp {name}: apiVersion {API_VERSION} is current already")
    if api_version not in OLD_API_VERSIONS:
        raise ConvertError(
            f"Pulp {name}: apiVersion {api_version} is not a version of the original operator"
            f" ({', '.join(OLD_API_VERSIONS)})"
        )
    try:
        job = _Job(name, meta.get("namespace"), storage_class)
        job.run(_Fields(doc.get("spec"), "spec"))
    except ConvertError as exc:
        raise ConvertError(f"Pulp {name}: {exc}") from None
    job.secrets_from_file(secrets)
    try:
        PulpSpec.model_validate(job.spec)
    except ValidationError as exc:
        message = describe_validation_error(exc, "spec")
        raise ConvertError(f"Pulp {name}: the converted {message}") from None
    v1_meta: dict[str, Any] = {"name": name}
    for key in ("namespace", "labels", "annotations"):
        if meta.get(key):
            v1_meta[key] = meta[key]
    out.objects.extend(job.objects)
    out.objects.append(
        {"apiVersion": API_VERSION, "kind": "Pulp", "metadata": v1_meta, "spec": job.spec}
    )
    out.notes.extend(f"Pulp {name}: {note}" for note in job.notes)


@dataclass
class _Job:
    name: str
    namespace: str | None
    storage_class: str
    spec: dict[str, Any] = field(default_factory=dict)
    objects: list[Manifest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    postgres_secret: str | None = None

    def meta(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def run(self, spec: _Fields) -> None:
        self.images(spec)
        self.components(spec)
        self.storage(spec)
        settings = spec.section("pulp_settings")
        self.database(spec, settings)
        self.cache(spec, settings)
        self.networking(spec)
        self.secrets(spec)
        self.settings(settings)
        for path in spec.leftovers():
            self.notes.append(f"{path} has no v1 equivalent and is left out")

    def images(self, spec: _Fields) -> None:
        old_style = any(k in spec for k in ("registry", "project", "tag"))
        if old_style or ("image" in spec and "/" not in str(spec.data.get("image"))):
            registry = spec.text("registry") or _OLD_REGISTRY
            project = spec.text("project") or _OLD_PROJECT
            image = spec.text("image") or _OLD_IMAGE
            web = spec.text("image_web") or _OLD_WEB_IMAGE
            tag = spec.text("tag") or spec.text("image_version") or "stable"
            self.spec["image"] = f"{registry}/{project}/{image}"
            self.spec["image_web"] = web if "/" in web else f"{registry}/{project}/{web}"
            self.spec["image_version"] = self.spec["image_web_version"] = tag
            return
        new_image, version = spec.text("image"), spec.text("image_version")
        new_web, web_version = spec.text("image_web"), spec.text("image_web_version")
        if new_image is None and version is None:
            self.notes.append(
                "no image set: the v1 defaults apply (quay.io/pulp/pulp-minimal:stable and"
                " quay.io/pulp/pulp-web:stable) where the original operator ran"
                " quay.io/pulp/pulp:stable"
            )
        if new_image:
            self.spec["image"] = new_image
        if new_web:
            self.spec["image_web"] = new_web
        if version:
            self.spec["image_version"] = version
            self.spec["image_web_version"] = web_version or version
        elif web_version:
            self.spec["image_web_version"] = web_version
        if self.spec.get("image_web_version", "stable") != self.spec.get("image_version", "stable"):
            self.spec["inhibit_version_constraint"] = True
        policy = spec.text("image_pull_policy")
        if policy:
            self.spec["image_pull_policy"] = policy

    def components(self, spec: _Fields) -> None:
        for component in ("api", "content", "worker", "web"):
            # v1alpha1 named them pulp_api, pulp_content, pulp_worker
            key = f"pulp_{component}" if f"pulp_{component}" in spec else component
            section = spec.section(key)
            target: dict[str, Any] = {}
            replicas = section.integer("replicas")
            if replicas is None and component in _OLD_REPLICAS:
                replicas = _OLD_REPLICAS[component]  # the original operator's default
            if replicas is not None:
                target["replicas"] = replicas
            resources = section.mapping("resource_requirements")
            if resources:
                target["resource_requirements"] = resources
            level = section.text("log_level")
            if level and level.upper() != "INFO":
                self.notes.append(
                    f"{section.path}.log_level {level} has no v1 equivalent per component;"
                    " spec.enable_debugging logs everything at DEBUG"
                )
            if target:
                self.spec[component] = target
        key = "pulp_resource_manager" if "pulp_resource_manager" in spec else "resource_manager"
        manager = spec.section(key)
        replicas = manager.integer("replicas")
        if replicas not in (None, 1):
            self.notes.append(
                f"{manager.path}.replicas {replicas}: v1 runs exactly one resource manager"
                " (pulpcore < 3.16; none for later releases)"
            )
        manager.raw("resource_requirements")
        if manager.data.get("resource_requirements"):
            self.notes.append(
                f"{manager.path}.resource_requirements: the resource manager runs with the"
                " worker's (spec.worker.resource_requirements)"
            )

    def storage(self, spec: _Fields) -> None:
        kind = (spec.text("storage_type") or "File").lower()
        s3, azure = spec.text("object_storage_s3_secret"), spec.text("object_storage_azure_secret")
        if kind == "s3" or (s3 and kind != "azure"):
            if not s3:
                raise ConvertError("storage_type S3 needs object_storage_s3_secret")
            self.spec["object_storage_s3_secret"] = s3
        elif kind == "azure" or azure:
            if not azure:
                raise ConvertError("storage_type Azure needs object_storage_azure_secret")
            self.spec["object_storage_azure_secret"] = azure
        elif kind != "file":
            raise ConvertError(f"spec.storage_type: {kind!r} is not File, S3 or Azure")
        else:
            self.file_storage(spec)
            return
        for key in (
            "pulp_file_storage",
            "file_storage",
            "file_storage_size",
            "file_storage_access_mode",
            "file_storage_storage_class",
        ):
            if key in spec:
                spec.raw(key)
                self.notes.append(f"spec.{key} is unused with object storage and is left out")

    def file_storage(self, spec: _Fields) -> None:
        # v1alpha1: pulp_file_storage{access_mode,size}; early v1beta1: file_storage{...}
        nested_key = "pulp_file_storage" if "pulp_file_storage" in spec else "file_storage"
        nested = spec.section(nested_key)
        size = spec.text("file_storage_size") or nested.text("size")
        mode = spec.text("file_storage_access_mode") or nested.text("access_mode")
        cls = spec.text("file_storage_storage_class") or nested.text("storage_class")
        if cls is None:
            cls = self.storage_class
            self.notes.append(
                "the file storage claim had no StorageClass (the cluster default): v1 names one,"
                f" {cls} (--storage-class chooses another)"
            )
        self.spec["file_storage_storage_class"] = cls
        self.spec["file_storage_size"] = size or _OLD_FILE_SIZE
        self.spec["file_storage_access_mode"] = mode or "ReadWriteMany"

    def database(self, spec: _Fields, settings: _Fields) -> None:
        database: dict[str, Any] = {}
        for key in (
            "postgres_image",
            "postgres_data_path",
            "postgres_initdb_args",
            "postgres_host_auth_method",
            "postgres_storage_class",
        ):
            value = spec.text(key)
            if value:
                database[key] = value
        extra = spec.raw("postgres_extra_args")
        if extra:
            if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
                raise ConvertError("spec.postgres_extra_args: expected a list of strings")
            database["postgres_extra_args"] = extra
        resources = spec.mapping("postgres_resource_requirements")
        if resources:
            database["postgres_resource_requirements"] = resources
        size = spec.raw("postgres_storage_requirements")
        if isinstance(size, dict):  # the Ansible roles took {requests: {storage: 8Gi}}
            size = (size.get("requests") or {}).get("storage")
        if size is not None:
            if not isinstance(size, str | int):
                raise ConvertError("spec.postgres_storage_requirements: expected a quantity")
            database["postgres_storage_requirements"] = str(size)

        connection = spec.section("database_connection")
        user, password = connection.text("username"), connection.text("password")
        if connection.text("admin_password"):
            self.notes.append(
                "spec.database_connection.admin_password (the postgres superuser's) has no v1"
                " equivalent: the managed database has the pulp user only"
            )
        default = settings.section("databases").section("default")
        host = default.text("HOST") or ""
        port = default.integer("PORT")
        db_name = default.text("NAME")
        user = default.text("USER") or user
        password = default.text("PASSWORD") or password
        for key in ("ENGINE", "CONN_MAX_AGE"):
            default.raw(key)
        referenced = spec.text("postgres_configuration_secret")
        if host not in _MANAGED_DB_HOSTS:
            secret = f"{self.name}-external-database"
            data = {
                "POSTGRES_HOST": host,
                "POSTGRES_PORT": str(port or 5432),
                "POSTGRES_USERNAME": user or "pulp",
                "POSTGRES_PASSWORD": password or "",
                "POSTGRES_DB_NAME": db_name or "pulp",
                "POSTGRES_SSLMODE": "prefer",
            }
            self.objects.append(self.secret(secret, data))
            database = self.external_database(database, secret)
            if not password:
                self.notes.append(
                    f"Secret {secret}: the external database's password was not in the CR; set"
                    " POSTGRES_PASSWORD"
                )
        elif (user or db_name) and not password:
            self.notes.append(
                "the database user or name cannot be chosen without its password: v1 generates"
                " the managed database's credentials (user pulp, database pulp)"
            )
        elif password:
            secret = names.postgres_configuration(self.name)
            self.objects.append(
                self.secret(
                    secret,
                    {
                        "username": user or "pulp",
                        "password": password or "",
                        "database": db_name or "pulp",
                        "port": str(port or 5432),
                        "host": names.database_service(self.name),
                        "sslmode": "prefer",
                        "type": "managed",
                    },
                )
            )
            if port:
                database["postgres_port"] = port
        if referenced:
            self.postgres_secret = referenced
        if database:
            self.spec["database"] = database

    def secrets_from_file(self, secrets: dict[Any, dict[str, Any]]) -> None:
        """v1beta1's postgres_configuration_secret: managed credentials go to the Secret v1
        reads them from; an unmanaged database becomes database.external_db_secret."""
        referenced = self.postgres_secret
        if referenced is None:
            return
        doc = secrets.get(referenced)
        if doc is None:
            managed = names.postgres_configuration(self.name)
            self.notes.append(
                f"spec.postgres_configuration_secret {referenced} is not in the file: v1 reads"
                f" the managed database's credentials from {managed}"
                " (keys username, password, database, port, host, sslmode) and an external"
                " database's from the Secret named by database.external_db_secret (keys"
                " POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USERNAME, POSTGRES_PASSWORD,"
                " POSTGRES_DB_NAME, POSTGRES_SSLMODE): copy it"
            )
            return
        data = _secret_data(doc)
        if data.get("type", "managed") == "managed":
            values = {
                "username": data.get("username", "pulp"),
                "password": data.get("password", ""),
                "database": data.get("database", "pulp"),
                "port": data.get("port", "5432"),
                "host": names.database_service(self.name),
                "sslmode": data.get("sslmode", "prefer"),
                "type": "managed",
            }
            self.objects.append(self.secret(names.postgres_configuration(self.name), values))
            return
        secret = f"{self.name}-external-database"
        self.objects.append(
            self.secret(
                secret,
                {
                    "POSTGRES_HOST": data.get("host", ""),
                    "POSTGRES_PORT": data.get("port", "5432"),
                    "POSTGRES_USERNAME": data.get("username", ""),
                    "POSTGRES_PASSWORD": data.get("password", ""),
                    "POSTGRES_DB_NAME": data.get("database", ""),
                    "POSTGRES_SSLMODE": data.get("sslmode", "prefer"),
                },
            )
        )
        self.spec["database"] = self.external_database(self.spec.get("database") or {}, secret)

    def external_database(self, managed: dict[str, Any], secret: str) -> dict[str, Any]:
        for key in managed:
            if key != "external_db_secret":
                self.notes.append(f"spec.{key} is unused with an external database")
        return {"external_db_secret": secret}

    def cache(self, spec: _Fields, settings: _Fields) -> None:
        # The original operator always ran Redis (the tasking system of its pulpcore needed it).
        cache: dict[str, Any] = {"enabled": True}
        host = settings.text("redis_host") or ""
        port = settings.integer("redis_port")
        password = settings.text("redis_password") or ""
        if host not in _MANAGED_REDIS_HOSTS:
            secret = f"{self.name}-external-redis"
            self.objects.append(
                self.secret(
                    secret,
                    {
                        "REDIS_HOST": host,
                        "REDIS_PORT": str(port or 6379),
                        "REDIS_PASSWORD": password,
                        "REDIS_DB": "0",
                    },
                )
            )
            cache["external_cache_secret"] = secret
        else:
            if port and port != 6379:
                cache["redis_port"] = port
            if password:
                self.notes.append(
                    "pulp_settings.redis_password: the managed Redis of v1 has no password"
                )
            image = spec.text("redis_image")
            if image:
                cache["redis_image"] = image
            cls = spec.text("redis_storage_class")
            if cls:
                cache["redis_storage_class"] = cls
            resources = spec.mapping("redis_resource_requirements")
            if resources:
                cache["redis_resource_requirements"] = resources
        self.spec["cache"] = cache

    def networking(self, spec: _Fields) -> None:
        ingress = spec.text("ingress_type")
        if ingress:
            self.spec["ingress_type"] = ingress.lower()
        host = spec.text("hostname")
        if host and (ingress or "").lower() == "ingress":
            self.spec["ingress_host"] = host
        elif host:
            self.notes.append(f"spec.hostname {host} is used with ingress_type ingress only")
        for key in (
            "route_host",
            "ingress_tls_secret",
            "route_tls_secret",
            "loadbalancer_protocol",
        ):
            value = spec.text(key)
            if value:
                self.spec[key] = value
        port = spec.integer("loadbalancer_port")
        if port is not None:
            self.spec["loadbalancer_port"] = port
        nodeport = spec.integer("nodeport_port")
        if nodeport is not None:
            self.spec["nodeport_port"] = nodeport
        annotations = spec.raw("ingress_annotations")
        if isinstance(annotations, str) and annotations.strip():
            try:  # the Ansible CRD took them as a YAML text
                annotations = yaml.safe_load(annotations)
            except yaml.YAMLError:
                raise ConvertError("spec.ingress_annotations: not a YAML mapping") from None
        if annotations:
            if not isinstance(annotations, dict):
                raise ConvertError("spec.ingress_annotations: expected a mapping")
            self.spec["ingress_annotations"] = {str(k): str(v) for k, v in annotations.items()}
        mechanism = spec.text("route_tls_termination_mechanism")
        if mechanism:
            self.spec.setdefault("web", {})["tls_termination_mechanism"] = mechanism.lower()

    def secrets(self, spec: _Fields) -> None:
        for key in (
            "admin_password_secret",
            "container_token_secret",
            "db_fields_encryption_secret",
            "signing_secret",
            "sso_secret",
        ):
            value = spec.text(key)
            if value:
                self.spec[key] = value

    def settings(self, settings: _Fields) -> None:
        data = {}
        for key, value in settings.data.items():
            if key in settings.taken or key in settings.sections:
                continue
            data[str(key).lower()] = python_literal(value)
            settings.taken.add(key)
        if not data:
            return
        config_map = f"{self.name}-settings"
        self.objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": self.meta(config_map),
                "data": dict(sorted(data.items())),
            }
        )
        self.spec["custom_pulp_settings"] = config_map

    def secret(self, name: str, values: dict[str, str]) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": self.meta(name),
            "stringData": values,
        }


def _secret_data(doc: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value)).decode()
        except ValueError:
            raise ConvertError(
                f"Secret {doc['metadata'].get('name')}: data.{key} is not valid base64"
            ) from None
    out.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return out
