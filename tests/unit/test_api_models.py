"""The v1 models accept the upstream samples and reject bad input with messages naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pulp_operator.api.backup import PulpBackupSpec, PulpRestoreSpec
from pulp_operator.api.pulp import PulpSpec

from ..samples import INVALID_AS_WRITTEN, sample_crs

MODELS: dict[str, type[BaseModel]] = {
    "Pulp": PulpSpec,
    "PulpBackup": PulpBackupSpec,
    "PulpRestore": PulpRestoreSpec,
}


def test_samples_found() -> None:
    names = {name for name, _ in sample_crs()}
    assert {
        "simple.yaml",
        "minimal.yaml",
        "repo-manager.pulpproject.org_v1_pulpbackup.yaml",
    } <= names


@pytest.mark.parametrize(
    ("filename", "doc"), sample_crs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_sample_validates_or_says_why(filename: str, doc: dict[str, Any]) -> None:
    model = MODELS[doc["kind"]]
    if filename in INVALID_AS_WRITTEN:
        with pytest.raises(ValidationError) as err:
            model.model_validate(doc["spec"])
        text = str(err.value)
        assert "exactly one storage type must be set" in text
        assert "file_storage_size and file_storage_access_mode apply only with" in text
    else:
        model.model_validate(doc["spec"])


def test_defaults_live_in_the_model() -> None:
    spec = PulpSpec.model_validate({"file_storage_storage_class": "standard"})
    assert spec.image == "quay.io/pulp/pulp-minimal"
    assert spec.image_version == "stable"
    assert spec.api.replicas == 1
    assert spec.api.gunicorn_timeout == 90
    assert spec.api.gunicorn_workers == 2
    assert spec.database.postgres_image == "postgres:15"
    assert spec.database.postgres_storage_requirements == "8Gi"
    assert spec.ingress_type == "none"
    assert spec.cache is None  # no cache block: no cache, as upstream
    cached = PulpSpec.model_validate({"pvc": "data", "cache": {}})
    assert cached.cache is not None
    assert cached.cache.enabled is True
    assert cached.cache.redis_port == 6379


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({}, "exactly one storage type must be set"),
        ({"pvc": "a", "object_storage_s3_secret": "b"}, "(set: pvc, object_storage_s3_secret)"),
        ({"pvc": "a", "file_storage_size": "1Gi"}, "apply only with file_storage_storage_class"),
        ({"pvc": "a", "ingress_type": "Ingress"}, "ingress_host is required"),
        ({"pvc": "a", "allowed_content_checksums": ["md5"]}, "must include sha256"),
        ({"pvc": "a", "api": {"replicas": -1}}, "greater than or equal to 0"),
        ({"pvc": "a", "api": {"hpa": {"min_replicas": 3, "max_replicas": 2}}}, "min_replicas"),
        ({"pvc": "a", "ingress_type": "gateway"}, "ingress_type"),
        ({"pvc": "a", "api": {"replicaz": 1}}, "replicaz"),
        (
            {"pvc": "a", "database": {"external_db_secret": "x", "pvc": "y"}},
            "cannot be combined",
        ),
        ({"pvc": "a", "file_storage_size": "lots"}, "file_storage_size"),
    ],
)
def test_bad_input_names_the_field(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        PulpSpec.model_validate(spec)
    assert fragment in str(err.value)


def test_ingress_type_any_case() -> None:
    spec = PulpSpec.model_validate({"pvc": "a", "ingress_type": "NodePort"})
    assert spec.ingress_kind == "nodeport"


def test_probe_fields_keep_upstream_camel_case() -> None:
    spec = PulpSpec.model_validate({"pvc": "a", "api": {"readinessProbe": {"periodSeconds": 5}}})
    assert spec.api.readiness_probe == {"periodSeconds": 5}
    assert spec.api.dump()["readinessProbe"] == {"periodSeconds": 5}
