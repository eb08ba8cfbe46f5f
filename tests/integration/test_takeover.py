"""Taking over what exists: a Pulp the upstream operator deployed, and the database StatefulSet of
an earlier release of this operator (against a real kube-apiserver)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Event, PersistentVolumeClaim, Secret, Service
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import Kube, PulpResource, resource_class
from pulp_operator.reconciler import Reconciler

from ..e2e import upstream
from .pulps import condition, create_all, get_pulp, load_sample, patch_spec

pytestmark = pytest.mark.apiserver

NAME = "up"
TAG = "3.123.1"
CUSTOM = {"content_origin": '"http://127.0.0.1:30259"', "analytics": "False"}


async def create(kube: Kube, body: dict[str, Any]) -> dict[str, Any]:
    obj = await kube.client.create(resource_class(body).from_dict(body))  # type: ignore[attr-defined]
    return obj.to_dict()  # type: ignore[no-any-return]


async def upstream_state(kube: Kube, ns: str) -> dict[str, Any]:
    """The CR, its status and every object as the upstream operator leaves them."""
    await create(
        kube,
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{NAME}-settings", "namespace": ns}, "data": CUSTOM},
    )  # fmt: skip
    cr = upstream.pulp_cr(NAME, ns, tag=TAG, nodeport=30259, settings=f"{NAME}-settings")
    pulp = await create(kube, cr)
    await kube.client.patch(
        PulpResource.Status,
        NAME,
        {"status": upstream.pulp_status(NAME, TAG)},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    for body in [*upstream.objects(pulp, tag=TAG, nodeport=30259, custom=CUSTOM),
                 upstream.database_claim(pulp)]:  # fmt: skip
        await create(kube, body)
    return pulp


async def snapshot(kube: Kube, ns: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for cls, obj_name in (
        (StatefulSet, f"{NAME}-database"),
        (PersistentVolumeClaim, f"{NAME}-postgres-{NAME}-database-0"),
        (PersistentVolumeClaim, f"{NAME}-file-storage"),
        (PersistentVolumeClaim, f"{NAME}-redis-data"),
        (Deployment, f"{NAME}-api"),
        (Deployment, f"{NAME}-web"),
        (Service, f"{NAME}-web-svc"),
        (Service, f"{NAME}-database-svc"),
        (Secret, f"{NAME}-admin-password"),
        (Secret, f"{NAME}-postgres-configuration"),
        (Secret, f"{NAME}-db-fields-encryption"),
        (Secret, f"{NAME}-secret-key"),
        (Secret, f"{NAME}-server"),
        (ConfigMap, f"{NAME}-configmap"),
    ):
        obj = await kube.get(cls, obj_name, ns)
        assert obj is not None, f"{cls.__name__} {obj_name}"
        out[(obj["kind"], obj_name)] = obj
    return out


def container(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return result


async def test_an_upstream_pulp_is_taken_over_in_place(kube: Kube, api_namespace: str) -> None:
    ns = api_namespace
    pulp = await upstream_state(kube, ns)
    before = await snapshot(kube, ns)

    outcome = await Reconciler(kube).reconcile(ns, NAME)

    assert not [p for p in outcome.problems if p.reason == "ApplyFailed"], outcome.problems
    after = await snapshot(kube, ns)
    # nothing was recreated: the same objects (uids), the database claim and its data stay
    database_claim = ("PersistentVolumeClaim", f"{NAME}-postgres-{NAME}-database-0")
    for key, obj in before.items():
        assert after[key]["metadata"]["uid"] == obj["metadata"]["uid"], key
        if key != database_claim:  # the StatefulSet's claim is the StatefulSet's
            assert after[key]["metadata"]["labels"].get(names.OWNED_LABEL) == NAME, key
    # the immutable fields are upstream's
    sts = after[("StatefulSet", f"{NAME}-database")]
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == [
        f"{NAME}-postgres"
    ]
    assert not sts["spec"].get("serviceName")
    assert container(sts)["volumeMounts"][0]["name"] == f"{NAME}-postgres"
    # ... and the rest is ours: no upstream field is left beside ours
    pg = container(sts)
    assert pg["readinessProbe"]["exec"]["command"][0] == "/bin/sh"
    assert "-i" not in pg["readinessProbe"]["exec"]["command"]
    api = container(after[("Deployment", f"{NAME}-api")])
    assert "args" not in api
    assert api["command"][0] == "pulpcore-api"
    assert set(api["readinessProbe"]) & {"exec", "httpGet"} == {"httpGet"}
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert "/etc/pulp/pulp-admin-password" in mounts
    api_volumes = after[("Deployment", f"{NAME}-api")]["spec"]["template"]["spec"]["volumes"]
    assert f"{NAME}-server" not in {v["name"] for v in api_volumes}  # upstream's volume names
    # data and credentials kept, unowned (they survive deletion of the Pulp)
    for secret in ("admin-password", "postgres-configuration", "db-fields-encryption"):
        key = ("Secret", f"{NAME}-{secret}")
        assert after[key]["data"] == before[key]["data"], secret
        assert not after[key]["metadata"].get("ownerReferences"), secret
    for claim in ("file-storage", "redis-data"):
        assert not after[("PersistentVolumeClaim", f"{NAME}-{claim}")]["metadata"].get(
            "ownerReferences"
        ), claim
    # secrets by reference: settings.py no longer holds the database password or SECRET_KEY
    password = base64.b64decode(
        before[("Secret", f"{NAME}-postgres-configuration")]["data"]["password"]
    ).decode()
    settings = base64.b64decode(after[("Secret", f"{NAME}-server")]["data"]["settings.py"]).decode()
    assert "# Generated by pulp-operator" in settings
    assert password not in settings
    assert "SECRET_KEY" not in settings
    # the services keep their addresses and node port
    web_svc = after[("Service", f"{NAME}-web-svc")]
    assert (
        web_svc["spec"]["clusterIP"] == before[("Service", f"{NAME}-web-svc")]["spec"]["clusterIP"]
    )
    assert web_svc["spec"]["ports"][0]["nodePort"] == 30259
    assert after[("Service", f"{NAME}-database-svc")]["spec"]["clusterIP"] == "None"
    # upstream's condition types give way to ours; the admin password is reset to the same one
    status = (await get_pulp(kube, ns, NAME))["status"]
    assert "Pulp-Operator-Finished-Execution" not in {c["type"] for c in status["conditions"]}
    # the same password set once more (status.admin_password_hash is not upstream's memory)
    prefix = names.admin_password_job(NAME, "")
    assert any(n.startswith(f"Job {prefix}") for n in outcome.applied), outcome.applied
    events = [
        e.message or ""
        async for e in kube.client.list(Event, namespace=ns)
        if e.reason == "Adopted"
    ]
    assert any(f"StatefulSet {NAME}-database" in m for m in events), events
    assert pulp["metadata"]["uid"] == (await get_pulp(kube, ns, NAME))["metadata"]["uid"]

    # converged: the next passes take nothing over again and write no object
    await Reconciler(kube).reconcile(ns, NAME)
    kube.writes.clear()
    again = await Reconciler(kube).reconcile(ns, NAME)
    assert kube.writes["apply"] == 0, (kube.writes, again)
    assert kube.writes["patch"] == 0, (kube.writes, again)


async def test_a_statefulset_of_an_earlier_release_keeps_its_fields(
    kube: Kube, api_namespace: str
) -> None:
    ns = api_namespace
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, ns, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(ns, name)
    # what earlier releases created: template "postgres", serviceName <name>-database-svc
    sts = await kube.get(StatefulSet, names.database(name), ns)
    assert sts is not None
    await kube.client.delete(StatefulSet, names.database(name), namespace=ns)
    legacy = copy.deepcopy(sts)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
        legacy["metadata"].pop(key, None)
    legacy.pop("status", None)
    legacy["spec"]["serviceName"] = names.database_service(name)
    legacy["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = "postgres"
    container(legacy)["volumeMounts"][0]["name"] = "postgres"
    created = await create(kube, legacy)

    # a spec change that touches the StatefulSet (its template) and its claim size
    await patch_spec(
        kube, ns, name, {"database": {"postgres_storage_requirements": "20Gi",
                                      "postgres_image": "postgres:15.9"}},
    )  # fmt: skip
    outcome = await reconciler.reconcile(ns, name)

    assert not [p for p in outcome.problems if p.reason == "ApplyFailed"], outcome.problems
    live = await kube.get(StatefulSet, names.database(name), ns)
    assert live is not None
    assert live["metadata"]["uid"] == created["metadata"]["uid"]
    assert live["spec"]["serviceName"] == names.database_service(name)
    assert [t["metadata"]["name"] for t in live["spec"]["volumeClaimTemplates"]] == ["postgres"]
    assert container(live)["volumeMounts"][0]["name"] == "postgres"
    assert container(live)["image"] == "postgres:15.9"  # the other change went through
    pulp = await get_pulp(kube, ns, name)
    # its claim postgres-<name>-database-0 does not exist here (no controllers): nothing to grow
    assert condition(pulp, "DatabaseReady")["reason"] != "ApplyFailed"


async def test_a_new_statefulset_finds_the_claim_of_an_earlier_release(
    kube: Kube, api_namespace: str
) -> None:
    """A Pulp deleted under an earlier release and created again: its database is in
    postgres-<name>-database-0, and the new StatefulSet must use that claim."""
    ns = api_namespace
    docs = load_sample("simple.yaml")
    name = next(d for d in docs if d["kind"] == "Pulp")["metadata"]["name"]
    await create(
        kube,
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": f"postgres-{names.database(name)}-0", "namespace": ns},
         "spec": {"accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "8Gi"}}}},
    )  # fmt: skip
    await create_all(kube, ns, docs)
    await Reconciler(kube).reconcile(ns, name)
    sts = await kube.get(StatefulSet, names.database(name), ns)
    assert sts is not None
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["postgres"]
