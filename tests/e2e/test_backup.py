"""Backup and restore of a real Pulp on the real node, with real content.

One Pulp (managed PostgreSQL, PVC file storage) in backup-src gets an uploaded file and an
on-demand repository whose remote, served from this host, wants a password (stored encrypted
with the Fernet key). Then, in order:

1. a PulpBackup of it completes (pg_dump of the managed database's own image, the files, the
   objects);
2. the Pulp, its PVCs, its Secrets and its settings are deleted, and a PulpRestore in the same
   namespace brings it back: Ready, the uploaded file and the file fetched before the backup with
   the same bytes (the latter without asking the remote again), the same admin password, and a
   file never fetched before comes from the remote with the decrypted password;
3. the backup volume, bound to a claim in a new namespace backup-dst, is restored there into a
   Pulp on an external PostgreSQL (its version detected), with the same checks;
4. that Pulp is backed up every minute with keep 1: two runs, the first removed by the second.

Durations and sizes go to the test log (`-s` shows them).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    ConfigMap,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)

from pulp_operator import names
from pulp_operator.kube import PulpBackupResource, PulpResource, PulpRestoreResource

from .common import FIGURES, deploy_pulp, pulp_cli, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NAME = "pulp"
SOURCE = "backup-src"
TARGET = "backup-dst"
SOURCE_PORT = 30240
TARGET_PORT = 30241
MOVED_PV = "backup-dst-moved-backup"
REMOTE_USER = "fetcher"
API = "repo-manager.pulpproject.org/v1"


class Remote:
    """An HTTP server on this host serving files only with the right basic-auth password."""

    def __init__(self, host: str, directory: Path, password: str) -> None:
        self.requests: list[str] = []
        self.password = password
        expected = "Basic " + base64.b64encode(f"{REMOTE_USER}:{password}".encode()).decode()
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="remote"')
                    self.end_headers()
                    return
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            (host, 0), functools.partial(Handler, directory=str(directory))
        )
        self.url = f"http://{host}:{self.server.server_address[1]}/PULP_MANIFEST"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fetched(self, name: str) -> int:
        return self.requests.count(f"/{name}")


@dataclass
class Env:
    node: RealNode
    client: Client
    home: Path
    remote: Remote
    files: dict[str, bytes]
    password: str = ""
    admin_secret: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def pulp(self, port: int, *args: str) -> Any:
        return pulp_cli(f"http://127.0.0.1:{port}", self.password, self.home, *args)

    def get(self, cls: Any, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self.client.get(cls, name, namespace=namespace).to_dict()  # type: ignore[no-any-return]
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def download(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/pulp/content/{path}", timeout=60) as r:
        data: bytes = r.read()
        return data


def wait_condition(
    env: Env, cls: Any, name: str, namespace: str, type_: str, timeout: float
) -> dict[str, Any]:
    def check() -> Any:
        obj = env.get(cls, name, namespace)
        cond = condition(obj, type_)
        if cond.get("status") == "True" or cond.get("reason", "").endswith("Failed"):
            return obj
        return None

    try:
        result: dict[str, Any] = wait(f"{type_} of {name}", check, timeout, 3)
    except AssertionError as exc:
        status = (env.get(cls, name, namespace) or {}).get("status")
        raise AssertionError(f"{exc}; status: {json.dumps(status)[:3000]}") from None
    cond = condition(result, type_)
    assert cond["status"] == "True", f"{name}: {cond['reason']}: {cond['message']}"
    return result


def seconds(status: dict[str, Any]) -> float:
    def parse(text: str) -> datetime.datetime:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")

    return (parse(status["completionTime"]) - parse(status["startTime"])).total_seconds()


@pytest.fixture(scope="module")
def env(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    served = tmp_path_factory.mktemp("remote")
    files = {f"f{i}.bin": secrets.token_bytes(40_000 + i) for i in range(1, 4)}
    lines = []
    for file_name, data in files.items():
        (served / file_name).write_bytes(data)
        lines.append(f"{file_name},{hashlib.sha256(data).hexdigest()},{len(data)}")
    (served / "PULP_MANIFEST").write_text("\n".join(lines) + "\n")
    remote = Remote(real_node.node.node_ip, served, secrets.token_urlsafe(12))
    real_node.namespace(SOURCE)
    real_node.namespace(TARGET)
    try:
        with real_node.operator([SOURCE, TARGET], log_name="test_backup"):
            started = time.monotonic()
            deploy_pulp(real_node.client, NAME, SOURCE, SOURCE_PORT)
            env = Env(real_node, real_node.client, tmp_path_factory.mktemp("cli"), remote, files)
            wait_condition(env, PulpResource, NAME, SOURCE, "Ready", 900)
            secret = env.get(Secret, names.admin_password(NAME), SOURCE)
            assert secret is not None
            env.admin_secret = secret["data"]
            env.password = base64.b64decode(secret["data"]["password"]).decode()
            print(f"\nPulp ready in {time.monotonic() - started:.0f}s")
            yield env
            print(f"\nbackup/restore figures: {json.dumps(env.figures, indent=1)}")
            FIGURES["backup and restore"] = env.figures
    finally:
        remote.server.shutdown()
        real_node.delete_namespaces(SOURCE, TARGET)
        with contextlib.suppress(ApiError):
            real_node.client.delete(PersistentVolume, MOVED_PV)


def test_content_uploaded_and_synced_on_demand(env: Env, tmp_path: Path) -> None:
    payload = secrets.token_bytes(300_000)
    (tmp_path / "blob.bin").write_bytes(payload)
    env.files["blob.bin"] = payload
    pulp = functools.partial(env.pulp, SOURCE_PORT)
    pulp("file", "repository", "create", "--name", "upload")
    pulp("file", "content", "upload", "--file", str(tmp_path / "blob.bin"), "--relative-path",
         "blob.bin", "--repository", "file:file:upload")  # fmt: skip
    publication = pulp("file", "publication", "create", "--repository", "upload")
    pulp("file", "distribution", "create", "--name", "upload", "--base-path", "upload",
         "--publication", publication["pulp_href"])  # fmt: skip
    pulp("file", "remote", "create", "--name", "lazy", "--url", env.remote.url, "--policy",
         "on_demand", "--username", REMOTE_USER, "--password", env.remote.password)  # fmt: skip
    pulp("file", "repository", "create", "--name", "lazy", "--remote", "lazy")
    pulp("file", "repository", "sync", "--name", "lazy")
    publication = pulp("file", "publication", "create", "--repository", "lazy")
    pulp("file", "distribution", "create", "--name", "lazy", "--base-path", "lazy",
         "--publication", publication["pulp_href"])  # fmt: skip
    assert download(SOURCE_PORT, "upload/blob.bin") == payload
    assert download(SOURCE_PORT, "lazy/f1.bin") == env.files["f1.bin"]
    assert env.remote.fetched("f1.bin") == 1
    assert env.remote.fetched("f2.bin") == 0


def test_backup_completes(env: Env) -> None:
    started = time.monotonic()
    env.client.create(
        PulpBackupResource.from_dict(
            {
                "apiVersion": API,
                "kind": "PulpBackup",
                "metadata": {"name": "full", "namespace": SOURCE},
                "spec": {
                    "deployment_name": NAME,
                    "backup_storage_class": "standard",
                    "backup_storage_requirements": "2Gi",
                },
            }
        )
    )
    obj = wait_condition(env, PulpBackupResource, "full", SOURCE, "BackupComplete", 600)
    elapsed = time.monotonic() - started
    status = obj["status"]
    run = status["run"]
    assert [s["name"] for s in run["steps"]] == [
        "Prepare",
        "DumpDatabase",
        "CopyFiles",
        "WriteObjects",
    ]
    assert run["databaseImage"] == "postgres:15"
    assert run["databaseVersion"].startswith("15.")
    assert run["databaseBytes"] > 100_000
    assert run["filesBytes"] > 300_000 + 40_000  # the upload and the file fetched on demand
    assert status["backupDirectory"] == run["directory"]
    assert status["storage"].startswith("file storage copied")
    env.figures["backup"] = {
        "seconds (status)": seconds(run),
        "seconds (wall, CR created to BackupComplete)": round(elapsed),
        "total bytes": run["sizeBytes"],
        "database dump bytes": run["databaseBytes"],
        "files.tar bytes": run["filesBytes"],
    }


def _delete_pulp_and_its_data(env: Env) -> None:
    client = env.client
    client.delete(PulpResource, NAME, namespace=SOURCE)
    wait("the Pulp deleted", lambda: env.get(PulpResource, NAME, SOURCE) is None, 120, 2)
    wait(
        "the Pulp's pods gone",
        lambda: not list(client.list(Pod, namespace=SOURCE, labels={names.PULP_CR_LABEL: NAME})),
        300,
        2,
    )
    for claim in (names.file_storage(NAME), names.database_claim(NAME)):
        client.delete(PersistentVolumeClaim, claim, namespace=SOURCE)
    for secret in client.list(Secret, namespace=SOURCE):
        if secret.metadata and secret.metadata.name:
            client.delete(Secret, secret.metadata.name, namespace=SOURCE)
    client.delete(ConfigMap, f"{NAME}-settings", namespace=SOURCE)
    for claim in (names.file_storage(NAME), names.database_claim(NAME)):
        wait(f"{claim} gone", lambda c=claim: env.get(PersistentVolumeClaim, c, SOURCE) is None,  # type: ignore[misc]
             120, 2)  # fmt: skip


def _check_restored(env: Env, port: int, never_fetched: str) -> None:
    """Same content, same admin password, encrypted fields readable."""
    assert download(port, "upload/blob.bin") == env.files["blob.bin"]
    assert download(port, "lazy/f1.bin") == env.files["f1.bin"]
    assert env.remote.fetched("f1.bin") == 1  # served from the restored file storage
    before = env.remote.fetched(never_fetched)
    # the content app asks the remote with the password it decrypts with the restored key
    assert download(port, f"lazy/{never_fetched}") == env.files[never_fetched]
    assert env.remote.fetched(never_fetched) == before + 1
    status = env.pulp(port, "status")  # the admin password of before works
    assert status["database_connection"]["connected"] is True
    remote = env.pulp(port, "file", "remote", "show", "--name", "lazy")
    hidden = {f["name"]: f["is_set"] for f in remote.get("hidden_fields") or []}
    assert hidden.get("password") is True


def test_restore_in_the_same_namespace_after_deletion(env: Env) -> None:
    _delete_pulp_and_its_data(env)
    started = time.monotonic()
    env.client.create(
        PulpRestoreResource.from_dict(
            {
                "apiVersion": API,
                "kind": "PulpRestore",
                "metadata": {"name": "back", "namespace": SOURCE},
                "spec": {"backup_name": "full"},
            }
        )
    )
    obj = wait_condition(env, PulpRestoreResource, "back", SOURCE, "RestoreComplete", 900)
    elapsed = time.monotonic() - started
    assert [s["name"] for s in obj["status"]["steps"]] == [
        "ReadBackup",
        "CheckTarget",
        "RestoreObjects",
        "RestoreDatabase",
        "RestoreFiles",
        "StartPulp",
        "WaitReady",
    ]
    pulp = env.get(PulpResource, NAME, SOURCE)
    assert condition(pulp, "Ready")["status"] == "True"
    secret = env.get(Secret, names.admin_password(NAME), SOURCE)
    assert secret is not None
    assert secret["data"] == env.admin_secret
    _check_restored(env, SOURCE_PORT, "f2.bin")
    env.figures["restore (same namespace)"] = {
        "seconds (status)": seconds(obj["status"]),
        "seconds (wall, CR created to RestoreComplete)": round(elapsed),
    }


def _external_database(env: Env) -> None:
    """A PostgreSQL the operator does not manage, in backup-dst."""
    client = env.client
    password = secrets.token_urlsafe(16)
    manifests: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ext-db", "namespace": TARGET},
            "stringData": {
                "POSTGRES_HOST": f"external-db.{TARGET}.svc",
                "POSTGRES_PORT": "5432",
                "POSTGRES_USERNAME": "pulpext",
                "POSTGRES_PASSWORD": password,
                "POSTGRES_DB_NAME": "pulpext",
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "external-db", "namespace": TARGET},
            "spec": {
                "selector": {"matchLabels": {"app": "external-db"}},
                "template": {
                    "metadata": {"labels": {"app": "external-db"}},
                    "spec": {
                        "securityContext": {"runAsUser": 999, "fsGroup": 999},
                        "containers": [
                            {
                                "name": "postgres",
                                "image": "postgres:15",
                                "imagePullPolicy": "IfNotPresent",
                                "env": [
                                    {"name": "POSTGRES_USER", "value": "pulpext"},
                                    {"name": "POSTGRES_DB", "value": "pulpext"},
                                    {"name": "PGDATA", "value": "/data/pgdata"},
                                    {
                                        "name": "POSTGRES_PASSWORD",
                                        "valueFrom": {
                                            "secretKeyRef": {
                                                "name": "ext-db",
                                                "key": "POSTGRES_PASSWORD",
                                            }
                                        },
                                    },
                                ],
                                "ports": [{"containerPort": 5432}],
                                "readinessProbe": {
                                    "exec": {"command": ["pg_isready", "-h", "127.0.0.1"]},
                                    "periodSeconds": 3,
                                },
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "external-db", "namespace": TARGET},
            "spec": {"selector": {"app": "external-db"}, "ports": [{"port": 5432}]},
        },
    ]
    for doc in manifests:
        cls = {"Secret": Secret, "Deployment": Deployment, "Service": Service}[doc["kind"]]
        client.create(cls.from_dict(doc))  # type: ignore[attr-defined]

    def ready() -> bool:
        dep = client.get(Deployment, "external-db", namespace=TARGET)
        return bool(dep.status and dep.status.readyReplicas)

    wait("the external database", ready, 180, 2)


def _move_the_backup_volume(env: Env) -> str:
    """Bind the backup's volume to a claim of backup-dst, as after moving a backup disk (or an
    NFS share) to another namespace or cluster."""
    claim = env.client.get(PersistentVolumeClaim, "full-backup-claim", namespace=SOURCE)
    assert claim.spec is not None
    assert claim.spec.volumeName
    source = env.client.get(PersistentVolume, claim.spec.volumeName).to_dict()
    env.client.create(  # type: ignore[call-overload]
        PersistentVolume.from_dict(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": MOVED_PV},
                "spec": {
                    "capacity": source["spec"]["capacity"],
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": source["spec"]["hostPath"],
                    "nodeAffinity": source["spec"].get("nodeAffinity"),
                    "claimRef": {"namespace": TARGET, "name": "moved-backup"},
                },
            }
        )
    )
    env.client.create(  # type: ignore[call-overload]
        PersistentVolumeClaim.from_dict(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "moved-backup", "namespace": TARGET},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": MOVED_PV,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
    )
    backup = env.get(PulpBackupResource, "full", SOURCE)
    assert backup is not None
    directory: str = backup["status"]["backupDirectory"]
    return directory


def test_restore_into_a_new_namespace_on_an_external_database(env: Env) -> None:
    _external_database(env)
    directory = _move_the_backup_volume(env)
    started = time.monotonic()
    env.client.create(
        PulpRestoreResource.from_dict(
            {
                "apiVersion": API,
                "kind": "PulpRestore",
                "metadata": {"name": "copy", "namespace": TARGET},
                "spec": {
                    "backup_pvc": "moved-backup",
                    "backup_dir": directory,
                    "pulp_spec": {
                        "image_version": "3.123.1",
                        "nodeport_port": TARGET_PORT,
                        "database": {"external_db_secret": "ext-db"},
                    },
                },
            }
        )
    )
    obj = wait_condition(env, PulpRestoreResource, "copy", TARGET, "RestoreComplete", 900)
    elapsed = time.monotonic() - started
    steps = [s["name"] for s in obj["status"]["steps"]]
    assert "DetectDatabaseVersion" in steps
    pulp = env.get(PulpResource, NAME, TARGET)
    assert pulp is not None
    assert pulp["spec"]["database"]["external_db_secret"] == "ext-db"
    assert env.get(Secret, names.admin_password(NAME), TARGET)["data"] == env.admin_secret  # type: ignore[index]
    _check_restored(env, TARGET_PORT, "f3.bin")
    env.figures["restore (new namespace, external database)"] = {
        "seconds (status)": seconds(obj["status"]),
        "seconds (wall)": round(elapsed),
    }


def test_scheduled_backups_of_an_external_database_keep_the_newest(env: Env) -> None:
    env.client.create(
        PulpBackupResource.from_dict(
            {
                "apiVersion": API,
                "kind": "PulpBackup",
                "metadata": {"name": "minutely", "namespace": TARGET},
                "spec": {
                    "deployment_name": NAME,
                    "schedule": "* * * * *",
                    "keep": 1,
                    "backup_storage_class": "standard",
                    "backup_storage_requirements": "2Gi",
                },
            }
        )
    )
    seen: set[str] = set()

    def two_runs() -> Any:
        obj = env.get(PulpBackupResource, "minutely", TARGET) or {}
        status = obj.get("status") or {}
        run = status.get("run") or {}
        if condition(obj, "BackupComplete").get("reason", "").endswith("Failed"):
            return status  # `wait` takes exceptions for "not yet": fail after it
        if run.get("result") == "Succeeded":
            seen.add(run["directory"])
        return len(seen) >= 2 and status

    status = wait("two scheduled backups", two_runs, 420, 3)
    assert status["run"]["result"] == "Succeeded", status["conditions"]
    run = status["run"]
    assert [s["name"] for s in run["steps"]][:2] == ["Prepare", "DetectDatabaseVersion"]
    assert run["databaseImage"] == "postgres:15"
    assert run["databaseVersion"].startswith("15.")
    assert status["backups"] == [{"directory": run["directory"], "sizeBytes": run["sizeBytes"]}]
    assert status["backupDirectory"] == run["directory"]
    assert sorted(seen)[-1] == run["directory"]
    assert status["nextScheduleTime"] > run["startTime"]
    env.figures["scheduled backup (external database)"] = {
        "seconds (status)": seconds(run),
        "total bytes": run["sizeBytes"],
    }
