"""The operator (kopf watches, work queue, backup/restore controllers beside the Pulp reconciler)
on the simulated cluster, where kwok runs the Jobs' pods to completion: a backup survives an
operator restart in the middle, and a restore brings a deleted Pulp back to Ready."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Event, PersistentVolumeClaim, Secret
from prometheus_client import REGISTRY

from pulp_devcluster import ClusterInfo
from pulp_operator import names
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired import backup as build
from pulp_operator.kube import Kube, PulpBackupResource, PulpResource, PulpRestoreResource
from pulp_operator.operator import RunOptions, running
from pulp_operator.restores import objects_secret_name

from .pulps import create_all, kube_for, provide_volumes

pytestmark = pytest.mark.cluster

PULP = {
    "apiVersion": "repo-manager.pulpproject.org/v1",
    "kind": "Pulp",
    "metadata": {"name": "pulp"},
    "spec": {
        "file_storage_storage_class": "standard",
        "file_storage_access_mode": "ReadWriteOnce",
        "custom_pulp_settings": "settings",
        "database": {"postgres_storage_class": "standard"},
        "web": {"replicas": 1},
    },
}
SETTINGS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings"},
    "data": {"content_origin": '"http://pulp.example"'},
}


async def eventually(check: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


class Operator:
    def __init__(self, info: ClusterInfo, namespace: str) -> None:
        self.options = RunOptions(
            namespaces=(namespace,),
            health_address=None,
            metrics_port=0,
            kubeconfig=str(info.kubeconfig),
            resync_seconds=3600,
        )
        self.ctx: Any = None

    async def start(self) -> None:
        self.ctx = running(self.options)
        await self.ctx.__aenter__()

    async def stop(self) -> None:
        if self.ctx is not None:
            await self.ctx.__aexit__(None, None, None)
            self.ctx = None


@pytest.fixture
async def kube(cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    client = kube_for(cluster)
    try:
        yield client
    finally:
        await client.close()


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


async def test_backup_across_an_operator_restart_then_restore_after_deletion(
    cluster: ClusterInfo, cluster_namespace: str, kube: Kube
) -> None:
    ns = cluster_namespace
    operator = Operator(cluster, ns)
    await operator.start()
    try:
        await provide_volumes(kube, ns, count=6)  # no provisioner on this tier
        await create_all(kube, ns, [SETTINGS, PULP])

        async def pulp_ready() -> Any:
            pulp = await kube.get(PulpResource, "pulp", ns)
            return condition(pulp, "Ready").get("status") == "True" and pulp

        try:
            await eventually(pulp_ready, 120, "Pulp Ready")
        except AssertionError:
            pulp = await kube.get(PulpResource, "pulp", ns)
            raise AssertionError(f"Pulp not Ready: {(pulp or {}).get('status')}") from None
        backup_body = {
            "apiVersion": "repo-manager.pulpproject.org/v1",
            "kind": "PulpBackup",
            "metadata": {"name": "once", "namespace": ns},
            "spec": {"deployment_name": "pulp", "backup_storage_class": "standard"},
        }
        await kube.client.create(PulpBackupResource.from_dict(backup_body))

        async def job_created() -> Any:
            obj = await kube.get(PulpBackupResource, "once", ns)
            run = ((obj or {}).get("status") or {}).get("run") or {}
            directory = run.get("directory")
            return directory and await kube.get(Job, directory, ns) and directory

        directory = await eventually(job_created, 60, "the backup Job")
        await operator.stop()  # killed in the middle: the Job runs on without it

        async def job_done() -> Any:
            job = await kube.get(Job, directory, ns)
            return any(
                c["type"] == "Complete" and c["status"] == "True"
                for c in ((job or {}).get("status") or {}).get("conditions") or []
            )

        await eventually(job_done, 60, "the backup Job completing while the operator is away")
        await operator.start()

        async def backed_up() -> Any:
            obj = await kube.get(PulpBackupResource, "once", ns)
            return condition(obj, "BackupComplete").get("status") == "True" and obj

        obj = await eventually(backed_up, 60, "BackupComplete=True after the restart")
        status = obj["status"]
        assert status["run"]["directory"] == directory  # the same run, not a new one
        assert [s["name"] for s in status["run"]["steps"]] == [
            "Prepare",
            "DumpDatabase",
            "CopyFiles",
            "WriteObjects",
        ]
        assert status["backupDirectory"] == directory
        events = [
            e.reason
            async for e in kube.client.list(Event, namespace=ns)
            if e.involvedObject.name == "once"
        ]
        assert events.count("BackupStarted") == 1
        assert events.count("JobCreated") == 1  # one Job, made before the restart
        # done: the Job and its pod are gone (a finished pod would pin the claims it mounted)
        await eventually(lambda: _gone(kube, Job, directory, ns), 30, "the backup Job deleted")

        # What the backup holds, as its Job wrote it (kwok runs no container: the test builds
        # the same files from the objects, with the pure builder the backup uses).
        pulp = await kube.get(PulpResource, "pulp", ns)
        assert pulp is not None
        spec = PulpSpec.model_validate(pulp["spec"])
        secrets = {}
        for role, secret in build.secret_roles("pulp", spec, {}).items():
            found = await kube.get(Secret, secret, ns)
            assert found is not None
            secrets[role] = found
        settings = await kube.get(ConfigMap, "settings", ns)
        assert settings is not None
        meta = build.BackupMeta("pulp", ns, directory, "2026-01-01T00:00:00Z",
                                "quay.io/pulp/pulp-minimal:stable", "File", True, False,
                                "postgres:15")  # fmt: skip
        files = build.backup_objects(meta, pulp, secrets, {"custom_pulp_settings": settings})
        info = json.loads(files["backup.json"])
        files["backup.json"] = json.dumps({**info, "database_version": "15.8"})
        originals = {s["metadata"]["name"]: s["data"] for s in secrets.values()}

        # the Pulp, its claims, its Secrets and its settings go
        await kube.client.delete(PulpResource, "pulp", namespace=ns)
        await eventually(lambda: _gone(kube, PulpResource, "pulp", ns), 60, "the Pulp deleted")
        for secret in originals:
            await kube.delete(Secret, secret, ns)
        await kube.delete(ConfigMap, "settings", ns)
        claims = (names.file_storage("pulp"), names.database_claim("pulp"))
        for claim in claims:
            await kube.delete(PersistentVolumeClaim, claim, ns)
        for claim in claims:
            await eventually(
                functools.partial(_gone, kube, PersistentVolumeClaim, claim, ns),
                60,
                f"{claim} gone",
            )

        # what the ReadBackup Job hands over (on this tier its pod runs no container)
        await kube.client.create(  # type: ignore[call-overload]
            Secret.from_dict(
                {
                    "metadata": {"name": objects_secret_name("back"), "namespace": ns},
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
                }
            )
        )
        restore_body = {
            "apiVersion": "repo-manager.pulpproject.org/v1",
            "kind": "PulpRestore",
            "metadata": {"name": "back", "namespace": ns},
            "spec": {"backup_name": "once"},
        }
        await kube.client.create(PulpRestoreResource.from_dict(restore_body))

        async def restored() -> Any:
            obj = await kube.get(PulpRestoreResource, "back", ns)
            cond = condition(obj, "RestoreComplete")
            if cond.get("reason", "").endswith("Failed"):
                raise AssertionError(cond["message"])
            return cond.get("status") == "True" and obj

        try:
            obj = await eventually(restored, 180, "RestoreComplete=True")
        except AssertionError:
            obj = await kube.get(PulpRestoreResource, "back", ns)
            raise AssertionError(f"not restored: {(obj or {}).get('status')}") from None
        assert [s["name"] for s in obj["status"]["steps"]] == [
            "ReadBackup",
            "CheckTarget",
            "RestoreObjects",
            "RestoreDatabase",
            "RestoreFiles",
            "StartPulp",
            "WaitReady",
        ]
        pulp = await pulp_ready()
        assert pulp
        assert pulp["metadata"]["uid"] == obj["status"]["pulpUID"]
        assert pulp["spec"]["web"]["replicas"] == 1
        assert not pulp["spec"].get("disable_migrations")
        for name, data in originals.items():
            found = await kube.get(Secret, name, ns)
            assert found is not None
            assert found["data"] == data, name  # same keys and passwords as before
        assert await kube.get(ConfigMap, "settings", ns) is not None
        restored_jobs = kube.client.list(Job, namespace=ns, labels={build.RESTORE_LABEL: "back"})
        assert [j async for j in restored_jobs] == []
        # a finished restore does nothing more, even after the operator restarts
        await operator.stop()
        before = (await kube.get(PulpRestoreResource, "back", ns) or {})["metadata"][
            "resourceVersion"
        ]
        done_before = _passes()
        await operator.start()
        # the startup listing hands the Pulp, the PulpBackup and the PulpRestore to the queue
        await eventually(lambda: _ok(_passes() >= done_before + 3), 60, "three passes")
        after = (await kube.get(PulpRestoreResource, "back", ns) or {})["metadata"][
            "resourceVersion"
        ]
        assert after == before
    finally:
        await operator.stop()


def _passes() -> float:
    return REGISTRY.get_sample_value("pulp_operator_reconciles_total", {"result": "ok"}) or 0.0


async def _ok(value: bool) -> bool:
    return value


async def _gone(kube: Kube, cls: Any, name: str, namespace: str) -> bool:
    return await kube.get(cls, name, namespace) is None
