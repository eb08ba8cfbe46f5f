"""Secrets never leak, and the pods run under the restricted Pod Security profile, on the real
node with the real images.

One Pulp with a referenced admin password Secret and the generated ones, in a namespace that
enforces `restricted`: it becomes Ready (so every pod was admitted and runs as the images allow),
the referenced password works against the API, and no generated or referenced secret value,
plain or base64, appears in the operator's log, the Events, the Pulp's status or any object in
the namespace other than the Secrets.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.core.resource import NamespacedResource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, ReplicaSet, StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.networking_v1 import Ingress
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import PulpResource

from .common import as_dict, pulp_manifests, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NAME = "vault"
NAMESPACE = "resilience-secrets"
NODEPORT = 30260
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}
# Keys of Secret data that are secret (the rest: user names, hosts, ports, public keys).
SECRET_KEYS = {
    "password",
    "secret_key",
    "database_fields.symmetric.key",
    "container_auth_private_key.pem",
}
SCANNED: tuple[type[NamespacedResource], ...] = (
    ConfigMap,
    Deployment,
    ReplicaSet,
    StatefulSet,
    Job,
    Pod,
    Service,
    Endpoints,
    ServiceAccount,
    Role,
    RoleBinding,
    PersistentVolumeClaim,
    Ingress,
)


@pytest.fixture(scope="module")
def deployed(real_node: RealNode) -> Iterator[tuple[RealNode, str, str]]:
    """The Pulp, Ready; yields (node, the referenced admin password, the operator's log)."""
    client = real_node.client
    real_node.namespace(NAMESPACE)
    client.patch(
        Namespace, NAMESPACE, {"metadata": {"labels": RESTRICTED}}, patch_type=PatchType.MERGE
    )
    password = secrets.token_urlsafe(24)
    client.create(
        Secret(
            metadata=ObjectMeta(name="vault-admin", namespace=NAMESPACE),
            stringData={"password": password},
        )
    )
    log_name = "test_secrets"
    try:
        with real_node.operator([NAMESPACE], log_name=log_name):
            for doc in pulp_manifests(NAME, NAMESPACE, NODEPORT):
                if doc["kind"] == "Pulp":
                    doc["spec"]["admin_password_secret"] = "vault-admin"
                    client.create(PulpResource.from_dict(doc))
                else:
                    client.create(ConfigMap.from_dict(doc))  # type: ignore[call-overload]
            wait("Pulp Ready=True under restricted", lambda: ready(client), timeout=900, every=3)
            # once more through a pass that changes something: the log of an update too
            client.patch(
                PulpResource,
                NAME,
                {"spec": {"content": {"gunicorn_workers": 2}}},
                namespace=NAMESPACE,
                patch_type=PatchType.MERGE,
            )
            log = real_node.logs / f"{log_name}.log"
            wait(
                "the update in the operator's log",
                lambda: f"updated Deployment {names.content(NAME)}" in log.read_text(),
                60,
                0.5,
            )
            wait("Pulp Ready=True again", lambda: ready(client), timeout=600, every=3)
        yield real_node, password, log.read_text()
    finally:
        real_node.delete_namespaces(NAMESPACE)


def ready(client: Client) -> bool:
    pulp = as_dict(client.get(PulpResource, NAME, namespace=NAMESPACE))
    generation = pulp["metadata"].get("generation")
    for cond in (pulp.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return bool(cond["status"] == "True" and cond.get("observedGeneration") == generation)
    return False


def secret_values(client: Client) -> dict[str, str]:
    """Every secret value in the namespace's Secrets, by where it is."""
    out: dict[str, str] = {}
    for secret in client.list(Secret, namespace=NAMESPACE):
        assert secret.metadata is not None
        for key, value in (secret.data or {}).items():
            if key in SECRET_KEYS:
                out[f"Secret {secret.metadata.name} key {key}"] = base64.b64decode(value).decode()
    return out


def forms(value: str) -> list[str]:
    """How a value could appear: as it is, base64-encoded, and for a PEM key its body lines."""
    out = [value, base64.b64encode(value.encode()).decode()]
    if value.startswith("-----BEGIN"):
        out += [line for line in value.splitlines() if len(line) >= 32 and "-----" not in line]
    return out


def test_the_referenced_password_works(deployed: tuple[RealNode, str, str]) -> None:
    _, password, _ = deployed
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{NODEPORT}/pulp/api/v3/users/?username=admin",
        headers={"Authorization": f"Basic {auth}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["count"] == 1


def test_no_secret_value_appears_outside_the_secrets(deployed: tuple[RealNode, str, str]) -> None:
    node, password, log = deployed
    client = node.client
    values = secret_values(client)
    assert "Secret vault-admin key password" in values
    assert values["Secret vault-admin key password"] == password
    for generated in (names.secret_key(NAME), names.db_fields_encryption(NAME)):
        assert any(where.startswith(f"Secret {generated} ") for where in values), values.keys()
    assert len(log) > 1000, "the operator's log is missing"

    places: dict[str, str] = {"the operator's log": log}
    pulp = as_dict(client.get(PulpResource, NAME, namespace=NAMESPACE))
    places["the Pulp's status"] = json.dumps(pulp.get("status"))
    places["the Pulp"] = json.dumps(pulp)
    for event in client.list(Event, namespace=NAMESPACE):
        assert event.metadata is not None
        places[f"Event {event.metadata.name}"] = json.dumps(as_dict(event))
    scanned = 0
    for cls in SCANNED:
        for obj in client.list(cls, namespace=NAMESPACE):
            body = as_dict(obj)
            places[f"{cls.__name__} {body['metadata']['name']}"] = json.dumps(body)
            scanned += 1
    assert scanned > 20, f"only {scanned} objects found"
    leaks = [
        f"{where} holds the value of {secret}"
        for secret, value in values.items()
        for form in forms(value)
        for where, text in places.items()
        if form in text
    ]
    assert not leaks, leaks
