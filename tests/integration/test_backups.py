"""PulpBackup and PulpRestore state machines against a real kube-apiserver.

No controller or kubelet runs on this tier: the test plays them (tests/integration/runs.py),
creating each Job's pod and reporting how its containers ended. Each pass is made by a fresh
controller, as after an operator restart: all they know is in the status.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
import yaml
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    ServiceAccount,
)
from lightkube.resources.rbac_authorization_v1 import Role
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.api.crd import API_VERSION
from pulp_operator.backups import Backups
from pulp_operator.desired import backup as build
from pulp_operator.kube import Kube, PulpBackupResource, PulpResource, PulpRestoreResource
from pulp_operator.reconciler import Reconciler
from pulp_operator.restores import Restores, objects_secret_name

from .runs import backup_report, finish_job, report_containers

pytestmark = pytest.mark.apiserver

PULP_SPEC = {
    "file_storage_storage_class": "standard",
    "custom_pulp_settings": "settings",
    "api": {"replicas": 2},
    "web": {"replicas": 1},
}


async def create(kube: Kube, body: dict[str, Any]) -> dict[str, Any]:
    cls = {
        "Pulp": PulpResource,
        "PulpBackup": PulpBackupResource,
        "PulpRestore": PulpRestoreResource,
    }.get(body["kind"])
    if cls is None:
        created = await kube.create(body)
        assert created is not None
        return created
    obj = await kube.client.create(cls.from_dict(body))
    return obj.to_dict()  # type: ignore[no-any-return]


def run_body(kind: str, namespace: str | None, name: str, **spec: Any) -> dict[str, Any]:
    """A PulpBackup or PulpRestore (namespace None: left out)."""
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


async def make_backup(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return await create(kube, run_body("PulpBackup", namespace, name, **spec))


async def make_restore(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return await create(kube, run_body("PulpRestore", namespace, name, **spec))


async def make_pulp(
    kube: Kube, namespace: str, name: str = "pulp", spec: dict[str, Any] | None = None
) -> None:
    """A Pulp with the Secrets the operator generates for it (one reconcile pass)."""
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace},
            "data": {"content_origin": '"http://pulp.example"'},
        },
    )
    await create(
        kube,
        {
            "apiVersion": API_VERSION,
            "kind": "Pulp",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec or PULP_SPEC,
        },
    )
    await Reconciler(kube).reconcile(namespace, name)


async def make_claim(kube: Kube, namespace: str, name: str) -> None:
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


async def backup(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.get(PulpBackupResource, name, namespace)
    assert obj is not None
    return obj


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    raise AssertionError(f"no {type_} condition in {obj.get('status')}")


async def passes(kube: Kube, namespace: str, name: str, count: int = 1, **kw: Any) -> float | None:
    delay = None
    for _ in range(count):
        delay = await Backups(kube, **kw).reconcile(namespace, name)
    return delay


async def events(kube: Kube, namespace: str, name: str) -> list[str]:
    return [
        e.reason
        async for e in kube.client.list(Event, namespace=namespace)
        if e.involvedObject.name == name and e.reason
    ]


async def test_a_backup_runs_step_by_step_and_then_changes_nothing(
    kube: Kube, api_namespace: str
) -> None:
    ns = api_namespace
    await make_pulp(kube, ns)
    body = run_body("PulpBackup", ns, "nightly", deployment_name="pulp")
    await create(kube, body)

    assert await passes(kube, ns, "nightly") == 0.0
    run = (await backup(kube, ns, "nightly"))["status"]["run"]
    directory = run["directory"]
    assert directory.startswith("nightly-")
    assert (await backup(kube, ns, "nightly"))["status"]["phase"] == "Running"

    await passes(kube, ns, "nightly")  # Prepare
    obj = await backup(kube, ns, "nightly")
    assert [s["name"] for s in obj["status"]["run"]["steps"]] == ["Prepare"]
    assert obj["status"]["backupClaim"] == "nightly-backup-claim"
    assert obj["status"]["storage"].startswith("file storage copied")
    assert await kube.get(PersistentVolumeClaim, "nightly-backup-claim", ns) is not None

    await passes(kube, ns, "nightly")  # the objects Secret and the Job
    job = await kube.get(Job, directory, ns)
    assert job is not None
    containers = job["spec"]["template"]["spec"]
    assert [c["name"] for c in containers["initContainers"]] == ["dump-database", "copy-files"]
    assert containers["initContainers"][0]["image"] == "postgres:15"
    objects = await kube.get(Secret, directory, ns)
    assert objects is not None
    secrets_yaml = base64.b64decode(objects["data"]["secrets.yaml"]).decode()
    saved = {d["metadata"]["name"] for d in yaml.safe_load_all(secrets_yaml)}
    assert names.db_fields_encryption("pulp") in saved
    assert names.postgres_configuration("pulp") in saved
    assert (await backup(kube, ns, "nightly"))["status"]["step"] == "DumpDatabase"

    # nothing happened: nothing is written (a fresh controller each time: an operator restart)
    before = dict(kube.writes)
    await passes(kube, ns, "nightly", count=3)
    assert kube.writes == before

    await report_containers(kube, ns, directory, {"dump-database": (0, ""), "copy-files": None})
    await passes(kube, ns, "nightly")
    obj = await backup(kube, ns, "nightly")
    assert [s["name"] for s in obj["status"]["run"]["steps"]] == ["Prepare", "DumpDatabase"]
    assert obj["status"]["step"] == "CopyFiles"
    assert cond(obj, "BackupComplete")["status"] == "False"

    await report_containers(
        kube,
        ns,
        directory,
        {
            "dump-database": (0, ""),
            "copy-files": (0, ""),
            "write-objects": (0, backup_report(directory, [directory])),
        },
    )
    await finish_job(kube, ns, directory)
    assert await passes(kube, ns, "nightly") is None
    obj = await backup(kube, ns, "nightly")
    status = obj["status"]
    assert [s["name"] for s in status["run"]["steps"]] == [
        "Prepare",
        "DumpDatabase",
        "CopyFiles",
        "WriteObjects",
    ]
    assert status["phase"] == "Succeeded"
    assert status["backupDirectory"] == directory
    assert status["run"]["sizeBytes"] == 4242
    assert status["run"]["databaseVersion"] == "15.8"
    assert status["backups"] == [{"directory": directory, "sizeBytes": 4242}]
    complete = cond(obj, "BackupComplete")
    assert complete["status"] == "True"
    assert directory in complete["message"]
    assert await kube.get(Secret, directory, ns) is None  # the Secrets' copy is gone
    reasons = await events(kube, ns, "nightly")
    for reason in ("BackupStarted", "Prepared", "DatabaseDumped", "FilesCopied", "BackupCompleted"):
        assert reason in reasons

    # a finished backup: later passes and re-applying the same PulpBackup write nothing
    before = dict(kube.writes)
    await passes(kube, ns, "nightly", count=2)
    await kube.client.patch(
        PulpBackupResource,
        "nightly",
        {k: v for k, v in body.items() if k != "status"},
        namespace=ns,
        patch_type=PatchType.APPLY,
        field_manager="pulp-operator-tests",
    )
    await passes(kube, ns, "nightly")
    assert kube.writes == before
    assert (await events(kube, ns, "nightly")).count("JobCreated") == 1
    assert await kube.get(Job, directory, ns) is None  # gone with its pod once recorded


async def test_backup_failures_name_the_step_and_what_to_do(kube: Kube, api_namespace: str) -> None:
    ns = api_namespace
    await make_pulp(kube, ns)
    for name, pulp in (("missing", "nope"), ("broken", "pulp")):
        await make_backup(kube, ns, name, deployment_name=pulp)
    await passes(kube, ns, "missing", count=2)
    failed = cond(await backup(kube, ns, "missing"), "BackupComplete")
    assert failed["reason"] == "PrepareFailed"
    assert "Pulp nope not found" in failed["message"]
    assert "spec.deployment_name" in failed["message"]
    assert await passes(kube, ns, "missing") is None  # failed: waits for a changed spec

    await passes(kube, ns, "broken", count=3)
    directory = (await backup(kube, ns, "broken"))["status"]["run"]["directory"]
    log = "pg_dump: error: connection to server failed: FATAL: password authentication failed"
    await report_containers(kube, ns, directory, {"dump-database": (1, log)})
    await finish_job(kube, ns, directory, succeeded=False)
    await passes(kube, ns, "broken")
    obj = await backup(kube, ns, "broken")
    failed = cond(obj, "BackupComplete")
    assert failed["reason"] == "DumpDatabaseFailed"
    assert "password authentication failed" in failed["message"]
    assert "check the database credentials" in failed["message"]
    assert obj["status"]["phase"] == "Failed"
    assert "DumpDatabaseFailed" in await events(kube, ns, "broken")

    # a changed spec tries again, in a new directory
    await kube.client.patch(
        PulpBackupResource,
        "broken",
        {"spec": {"backup_storage_requirements": "6Gi"}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    await passes(kube, ns, "broken")
    again = (await backup(kube, ns, "broken"))["status"]["run"]
    assert again["result"] == "Running"
    assert again["directory"] != directory or again["startTime"]


async def test_the_api_server_rejects_bad_backups(kube: Kube, api_namespace: str) -> None:
    def backup_body(spec: dict[str, Any]) -> dict[str, Any]:
        return run_body("PulpBackup", None, "bad", **spec)

    async def refused(body: dict[str, Any]) -> str:
        body = {**body, "metadata": {**body["metadata"], "namespace": api_namespace}}
        cls = PulpBackupResource if body["kind"] == "PulpBackup" else PulpRestoreResource
        try:
            await kube.client.create(cls.from_dict(body))
        except Exception as exc:  # lightkube ApiError
            return str(exc)
        raise AssertionError("accepted")

    assert "keep applies only with schedule" in await refused(
        backup_body({"deployment_name": "p", "keep": 2})
    )
    assert "schedule must be a cron expression" in await refused(
        backup_body({"deployment_name": "p", "schedule": "every day"})
    )
    restore = run_body("PulpRestore", None, "bad", backup_pvc="claim")
    assert "backup_pvc and backup_dir" in await refused(restore)


async def test_external_database_version_picks_the_client(kube: Kube, api_namespace: str) -> None:
    ns = api_namespace
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ext-db", "namespace": ns},
            "stringData": {
                "POSTGRES_HOST": "db.example",
                "POSTGRES_PORT": "5432",
                "POSTGRES_USERNAME": "pulp",
                "POSTGRES_PASSWORD": "secret",
                "POSTGRES_DB_NAME": "pulp",
            },
        },
    )
    spec = {
        **PULP_SPEC,
        "database": {
            "external_db_secret": "ext-db",
            "postgres_image": "registry.example/library/postgres:15",
        },
    }
    await make_pulp(kube, ns, spec=spec)
    await make_backup(kube, ns, "ext", deployment_name="pulp")
    await passes(kube, ns, "ext", count=3)
    directory = (await backup(kube, ns, "ext"))["status"]["run"]["directory"]
    detect = await kube.get(Job, f"{directory}-db", ns)
    assert detect is not None
    (container,) = detect["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/library/postgres:15"
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "ext-db",
        "key": "POSTGRES_PASSWORD",
    }
    assert await kube.get(Job, directory, ns) is None  # no dump before the version is known

    await report_containers(kube, ns, f"{directory}-db", {"database-version": (0, "160004")})
    await finish_job(kube, ns, f"{directory}-db")
    await passes(kube, ns, "ext", count=2)
    run = (await backup(kube, ns, "ext"))["status"]["run"]
    assert run["databaseVersion"] == "16.4"
    assert run["databaseImage"] == "registry.example/library/postgres:16"
    job = await kube.get(Job, directory, ns)
    assert job is not None
    assert job["spec"]["template"]["spec"]["initContainers"][0]["image"] == (
        "registry.example/library/postgres:16"
    )
    storage = (await backup(kube, ns, "ext"))["status"]["storage"]
    assert storage.startswith("file storage copied")


async def test_scheduled_backups_run_once_per_slot(kube: Kube, api_namespace: str) -> None:
    ns = api_namespace
    await make_pulp(kube, ns)
    created = await make_backup(
        kube, ns, "hourly", deployment_name="pulp", schedule="0 * * * *", keep=2
    )
    born = build.parse_time(created["metadata"]["creationTimestamp"])
    clock = {"now": born + datetime.timedelta(seconds=5)}
    first_slot = born.replace(minute=0, second=0) + datetime.timedelta(hours=1)

    async def run(count: int = 1) -> float | None:
        return await passes(kube, ns, "hourly", count, clock=lambda: clock["now"])

    delay = await run()
    obj = await backup(kube, ns, "hourly")
    assert obj["status"]["phase"] == "Scheduled"
    assert obj["status"]["nextScheduleTime"] == build.utc(first_slot)
    assert cond(obj, "BackupComplete")["status"] == "Unknown"
    assert delay is not None
    assert 0 < delay <= 3601
    assert await run() == delay  # nothing due: no writes, same wake-up
    clock["now"] = first_slot + datetime.timedelta(seconds=30)

    directories = []
    for _slot in range(2):
        await run(3)
        obj = await backup(kube, ns, "hourly")
        directory = obj["status"]["run"]["directory"]
        # a new run inherits nothing of the previous one (a merge patch keeps what it omits)
        assert not {"completionTime", "sizeBytes", "databaseVersion"} & set(obj["status"]["run"])
        assert directory == build.run_directory("hourly", clock["now"].replace(second=0))
        job = await kube.get(Job, directory, ns)
        assert job is not None
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0][
            "env"]}  # fmt: skip
        assert env["KEEP"] == "2"
        directories.append(directory)
        await report_containers(
            kube,
            ns,
            directory,
            {
                "dump-database": (0, ""),
                "copy-files": (0, ""),
                "write-objects": (0, backup_report(directory, directories[-2:])),
            },
        )
        await finish_job(kube, ns, directory)
        await run()
        obj = await backup(kube, ns, "hourly")
        assert obj["status"]["run"]["result"] == "Succeeded"
        assert obj["status"]["phase"] == "Scheduled"
        assert obj["status"]["lastScheduleTime"] == build.utc(clock["now"].replace(second=0))
        before = dict(kube.writes)
        await run(2)  # the next slot is not due yet
        assert kube.writes == before
        clock["now"] += datetime.timedelta(hours=3)  # two slots missed: one run, not two

    obj = await backup(kube, ns, "hourly")
    assert [b["directory"] for b in obj["status"]["backups"]] == directories
    assert (await events(kube, ns, "hourly")).count("JobCreated") == 2


# --- restore -----------------------------------------------------------------------------------


async def restore_pass(kube: Kube, namespace: str, name: str, count: int = 1) -> float | None:
    delay = None
    for _ in range(count):
        delay = await Restores(kube).reconcile(namespace, name)
    return delay


async def restore(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.get(PulpRestoreResource, name, namespace)
    assert obj is not None
    return obj


async def objects_from_a_backup(kube: Kube, source_ns: str) -> dict[str, str]:
    """The object files a real backup of a Pulp in source_ns holds (made by the backup
    controller: its objects Secret, before the Job ran)."""
    await make_pulp(kube, source_ns)
    await make_backup(kube, source_ns, "b", deployment_name="pulp")
    await passes(kube, source_ns, "b", count=3)
    directory = (await backup(kube, source_ns, "b"))["status"]["run"]["directory"]
    secret = await kube.get(Secret, directory, source_ns)
    assert secret is not None
    files = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    info = build.parse_contents(files).info
    info["database_version"] = "15.8"
    info["sizes"] = {"database": 1, "files": 1, "total": 2}
    files["backup.json"] = json.dumps(info)
    return files


async def hand_over(kube: Kube, namespace: str, restore_name: str, files: dict[str, str]) -> None:
    """What the ReadBackup Job does: one Secret with the files."""
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": objects_secret_name(restore_name), "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
        },
    )


async def set_pulp_conditions(kube: Kube, namespace: str, name: str, **values: str) -> None:
    pulp = await kube.get(PulpResource, name, namespace)
    assert pulp is not None
    generation = pulp["metadata"]["generation"]
    conditions = [
        {
            "type": type_,
            "status": status,
            "reason": "Test",
            "message": f"{type_} {status}",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": generation,
        }
        for type_, status in values.items()
    ]
    await kube.patch_status(
        PulpResource, name, namespace, {"conditions": conditions, "observedGeneration": generation}
    )


async def test_a_restore_brings_the_pulp_back_step_by_step(kube: Kube, api_namespace: str) -> None:
    ns = api_namespace
    source = f"{ns}-src"[:63]
    await kube.client.create(Namespace(metadata=ObjectMeta(name=source)))
    files = await objects_from_a_backup(kube, source)
    saved = set(build.parse_contents(files).secrets)
    assert names.server_settings("pulp") not in saved  # generated from the rest
    original = {
        s.metadata.name: s.data
        async for s in kube.client.list(Secret, namespace=source)
        if s.metadata and s.metadata.name in saved
    }
    assert len(original) == 5
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "moved-backup", "namespace": ns},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    await make_restore(
        kube,
        ns,
        "r",
        backup_pvc="moved-backup",
        backup_dir="b-20260101-000000",
        pulp_spec={"image_version": "3.123.1"},
    )
    await restore_pass(kube, ns, "r")
    read = await kube.get(Job, "r-read", ns)
    assert read is not None
    (container,) = read["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "quay.io/pulp/pulp-minimal:3.123.1"
    assert await kube.get(Role, "r-read", ns) is not None
    assert (await restore(kube, ns, "r"))["status"]["step"] == "ReadBackup"

    await hand_over(kube, ns, "r", files)
    await report_containers(kube, ns, "r-read", {"read-backup": (0, "")})
    await finish_job(kube, ns, "r-read")
    await restore_pass(kube, ns, "r", count=3)  # ReadBackup, CheckTarget, RestoreObjects
    status = (await restore(kube, ns, "r"))["status"]
    assert [s["name"] for s in status["steps"]] == ["ReadBackup", "CheckTarget", "RestoreObjects"]
    assert status["deploymentName"] == "pulp"
    pulp = await kube.get(PulpResource, "pulp", ns)
    assert pulp is not None
    assert pulp["metadata"]["uid"] == status["pulpUID"]
    for component in ("api", "content", "worker", "web"):
        assert pulp["spec"][component]["replicas"] == 0
    assert pulp["spec"]["disable_migrations"] is True
    restored = {
        s.metadata.name: s.data
        async for s in kube.client.list(Secret, namespace=ns)
        if s.metadata and s.metadata.name in original
    }
    assert restored == original  # the Fernet key, admin password, database credentials...
    assert await kube.get(ConfigMap, "settings", ns) is not None

    await restore_pass(kube, ns, "r")  # waits for the database
    waiting = cond(await restore(kube, ns, "r"), "RestoreComplete")
    assert waiting["reason"] == "WaitingForDatabase"
    await set_pulp_conditions(kube, ns, "pulp", DatabaseReady="True", Ready="False")
    await make_claim(kube, ns, names.file_storage("pulp"))
    await restore_pass(kube, ns, "r")
    job = await kube.get(Job, "r-restore", ns)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["restore-database"]
    assert pod["initContainers"][0]["image"] == "postgres:15"
    assert [c["name"] for c in pod["containers"]] == ["restore-files"]

    before = dict(kube.writes)
    await restore_pass(kube, ns, "r", count=2)
    assert kube.writes == before

    await report_containers(
        kube, ns, "r-restore", {"restore-database": (0, ""), "restore-files": (0, "")}
    )
    await finish_job(kube, ns, "r-restore")
    await restore_pass(kube, ns, "r", count=2)  # data, StartPulp
    pulp = await kube.get(PulpResource, "pulp", ns)
    assert pulp is not None
    assert pulp["spec"]["api"]["replicas"] == 1  # upstream's rule without keep_replicas
    assert pulp["spec"]["web"]["replicas"] == 1
    assert not pulp["spec"].get("disable_migrations")
    await restore_pass(kube, ns, "r")
    assert cond(await restore(kube, ns, "r"), "RestoreComplete")["reason"] == "WaitingForPulp"

    await set_pulp_conditions(kube, ns, "pulp", DatabaseReady="True", Ready="True")
    await restore_pass(kube, ns, "r")
    obj = await restore(kube, ns, "r")
    assert obj["status"]["phase"] == "Succeeded"
    assert cond(obj, "RestoreComplete")["status"] == "True"
    assert await kube.get(Secret, objects_secret_name("r"), ns) is None
    assert await kube.get(ServiceAccount, "r-read", ns) is None
    assert await kube.get(Role, "r-read", ns) is None

    # finished: later passes do nothing, even when the Pulp changes or goes
    before = dict(kube.writes)
    await kube.client.delete(PulpResource, "pulp", namespace=ns)
    await restore_pass(kube, ns, "r", count=2)
    assert kube.writes == before
    reasons = await events(kube, ns, "r")
    for reason in (
        "RestoreStarted",
        "BackupRead",
        "ObjectsRestored",
        "PulpReady",
        "RestoreCompleted",
    ):
        assert reason in reasons
    await kube.client.delete(Namespace, source)


async def test_a_restore_never_overwrites_an_existing_pulp_unless_told(
    kube: Kube, api_namespace: str
) -> None:
    ns = api_namespace
    files = await objects_from_a_backup(kube, ns)  # the Pulp runs here already
    await make_claim(kube, ns, "claim")
    for name, extra in (("careful", {}), ("forced", {"allow_overwrite": True})):
        await make_restore(kube, ns, name, backup_pvc="claim", backup_dir="d", **extra)
        await restore_pass(kube, ns, name)
        await hand_over(kube, ns, name, files)
        await finish_job(kube, ns, f"{name}-read")
        await restore_pass(kube, ns, name, count=3)
    refused = await restore(kube, ns, "careful")
    failed = cond(refused, "RestoreComplete")
    assert failed["reason"] == "CheckTargetFailed"
    assert "Pulp pulp exists" in failed["message"]
    assert "spec.allow_overwrite" in failed["message"]
    assert refused["status"]["phase"] == "Failed"
    assert await restore_pass(kube, ns, "careful") is None

    forced = await restore(kube, ns, "forced")
    assert [s["name"] for s in forced["status"]["steps"]] == [
        "ReadBackup",
        "CheckTarget",
        "RestoreObjects",
    ]
    pulp = await kube.get(PulpResource, "pulp", ns)
    assert pulp is not None
    assert pulp["spec"]["api"]["replicas"] == 0  # stopped for the restore
    assert pulp["metadata"]["annotations"][build.RESTORED_FROM_ANNOTATION] == f"{ns}/forced"
