"""Upgrades, downgrades and storage growth against a real kube-apiserver.

No controllers run on this tier: the tests play the Job and Deployment controllers by writing the
status a finished migration or a finished rollout has, and bind claims by writing their status.
"""

from __future__ import annotations

import zlib
from typing import Any, cast

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import Kube
from pulp_operator.reconciler import Reconciler

from .pulps import condition, create_all, get_pulp, load_sample, patch_spec
from .test_reconcile import complete_job

pytestmark = pytest.mark.apiserver

OLD, NEW = "3.122.2", "3.123.1"
ROLLED = ("api", "content", "worker", "web")


def versioned(version: str, **spec: Any) -> list[dict[str, Any]]:
    docs = load_sample("simple.yaml")
    for doc in docs:
        if doc["kind"] == "Pulp":
            doc["spec"].update(image_version=version, image_web_version=version, **spec)
    return docs


async def finish_rollouts(kube: Kube, ns: str, name: str) -> None:
    """What the Deployment controller reports once every pod runs the current template."""
    for component in ROLLED:
        dep = await kube.get(Deployment, f"{name}-{component}", ns)
        assert dep is not None
        replicas = dep["spec"].get("replicas", 1)
        await kube.client.patch(
            Deployment.Status,
            dep["metadata"]["name"],
            {"status": {"observedGeneration": dep["metadata"]["generation"], "replicas": replicas,
                        "updatedReplicas": replicas, "readyReplicas": replicas,
                        "availableReplicas": replicas}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )  # fmt: skip


async def migration_jobs(kube: Kube, ns: str, version: str) -> list[str]:
    return [
        j.metadata.name
        async for j in kube.client.list(Job, namespace=ns)
        if j.metadata is not None
        and j.metadata.name
        and "pulpcore-migration" in j.metadata.name
        and j.spec is not None
        and j.spec.template.spec is not None
        and j.spec.template.spec.containers[0].image
        and j.spec.template.spec.containers[0].image.endswith(f":{version}")
    ]


async def images(kube: Kube, ns: str, name: str) -> dict[str, str]:
    out = {}
    for component in ROLLED:
        dep = await kube.get(Deployment, f"{name}-{component}", ns)
        assert dep is not None
        out[component] = dep["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":")[-1]
    return out


async def events(kube: Kube, ns: str) -> list[tuple[str, str]]:
    found = [e async for e in kube.client.list(Event, namespace=ns)]
    # in the order they were written (creationTimestamp has whole seconds only)
    found.sort(key=lambda e: int((e.metadata.resourceVersion if e.metadata else None) or 0))
    return [(e.reason or "", e.message or "") for e in found]


async def running(kube: Kube, ns: str, version: str, reconciler: Reconciler) -> str:
    """A Pulp at `version`, migrated and rolled out."""
    (name,) = await create_all(kube, ns, versioned(version))
    await reconciler.reconcile(ns, name)
    for job in await migration_jobs(kube, ns, version):
        await complete_job(kube, ns, job)
    await reconciler.reconcile(ns, name)
    await finish_rollouts(kube, ns, name)
    await reconciler.reconcile(ns, name)
    status = (await get_pulp(kube, ns, name))["status"]
    assert status["version"] == version, status
    assert "target_version" not in status
    return name


async def test_upgrade_migrates_first_then_rolls_and_says_so(
    kube: Kube, api_namespace: str
) -> None:
    ns, reconciler = api_namespace, Reconciler(kube)
    name = await running(kube, ns, OLD, reconciler)

    await patch_spec(kube, ns, name, {"image_version": NEW, "image_web_version": NEW})
    await reconciler.reconcile(ns, name)
    pulp = await get_pulp(kube, ns, name)
    status = pulp["status"]
    assert (status["version"], status["target_version"], status["upgrade_phase"]) == (
        OLD, NEW, "Migrating",
    )  # fmt: skip
    progressing = condition(pulp, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "Upgrading")
    assert set((await images(kube, ns, name)).values()) == {OLD}  # web waits too
    (job,) = await migration_jobs(kube, ns, NEW)

    await complete_job(kube, ns, job)
    await reconciler.reconcile(ns, name)
    status = (await get_pulp(kube, ns, name))["status"]
    assert (status["version"], status["target_version"], status["upgrade_phase"]) == (
        OLD, NEW, "Rolling",
    )  # fmt: skip
    assert set((await images(kube, ns, name)).values()) == {NEW}

    await finish_rollouts(kube, ns, name)
    await reconciler.reconcile(ns, name)
    pulp = await get_pulp(kube, ns, name)
    status = pulp["status"]
    assert status["version"] == NEW
    assert status["schema_version"] == NEW
    assert "target_version" not in status
    assert "upgrade_phase" not in status
    assert condition(pulp, "Progressing")["reason"] != "Upgrading"
    phases = [r for r, _ in await events(kube, ns) if r.startswith("Upgrade")]
    assert phases == ["UpgradeMigrating", "UpgradeRolling", "UpgradeComplete"], phases


async def test_failed_migration_keeps_the_old_version_serving(
    kube: Kube, api_namespace: str
) -> None:
    ns, reconciler = api_namespace, Reconciler(kube)
    name = await running(kube, ns, OLD, reconciler)
    await patch_spec(kube, ns, name, {"image_version": NEW, "image_web_version": NEW})
    await reconciler.reconcile(ns, name)
    (job,) = await migration_jobs(kube, ns, NEW)
    now = "2026-01-01T00:00:00Z"
    await kube.client.patch(
        Job.Status,
        job,
        {"status": {"startTime": now, "failed": 3, "conditions": [
            {"type": "FailureTarget", "status": "True", "lastTransitionTime": now,
             "reason": "BackoffLimitExceeded", "message": "Job has reached the backoff limit"},
            {"type": "Failed", "status": "True", "lastTransitionTime": now,
             "reason": "BackoffLimitExceeded", "message": "Job has reached the backoff limit"},
        ]}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    await reconciler.reconcile(ns, name)
    pulp = await get_pulp(kube, ns, name)
    migrations = condition(pulp, "MigrationsComplete")
    assert (migrations["status"], migrations["reason"]) == ("False", "MigrationFailed")
    assert job in migrations["message"]
    assert "backoff limit" in migrations["message"]
    assert pulp["status"]["version"] == OLD
    assert pulp["status"]["upgrade_phase"] == "MigrationFailed"
    assert set((await images(kube, ns, name)).values()) == {OLD}
    assert ("UpgradeFailed", migrations["message"]) in await events(kube, ns)


async def test_downgrade_below_the_schema_is_refused_unless_allowed(
    kube: Kube, api_namespace: str
) -> None:
    ns, reconciler = api_namespace, Reconciler(kube)
    name = await running(kube, ns, NEW, reconciler)

    await patch_spec(kube, ns, name, {"image_version": OLD, "image_web_version": OLD})
    await reconciler.reconcile(ns, name)
    pulp = await get_pulp(kube, ns, name)
    ready = condition(pulp, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DowngradeRefused")
    assert f"spec.image_version {OLD}" in ready["message"]
    assert "spec.allow_downgrade" in ready["message"]
    assert await migration_jobs(kube, ns, OLD) == []
    assert set((await images(kube, ns, name)).values()) == {NEW}
    assert "DowngradeRefused" in [r for r, _ in await events(kube, ns)]

    await patch_spec(kube, ns, name, {"allow_downgrade": True})
    await reconciler.reconcile(ns, name)
    assert len(await migration_jobs(kube, ns, OLD)) == 1
    assert condition(await get_pulp(kube, ns, name), "Ready")["reason"] != "DowngradeRefused"


async def storage_class(kube: Kube, name: str, expandable: bool) -> None:
    await kube.client.create(
        StorageClass(
            metadata=ObjectMeta(name=name),
            provisioner="example.com/none",
            allowVolumeExpansion=expandable,
        )
    )


async def bind(kube: Kube, ns: str, claim: str) -> None:
    pvc = await kube.get(PersistentVolumeClaim, claim, ns)
    assert pvc is not None, claim
    size = pvc["spec"]["resources"]["requests"]["storage"]
    await kube.client.patch(
        PersistentVolumeClaim.Status,
        claim,
        {"status": {"phase": "Bound", "accessModes": pvc["spec"]["accessModes"],
                    "capacity": {"storage": size}}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )  # fmt: skip


async def requested(kube: Kube, ns: str, claim: str) -> str:
    pvc = await kube.get(PersistentVolumeClaim, claim, ns)
    assert pvc is not None
    return str(pvc["spec"]["resources"]["requests"]["storage"])


async def test_claims_grow_where_their_class_allows_it(kube: Kube, api_namespace: str) -> None:
    ns, reconciler = api_namespace, Reconciler(kube)
    suffix = f"{zlib.crc32(ns.encode()):x}"
    grows, fixed = f"grows-{suffix}", f"fixed-{suffix}"
    await storage_class(kube, grows, True)
    await storage_class(kube, fixed, False)
    try:
        docs = versioned(NEW)
        pulp_doc = next(d for d in docs if d["kind"] == "Pulp")
        pulp_doc["spec"].update(
            file_storage_storage_class=grows,
            file_storage_size="10Gi",
            database={"postgres_storage_class": fixed, "postgres_storage_requirements": "8Gi"},
            cache={"enabled": True, "redis_storage_class": grows,
                   "redis_resource_requirements": {"requests": {"storage": "1Gi"}}},
        )  # fmt: skip
        (name,) = await create_all(kube, ns, docs)
        await reconciler.reconcile(ns, name)
        db_claim = names.database_claim(name)
        # what the StatefulSet controller would create from the template
        sts = await kube.get(StatefulSet, names.database(name), ns)
        assert sts is not None
        template = sts["spec"]["volumeClaimTemplates"][0]
        body = {"metadata": {"name": db_claim, "namespace": ns}, "spec": template["spec"]}
        await kube.client.create(cast(PersistentVolumeClaim, PersistentVolumeClaim.from_dict(body)))
        for claim in (names.file_storage(name), names.redis_data(name), db_claim):
            await bind(kube, ns, claim)

        await patch_spec(
            kube, ns, name,
            {"file_storage_size": "20Gi", "api": {"replicas": 2},
             "database": {"postgres_storage_class": fixed, "postgres_storage_requirements": "16Gi"},
             "cache": {"enabled": True, "redis_storage_class": grows,
                       "redis_resource_requirements": {"requests": {"storage": "2Gi"}}}},
        )  # fmt: skip
        outcome = await reconciler.reconcile(ns, name)
        assert not [p for p in outcome.problems if p.reason == "ApplyFailed"], outcome.problems
        assert await requested(kube, ns, names.file_storage(name)) == "20Gi"
        assert await requested(kube, ns, names.redis_data(name)) == "2Gi"
        assert await requested(kube, ns, db_claim) == "8Gi"
        pulp = await get_pulp(kube, ns, name)
        database = condition(pulp, "DatabaseReady")
        assert (database["status"], database["reason"]) == ("False", "StorageExpansionUnsupported")
        assert database["message"].startswith("spec.database.postgres_storage_requirements: 16Gi")
        assert "allowVolumeExpansion" in database["message"]
        # the immutable template blocked nothing else
        api = await kube.get(Deployment, names.api(name), ns)
        assert api is not None
        assert api["spec"]["replicas"] == 2

        # the class allows expansion now: the database claim grows, patched itself
        await kube.client.patch(
            StorageClass, fixed, {"allowVolumeExpansion": True}, patch_type=PatchType.MERGE
        )
        await reconciler.reconcile(ns, name)
        assert await requested(kube, ns, db_claim) == "16Gi"
        assert condition(await get_pulp(kube, ns, name), "DatabaseReady")["reason"] != (
            "StorageExpansionUnsupported"
        )

        # a shrink: refused, the field named, the claim keeps its size
        await patch_spec(kube, ns, name, {"file_storage_size": "5Gi"})
        await reconciler.reconcile(ns, name)
        storage = condition(await get_pulp(kube, ns, name), "StorageReady")
        assert (storage["status"], storage["reason"]) == ("False", "StorageShrinkRefused")
        assert storage["message"].startswith("spec.file_storage_size: 5Gi")
        assert await requested(kube, ns, names.file_storage(name)) == "20Gi"
    finally:
        for cls_name in (grows, fixed):
            await kube.client.delete(StorageClass, cls_name)
