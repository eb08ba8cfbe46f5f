"""What the models refuse because the Kubernetes API would refuse the objects made from it, and
the names derived from long Pulp names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pulp_operator import names
from pulp_operator.api.crd import MAX_NAME_LENGTH, name_problem
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.api.validation import describe_validation_error

BASE = {"file_storage_storage_class": "standard"}


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        PulpSpec.model_validate({**BASE, **spec})
    return describe_validation_error(err.value, "spec")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"admin_password_secret": "My_Secret"}, "spec.admin_password_secret"),
        ({"custom_pulp_settings": "a" * 254}, "spec.custom_pulp_settings"),
        ({"ingress_host": "not a host"}, "spec.ingress_host"),
        ({"sa_labels": {"team": "a b"}}, "spec.sa_labels"),
        ({"sa_labels": {"bad key!": "x"}}, "spec.sa_labels"),
        ({"api": {"node_selector": {"zone": "x" * 64}}}, "spec.api.node_selector"),
        ({"ingress_annotations": {"/no-name": "x"}}, "spec.ingress_annotations"),
        ({"image": "quay.io/pulp/pulp minimal"}, "spec.image"),
        ({"image_version": "3.1 beta"}, "spec.image_version"),
        ({"file_storage_size": "0"}, "spec.file_storage_size"),
        ({"file_storage_size": "๒Gi"}, "spec.file_storage_size"),  # a Thai digit
        ({"nginx_client_max_body_size": "10m; include /etc/passwd"}, "spec.nginx_client"),
        ({"haproxy_timeout": "forever"}, "spec.haproxy_timeout"),
        ({"container_auth_public_key_name": "a/b"}, "spec.container_auth_public_key_name"),
        ({"api": {"resource_requirements": {"limits": {"gpus": "1"}}}}, "spec.api.resource"),
        ({"api": {"env_vars": [{"name": "A=B", "value": "1"}]}}, "spec.api.env_vars.0.name"),
        ({"route_annotations": {"a": "x\x85y"}}, "spec.route_annotations"),
        ({"api": {"gunicorn_access_logformat": "%(h)s\x7f"}}, "spec.api.gunicorn_access"),
    ],
)
def test_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    assert refusal(spec).startswith(field), refusal(spec)


def test_valid_kubernetes_values_pass() -> None:
    PulpSpec.model_validate(
        {
            **BASE,
            "file_storage_size": "1.5Gi",
            "ingress_host": "*.pulp.example.com",
            "sa_labels": {"example.com/team": "a.b_c-1", "empty": ""},
            "ingress_annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "0"},
            "api": {
                "resource_requirements": {"limits": {"cpu": "1", "example.com/fpga": "1"}},
                "env_vars": [{"name": "MY.VAR-1", "value": "tab\tand\nnewline are fine"}],
            },
        }
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [("pulp", True), ("a" * MAX_NAME_LENGTH, True), ("a" * 41, False), ("1pulp", False),
     ("my.pulp", False), ("Pulp", False)],
)  # fmt: skip
def test_pulp_names_as_the_crd_checks_them(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) is ok


def test_job_names_fit_63_characters_and_stay_unique() -> None:
    short = names.admin_password_job("pulp", "0123456789abcdef")
    assert short == "pulp-reset-admin-password-0123456789abcdef"
    a = names.admin_password_job("a" * 39 + "x", "0123456789abcdef")
    b = names.admin_password_job("a" * 39 + "y", "0123456789abcdef")
    assert len(a) <= 63
    assert len(b) <= 63
    assert a != b
    assert a.endswith("-reset-admin-password-0123456789abcdef")
    assert len(names.migration_job("m" * 40, "0123456789")) <= 63
    # the status finds a succeeded Job by the prefix of its name
    long = "p" * 40
    assert names.admin_password_job(long, "0123456789abcdef").startswith(
        names.admin_password_job(long, "")
    )
