"""Property-based test against the real API server: any spec the CRD admits is refused by the
models with a message naming its field, or renders objects that the API server accepts in a
server-side dry run (strategies in tests/properties.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from pulp_devcluster import ClusterInfo, make_client
from pulp_operator.diff import normalise_secret
from pulp_operator.kube import PulpResource, resource_class
from pulp_operator.render import InputError, render

from ..properties import PULP_NAMES, specs
from ..unit.test_properties import names_a_field, pulp

pytestmark = pytest.mark.apiserver
# Routes need OpenShift's API: the only kind this API server cannot check.
UNCHECKED = {"Route"}


@pytest.fixture
def client(apiserver: ClusterInfo) -> Iterator[Client]:
    c = make_client(apiserver.kubeconfig, "pulp-operator-properties")
    try:
        yield c
    finally:
        c.close()


def dry_run(client: Client, obj: dict[str, Any], namespace: str) -> str | None:
    """The API server's refusal of an apply of `obj`, or None."""
    try:
        client.patch(
            resource_class(obj),
            obj["metadata"]["name"],
            obj,
            namespace=namespace,
            patch_type=PatchType.APPLY,
            field_manager="pulp-operator",
            force=True,
            dry_run=True,
        )
    except ApiError as exc:
        return str(exc.status.message)
    return None


def test_specs_are_refused_naming_a_field_or_accepted_by_the_api_server(
    client: Client, api_namespace: str
) -> None:
    outcomes = {"refused by the API server": 0, "refused by the models": 0, "accepted": 0}

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(PULP_NAMES, specs())
    def check(name: str, spec: dict[str, Any]) -> None:
        body = pulp(name, spec)
        body["metadata"]["namespace"] = api_namespace
        admission = None
        try:
            client.create(PulpResource.from_dict(body), dry_run=True)
        except ApiError as exc:  # the CRD's schema and rules: they name the field
            admission = str(exc.status.message)
        if admission is not None:
            outcomes["refused by the API server"] += 1
            assert "spec" in admission or "metadata" in admission, admission
        refusal = rendered = None
        try:
            rendered = render([body], namespace=api_namespace)
        except InputError as exc:
            refusal = str(exc)
        if rendered is None:
            outcomes["refused by the models"] += 1
            assert refusal is not None
            assert names_a_field(refusal), refusal
            return
        outcomes["accepted"] += 1
        for obj in rendered.objects:
            if obj["kind"] in UNCHECKED:
                continue
            refusal = dry_run(client, normalise_secret(obj), api_namespace)
            assert refusal is None, f"{obj['kind']} {obj['metadata']['name']}: {refusal}"

    check()
    print(f"\n{outcomes}")
    assert outcomes["accepted"] > 0
