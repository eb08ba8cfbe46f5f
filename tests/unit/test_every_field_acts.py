"""No field of the v1 Pulp spec is accepted and ignored.

For every field of PulpSpec (nested blocks included) a value other than its default is set, in a
spec where the field applies (route fields with ingress_type route on a cluster with routes, ...),
and the desired state is built with and without it: the objects (or the data kept on delete) must
differ. A field that changes nothing would be one the operator silently ignores.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Annotated, Any, Literal, cast, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pysequoia import Tsk

from pulp_operator import desired, names, secretgen
from pulp_operator.api import types as api_types
from pulp_operator.api.pulp import HPA, PulpSpec
from pulp_operator.desired.inputs import Claim, ClusterFacts, Inputs
from pulp_operator.desired.references import placeholder, references

from .desired_samples import NAMESPACE

NAME = "example"
BASE: dict[str, Any] = {
    "file_storage_storage_class": "standard",
    "ingress_type": "nodeport",
    "web": {"replicas": 1},
    "cache": {"enabled": True},
    "telemetry": {"enabled": True},
}
# Fields that apply only in a certain setting: the spec they are tried in.
CONTEXT: dict[str, dict[str, Any]] = {
    # the two are checked against each other (CHECKS): tried with inhibit_version_constraint
    "image_version": {"inhibit_version_constraint": True},
    "image_web_version": {"inhibit_version_constraint": True},
    "route_host": {"ingress_type": "route"},
    "route_labels": {"ingress_type": "route"},
    "route_annotations": {"ingress_type": "route"},
    "route_tls_secret": {"ingress_type": "route"},
    "haproxy_timeout": {"ingress_type": "route"},
    "web.tls_termination_mechanism": {"ingress_type": "route", "route_tls_secret": "route-tls"},
    "ingress_annotations": {"ingress_type": "ingress", "ingress_host": "pulp.example.org"},
    "ingress_class_name": {"ingress_type": "ingress", "ingress_host": "pulp.example.org"},
    "ingress_host": {"ingress_type": "ingress", "ingress_host": "pulp.example.org"},
    "ingress_tls_secret": {"ingress_type": "ingress", "ingress_host": "pulp.example.org"},
    "is_nginx_ingress": {"ingress_type": "ingress", "ingress_host": "pulp.example.org"},
    "loadbalancer_protocol": {"ingress_type": "loadbalancer"},
    "loadbalancer_port": {"ingress_type": "loadbalancer"},
    "nginx_proxy_body_size": {
        "ingress_type": "ingress",
        "ingress_host": "pulp.example.org",
        "is_nginx_ingress": True,
    },
    "container_auth_public_key_name": {"container_token_secret": "token"},
    "container_auth_private_key_name": {"container_token_secret": "token"},
    "signing_scripts": {"signing_secret": "signing-key"},
    "redirect_to_object_storage": {
        "file_storage_storage_class": None,
        "object_storage_s3_secret": "s3",
    },
    "ldap.ca": {"ldap": {"config": "ldap-config"}},
    "signing_job": {"signing_secret": "signing-key", "signing_scripts": "signing-scripts"},
    "ingress_type": {"ingress_host": "pulp.example.org"},
    # pulpcore before 3.16 only has a resource manager
    "resource_manager.replicas": {"image_version": "3.13.0", "image_web_version": "3.13.0"},
}
# Fields that are checks: the Problem that the change makes or removes.
CHECKS: dict[str, tuple[dict[str, Any], Any, str]] = {
    "inhibit_version_constraint": (
        {"image_version": "3.123.1", "image_web_version": "3.122.0", "web": {"replicas": 1}},
        True,
        "ImageVersionMismatch",
    ),
    "database.version": (
        {"database": {"postgres_image": "postgres:15"}},
        "13",
        "DatabaseVersionMismatch",
    ),
}
# Changes that go with setting a field (another storage type replaces the file storage).
WITH: dict[str, dict[str, Any]] = {
    field: {"file_storage_storage_class": None}
    for field in (
        "pvc",
        "object_storage_s3_secret",
        "object_storage_azure_secret",
        "object_storage_gcs_secret",
    )
}
# Fields whose effect is not in the built objects, and where it is instead.
ACTED_ON_ELSEWHERE = {
    "unmanaged": "the reconciler stops before building anything (tests/integration)",
    "allow_downgrade": "acts against status.schema_version: a downgrade is refused without it"
    " (tests/unit/test_upgrade.py, tests/integration/test_upgrades.py)",
}
KEY = str(Tsk.generate("Every field <field@example.org>"))
GENERATED: dict[str, dict[str, str]] = {}


def leaves(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo, Any]]:
    """(dotted path by alias, field, type without None) of every field, into nested blocks."""
    found: list[tuple[str, FieldInfo, Any]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if get_origin(ann) in (typing.Union, types.UnionType):
            ann = next(a for a in get_args(ann) if a is not type(None))
        path = prefix + (info.alias or name)
        nested = isinstance(ann, type) and issubclass(ann, BaseModel)
        if (
            nested
            and ann not in (api_types.ResourceRequirements, api_types.PulpJob, HPA)
            and (ann is not api_types.PulpContainer)
        ):
            found += leaves(cast(type[BaseModel], ann), path + ".")
        else:
            found.append((path, info, ann))
    return found


def get(spec: dict[str, Any], path: str) -> Any:
    for part in path.split(".")[:-1]:
        spec = spec.get(part) or {}
    return spec.get(path.split(".")[-1])


def put(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        spec = spec.setdefault(part, {})
    if value is None:
        spec.pop(last, None)
    else:
        spec[last] = value


def other_value(path: str, info: FieldInfo, ann: Any, current: Any) -> Any:
    """A valid value of the field other than `current`."""
    last = path.split(".")[-1]
    if get_origin(ann) is Annotated:  # a constrained type (a name, a label map, a size)
        ann = get_args(ann)[0]
    if ann is bool:
        return not current
    if ann is int:
        base = current if isinstance(current, int) else 1
        return base - 1 if base >= 65535 else base + 1
    if get_origin(ann) is Literal:
        return next(v for v in get_args(ann) if str(v).lower() != str(current).lower())
    if last in ("readinessProbe", "livenessProbe"):
        return {"exec": {"command": ["true"]}, "periodSeconds": 7}
    if last == "pdb":
        return {"minAvailable": 1}
    if last == "strategy":
        return {"type": "Recreate"}
    if last == "affinity":
        return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    if last in ("tolerations", "topology_spread_constraints"):
        return [{"key": "example.org/k", "operator": "Exists"}]
    if last == "env_vars":
        return [{"name": "EXAMPLE", "value": "1"}]
    if last in ("image_pull_secrets", "postgres_extra_args"):
        return ["-c" if last == "postgres_extra_args" else "pull-secret"]
    if last == "allowed_content_checksums":
        return ["sha256", "sha512"]
    if last == "hpa":
        return {"enabled": True, "max_replicas": 3}
    if ann is api_types.ResourceRequirements:
        return {"requests": {"cpu": "250m"}}
    if ann is api_types.PulpContainer:
        return {"image": "registry.example.org/init:1"}
    if ann is api_types.PulpJob:
        return {"container": {"image": "registry.example.org/job:1"}}
    if get_origin(ann) is dict:
        return {"example.org/key": "value"}
    if last == "mount_trusted_ca_configmap_key":
        return "ca-bundle:ca.crt"
    if last.startswith("nginx") and "size" in last:
        return "3m"  # an nginx size (k, m, g): nginx would not read 3Gi
    if "size" in last or "requirements" in last:
        return "3Gi"
    if last.endswith(("_secret", "pvc", "_settings", "config", "ca")):
        return last.replace("_", "-")
    if isinstance(current, str) and current.isdigit():
        return str(int(current) + 1)
    if isinstance(current, str) and current.endswith("s") and current[:-1].isdigit():
        return f"{int(current[:-1]) + 1}s"
    if isinstance(current, str) and current[:-1].isdigit():
        return f"{int(current[:-1]) + 1}{current[-1]}"
    return f"{current}-other" if current else f"example-{last.replace('_', '-')}"


def build(raw: dict[str, Any]) -> tuple[str, list[Any]]:
    spec = PulpSpec.model_validate(raw)
    secrets: dict[str, dict[str, str]] = {}
    config_maps: dict[str, dict[str, str]] = {}
    claims: dict[str, Claim] = {}
    for ref in references(spec):
        if ref.kind == "PersistentVolumeClaim":
            claims[ref.name] = Claim()
            continue
        pool = secrets if ref.kind == "Secret" else config_maps
        pool.setdefault(ref.name, placeholder(ref))
    if spec.signing_secret:
        secrets[spec.signing_secret] = {"signing_service.gpg": KEY}
    if spec.signing_scripts:
        secrets[spec.signing_scripts] = {"rpm_script.sh": "#!/bin/sh\n"}
    if spec.object_storage_gcs_secret:
        secrets[spec.object_storage_gcs_secret]["gcs-key.json"] = "{}"
    if spec.mount_trusted_ca:  # the bundle the operator's ConfigMap gets (on OpenShift: injected)
        config_maps[names.trusted_ca_bundle(NAME)] = {
            "ca-bundle.crt": "-----BEGIN CERTIFICATE-----"
        }
    if spec.custom_pulp_settings:
        config_maps[spec.custom_pulp_settings] = {"analytics": "False"}
    for gen in desired.generated_secrets(NAME, NAMESPACE, spec):
        if gen.name not in GENERATED:  # the same values for both builds
            GENERATED[gen.name] = secretgen.generate(
                gen.kind, name=NAME, namespace=NAMESPACE, spec=spec
            )
        secrets.setdefault(gen.name, GENERATED[gen.name])
    built = desired.build(
        Inputs(
            name=NAME,
            namespace=NAMESPACE,
            spec=spec,
            secrets=secrets,
            config_maps=config_maps,
            claims=claims,
            cluster=ClusterFacts(has_routes=True),
        )
    )
    text = json.dumps([built.objects, sorted(built.keep), built.url], sort_keys=True)
    return text, built.problems


FIELDS = [f for f in leaves(PulpSpec) if f[0] not in ACTED_ON_ELSEWHERE and f[0] not in CHECKS]


def test_the_walk_sees_every_block() -> None:
    paths = {p for p, _, _ in leaves(PulpSpec)}
    assert len(paths) > 150
    for sample in ("api.gunicorn_workers", "database.postgres_image", "telemetry.enabled"):
        assert sample in paths


@pytest.mark.parametrize("path", sorted(CHECKS))
def test_check_fields_make_or_remove_their_problem(path: str) -> None:
    context, value, reason = CHECKS[path]
    raw = {**json.loads(json.dumps(BASE)), **context}
    _, before = build(raw)
    put(raw, path, value)
    _, after = build(raw)
    assert [p.reason for p in before + after] == [reason]
    assert f"spec.{path}" in (before + after)[0].message


@pytest.mark.parametrize(("path", "info", "ann"), FIELDS, ids=[f[0] for f in FIELDS])
def test_field_changes_what_is_built(path: str, info: FieldInfo, ann: Any) -> None:
    raw = json.loads(json.dumps(BASE))
    for key, value in CONTEXT.get(path, {}).items():
        put(raw, key, value)
    current = get(raw, path)
    if current is None:
        current = info.get_default(call_default_factory=True)
        current = current.model_dump() if isinstance(current, BaseModel) else current
    before, problems_before = build(raw)
    assert problems_before == [], problems_before
    for key, value in WITH.get(path, {}).items():
        put(raw, key, value)
    # Every other value of an enumeration is tried: one of them may be what None means.
    values = (
        [v for v in get_args(ann) if str(v).lower() != str(current).lower()]
        if get_origin(ann) is Literal
        else [other_value(path, info, ann, current)]
    )
    changed = []
    for value in values:
        put(raw, path, value)
        after, problems_after = build(raw)
        assert problems_after == [], f"{path} = {value!r}: {problems_after}"
        changed.append(after != before)
    assert any(changed), f"spec.{path} = {values!r} changes nothing that is built"
