"""What a pass observes, and the bugs that split observation caused: against a real API server.

The operator runs with its watch cache (kopf streams); a pass with nothing to change makes no
API request; user-provided claims, pending claims and invalid specs are reported right.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from lightkube.resources.core_v1 import ConfigMap, Event, PersistentVolumeClaim
from lightkube.types import PatchType

from pulp_devcluster import AuditLog, ClusterInfo
from pulp_operator import names
from pulp_operator.kube import Kube, Obj
from pulp_operator.observe import ApiReader
from pulp_operator.operator import RunOptions, Runtime, running
from pulp_operator.reconciler import Reconciler

from ..support import AUDITED_USER
from .pulps import condition, create_all, eventually, get_pulp, kube_for, load_sample, patch_spec


@pytest.fixture
async def operator(
    apiserver: ClusterInfo, api_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    # The operator as its own user, so that the API server's audit log tells its requests apart.
    kubeconfig = str(apiserver.kubeconfigs[AUDITED_USER])
    monkeypatch.setenv("KUBECONFIG", kubeconfig)  # kopf's login reads it
    options = RunOptions(
        namespaces=(api_namespace,),
        health_address=None,
        metrics_port=0,
        kubeconfig=kubeconfig,
        resync_seconds=3600,
    )
    async with running(options) as runtime:
        yield runtime


async def settled(runtime: Runtime, kube: Kube, namespace: str, name: str) -> None:
    """Until the operator has written the Pulp's status and has nothing left to do."""

    async def done() -> bool:
        pulp = await get_pulp(kube, namespace, name)
        assert runtime.queue is not None
        if not (pulp.get("status") or {}).get("conditions"):
            return False
        await runtime.queue.wait_idle()
        return True

    await eventually(done, what=f"status of Pulp {name}")


def claim_condition(pulp: Obj) -> dict[str, Any]:
    return condition(pulp, "StorageReady")


async def set_claim_phase(kube: Kube, namespace: str, claim: str, phase: str) -> None:
    """This tier has no PersistentVolume controller: play its part."""
    await kube.client.patch(
        PersistentVolumeClaim.Status,
        claim,
        {"status": {"phase": phase, "capacity": {"storage": "10Gi"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


@pytest.mark.apiserver
async def test_noop_pass_makes_no_api_request(
    kube: Kube, api_namespace: str, operator: Runtime, api_audit: AuditLog
) -> None:
    start = api_audit.mark()
    (name,) = await create_all(kube, api_namespace, load_sample("simple.yaml"))
    await settled(operator, kube, api_namespace, name)
    assert operator.kube is not None
    assert operator.queue is not None
    first = dict(operator.kube.requests)
    # converged means bound claims (a Pending claim's events are read on every pass)
    for claim in (names.file_storage(name), names.redis_data(name)):
        await set_claim_phase(kube, api_namespace, claim, "Bound")

    async def bound() -> bool:
        cond = claim_condition(await get_pulp(kube, api_namespace, name))
        return bool(cond["status"] == "True")

    await eventually(bound, what="StorageReady=True")
    await operator.queue.wait_idle()
    converged = api_audit.mark()
    seen = dict(api_audit.count(start, converged, username=AUDITED_USER))
    print(f"\nrequests of the first passes: {first}; the API server saw (watches too): {seen}")
    operator.kube.requests.clear()

    # a harmless touch of the referenced ConfigMap: an event, a pass, nothing to change
    await kube.client.patch(
        ConfigMap,
        "settings",
        {"metadata": {"annotations": {"touched": "yes"}}},
        namespace=api_namespace,
    )
    await eventually(
        lambda: _seen_annotation(operator, api_namespace), what="the touch reached the cache"
    )
    await operator.queue.wait_idle()
    assert operator.queue.processed >= 1
    assert sum(operator.kube.requests.values()) == 0, operator.kube.requests
    during = api_audit.requests(converged, api_audit.mark(), username=AUDITED_USER)
    assert during == [], [(e.verb, e.resource, e.name) for e in during]


async def _seen_annotation(runtime: Runtime, namespace: str) -> bool:
    found = runtime.cache.get("ConfigMap", namespace, "settings")
    return isinstance(found, dict) and "touched" in (found["metadata"].get("annotations") or {})


@pytest.mark.apiserver
async def test_user_provided_claim_makes_storage_ready(
    kube: Kube, api_namespace: str, operator: Runtime
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "my-content", "namespace": api_namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    await kube.client.create(cast(PersistentVolumeClaim, PersistentVolumeClaim.from_dict(claim)))
    docs = load_sample("simple.yaml")
    pulp = next(d for d in docs if d["kind"] == "Pulp")
    spec = {
        k: v
        for k, v in pulp["spec"].items()
        if k not in ("file_storage_storage_class", "file_storage_size", "file_storage_access_mode")
    }
    pulp["spec"] = {**spec, "pvc": "my-content"}
    (name,) = await create_all(kube, api_namespace, docs)
    await settled(operator, kube, api_namespace, name)

    pending = claim_condition(await get_pulp(kube, api_namespace, name))
    assert pending["status"] == "False"
    assert pending["reason"] == "StoragePending"
    assert "PersistentVolumeClaim my-content is Pending" in pending["message"]

    await set_claim_phase(kube, api_namespace, "my-content", "Bound")

    async def bound() -> Any:
        cond = claim_condition(await get_pulp(kube, api_namespace, name))
        return bool(cond["status"] == "True") and cond

    cond = await eventually(bound, what="StorageReady=True for the user's claim")
    assert cond["message"] == "PersistentVolumeClaim my-content Bound"


@pytest.mark.apiserver
async def test_pending_file_storage_claim_is_not_ready(kube: Kube, api_namespace: str) -> None:
    (name,) = await create_all(kube, api_namespace, load_sample("simple.yaml"))
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    claim = names.file_storage(name)
    cond = claim_condition(await get_pulp(kube, api_namespace, name))
    assert (cond["status"], cond["reason"]) == ("False", "StoragePending")
    assert cond["message"].startswith(f"PersistentVolumeClaim {claim} is Pending: ")

    await set_claim_phase(kube, api_namespace, claim, "Bound")
    await reconciler.reconcile(api_namespace, name)
    cond = claim_condition(await get_pulp(kube, api_namespace, name))
    assert (cond["status"], cond["reason"]) == ("True", "StorageAvailable")

    await set_claim_phase(kube, api_namespace, claim, "Lost")
    await reconciler.reconcile(api_namespace, name)
    cond = claim_condition(await get_pulp(kube, api_namespace, name))
    assert (cond["status"], cond["reason"]) == ("False", "StorageLost")


class InvalidSpecReader(ApiReader):
    """The API server refuses what the CRD's rules catch; a CR stored under an older or looser
    CRD (the upstream operator's has no rules) still reaches the operator. Reads the Pulp from the
    API and spoils its spec the way such a CR would be."""

    async def pulp(self, namespace: str, name: str) -> Obj | None:
        pulp = await super().pulp(namespace, name)
        if pulp is not None:
            pulp["spec"]["api"] = {"replicas": -1}
        return pulp


@pytest.mark.apiserver
async def test_invalid_spec_warns_once_per_generation(kube: Kube, api_namespace: str) -> None:
    (name,) = await create_all(kube, api_namespace, load_sample("simple.yaml"))
    reconciler = Reconciler(kube, reader=InvalidSpecReader(kube))

    async def warnings() -> list[Event]:
        events = [e async for e in kube.client.list(Event, namespace=api_namespace)]
        return [e for e in events if e.reason == "InvalidSpec" and e.type == "Warning"]

    for _ in range(3):
        outcome = await reconciler.reconcile(api_namespace, name)
        assert [p.reason for p in outcome.problems] == ["InvalidSpec"]
    ready = condition(await get_pulp(kube, api_namespace, name), "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("spec.api.replicas: ")
    assert len(await warnings()) == 1

    await patch_spec(kube, api_namespace, name, {"enable_debugging": True})  # a new generation
    await reconciler.reconcile(api_namespace, name)
    await reconciler.reconcile(api_namespace, name)
    assert len(await warnings()) == 2


@pytest.mark.apiserver
async def test_missing_reference_warns_once(kube: Kube, api_namespace: str) -> None:
    docs = [d for d in load_sample("simple.yaml") if d["kind"] != "Secret"]
    (name,) = await create_all(kube, api_namespace, docs, stand_ins=False)
    reconciler = Reconciler(kube)
    for _ in range(3):
        await reconciler.reconcile(api_namespace, name)
    events = [e async for e in kube.client.list(Event, namespace=api_namespace)]
    assert [e.reason for e in events if e.type == "Warning"] == ["SecretNotFound"]
    kube.requests.clear()
    kube.writes.clear()
    await reconciler.reconcile(api_namespace, name)
    assert sum(kube.writes.values()) == 0, kube.writes


@pytest.mark.cluster
async def test_claims_that_cannot_be_provisioned_say_why(
    cluster: ClusterInfo, cluster_namespace: str
) -> None:
    kube = kube_for(cluster)
    ns = cluster_namespace
    try:
        docs = load_sample("simple.yaml")
        pulp = next(d for d in docs if d["kind"] == "Pulp")
        pulp["spec"]["file_storage_storage_class"] = "no-such-class"
        pulp["spec"]["database"] = {
            **pulp["spec"].get("database", {}),
            "postgres_storage_class": "no-such-class",
        }
        (name,) = await create_all(kube, ns, docs)
        reconciler = Reconciler(kube)

        async def explained() -> Any:
            await reconciler.reconcile(ns, name)
            pulp = await get_pulp(kube, ns, name)
            storage, database = condition(pulp, "StorageReady"), condition(pulp, "DatabaseReady")
            told = "ProvisioningFailed" in storage["message"] + database["message"]
            return told and (storage, database)

        storage, database = await eventually(explained, within=60, what="claims explained")
        assert storage["reason"] == "StoragePending", storage
        assert "ProvisioningFailed" in storage["message"], storage
        assert database["reason"] == "DatabaseStoragePending", database
        assert f"{names.database_claim(name)} is Pending" in database["message"], database
        degraded = condition(await get_pulp(kube, ns, name), "Degraded")
        assert degraded["status"] == "True"
    finally:
        await kube.close()


@pytest.mark.apiserver
async def test_referenced_secret_read_once_then_cached(
    kube: Kube, api_namespace: str, operator: Runtime
) -> None:
    """A Secret that exists before any Pulp names it is in the cache only as a stub: the first
    pass reads it, later passes do not."""
    docs = load_sample("simple.yaml")
    secrets = [d for d in docs if d["kind"] == "Secret"]
    await create_all(kube, api_namespace, secrets)

    async def stubbed() -> bool:
        return all(
            operator.cache.get("Secret", api_namespace, s["metadata"]["name"]) is not None
            for s in secrets
        )

    await eventually(stubbed, what="the Secrets seen by the watch")
    rest = [d for d in docs if d["kind"] != "Secret"]
    (name,) = await create_all(kube, api_namespace, rest, stand_ins=False)
    await settled(operator, kube, api_namespace, name)
    assert operator.kube is not None
    assert operator.queue is not None
    # bound claims: a Pending claim's events are read now and then, which is not the point here
    for claim in (names.file_storage(name), names.redis_data(name)):
        await set_claim_phase(kube, api_namespace, claim, "Bound")
    await eventually(
        lambda: _claims_bound(operator, api_namespace, name), what="the claims Bound in the cache"
    )
    await operator.queue.wait_idle()
    operator.kube.requests.clear()
    operator.queue.add((api_namespace, name))
    await operator.queue.wait_idle()
    assert sum(operator.kube.requests.values()) == 0, operator.kube.requests


async def _claims_bound(runtime: Runtime, namespace: str, pulp: str) -> bool:
    claims = [runtime.cache.get("PersistentVolumeClaim", namespace, c) for c in
              (names.file_storage(pulp), names.redis_data(pulp))]  # fmt: skip
    return all(isinstance(c, dict) and c["status"]["phase"] == "Bound" for c in claims)
