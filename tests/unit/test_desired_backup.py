"""Backup and restore builders: Jobs, objects, restore plans, and the scripts the Jobs run (run
here on temporary directories: the pruning, the object files, the tar round trip, the hand-over
of the objects to the API)."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from pulp_operator import names, runs, schedule
from pulp_operator.api.backup import PulpBackupSpec, PulpRestoreSpec
from pulp_operator.api.crd import PULP_BACKUP, PULP_RESTORE, crd
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired import backup as b

OWNER = {"apiVersion": "repo-manager.pulpproject.org/v1", "kind": "PulpBackup", "name": "nightly",
         "uid": "u-1", "controller": True, "blockOwnerDeletion": True}  # fmt: skip
MANAGED = PulpSpec.model_validate({"file_storage_storage_class": "standard"})
EXTERNAL = PulpSpec.model_validate(
    {"object_storage_s3_secret": "s3", "database": {"external_db_secret": "ext-db"}}
)


def parts(name: str = "nightly-20260102-030405", **kw: Any) -> b.JobParts:
    return b.JobParts(name=name, namespace="ns", labels=b.backup_labels("nightly"), owner=OWNER,
                      **kw)  # fmt: skip


def job(files: str | None = "pulp-file-storage", keep: int | None = None) -> dict[str, Any]:
    return b.backup_job(
        b.BackupJob(
            parts=parts(),
            directory="nightly-20260102-030405",
            series="nightly",
            claim="nightly-backup-claim",
            database_image="postgres:15",
            database_env=b.database_env("pulp", MANAGED),
            pulp_image="quay.io/pulp/pulp-minimal:3.123.1",
            objects_secret="nightly-20260102-030405",
            files_claim=files,
            keep=keep,
        )
    )


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    pod = manifest["spec"]["template"]["spec"]
    return [*(pod.get("initContainers") or []), *pod["containers"]]


# --- Jobs --------------------------------------------------------------------------------------


def test_backup_job_runs_the_steps_in_order_and_is_deterministic() -> None:
    manifest = job()
    assert manifest == job()
    assert [c["name"] for c in containers(manifest)] == [
        "dump-database",
        "copy-files",
        "write-objects",
    ]
    assert [b.STEPS[c["name"]] for c in containers(manifest)] == [
        "DumpDatabase",
        "CopyFiles",
        "WriteObjects",
    ]
    dump, files, finish = containers(manifest)
    assert dump["image"] == "postgres:15"
    assert files["image"] == finish["image"] == "quay.io/pulp/pulp-minimal:3.123.1"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 700
    assert manifest["metadata"]["ownerReferences"] == [OWNER]
    assert manifest["metadata"]["labels"][b.BACKUP_LABEL] == "nightly"
    assert names.OWNED_LABEL not in manifest["metadata"]["labels"]  # the Pulp's pruning ignores it
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["files"]["persistentVolumeClaim"] == {
        "claimName": "pulp-file-storage",
        "readOnly": True,
    }
    assert volumes["backup"]["persistentVolumeClaim"] == {"claimName": "nightly-backup-claim"}
    assert volumes["objects"]["secret"]["secretName"] == "nightly-20260102-030405"
    for container in containers(manifest):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["terminationMessagePolicy"] in ("File", "FallbackToLogsOnError")


def test_database_credentials_come_from_the_secret_only() -> None:
    for env in (b.database_env("pulp", MANAGED), b.database_env("pulp", EXTERNAL)):
        by_name = {e["name"]: e for e in env}
        assert "value" not in by_name["PGPASSWORD"]
        assert by_name["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] in (
            "password",
            "POSTGRES_PASSWORD",
        )
    manifest = job()
    text = json.dumps([c["command"] for c in containers(manifest)])
    assert "PGPASSWORD" not in text
    assert "--password" not in text
    managed = {e["name"]: e for e in b.database_env("pulp", MANAGED)}
    assert managed["PGHOST"]["value"] == names.database_service("pulp")
    assert managed["PGUSER"]["valueFrom"]["secretKeyRef"]["name"] == "pulp-postgres-configuration"
    external = {e["name"]: e for e in b.database_env("pulp", EXTERNAL)}
    assert external["PGHOST"]["valueFrom"]["secretKeyRef"] == {
        "name": "ext-db",
        "key": "POSTGRES_HOST",
    }
    assert external["PGSSLMODE"]["valueFrom"]["secretKeyRef"]["optional"] is True
    override = {e["name"]: e for e in b.database_env("pulp", MANAGED, "other-db")}
    assert override["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "other-db"


def test_object_storage_backup_has_no_file_copy_and_keep_reaches_the_job() -> None:
    manifest = job(files=None, keep=3)
    assert [c["name"] for c in containers(manifest)] == ["dump-database", "write-objects"]
    env = {e["name"]: e.get("value") for e in containers(manifest)[-1]["env"]}
    assert env["KEEP"] == "3"
    assert env["SERIES"] == "nightly"
    assert "KEEP" not in {e["name"] for e in containers(job())[-1]["env"]}


def test_node_affinity_adds_the_attached_node_to_every_term() -> None:
    assert b.node_affinity(None, None) is None
    user = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
                ]
            }
        },
        "podAntiAffinity": {"x": 1},
    }
    out = b.node_affinity(user, "node-a")
    assert out is not None
    terms = out["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]},
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]},
            ]
        }
    ]
    assert out["podAntiAffinity"] == {"x": 1}
    affinity: dict[str, Any] = user["nodeAffinity"]  # type: ignore[assignment]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(required["nodeSelectorTerms"][0]["matchExpressions"]) == 1  # input left alone


def test_backup_claim_without_class_uses_the_default_class() -> None:
    claim = b.backup_claim("nightly", "ns", "5Gi", None)
    assert "storageClassName" not in claim["spec"]  # upstream wrote "" (no default class)
    assert claim["metadata"]["name"] == "nightly-backup-claim"
    assert "ownerReferences" not in claim["metadata"]  # outlives the PulpBackup
    assert b.backup_claim("nightly", "ns", "5Gi", "fast")["spec"]["storageClassName"] == "fast"


def test_restore_rbac_allows_only_creating_secrets() -> None:
    sa, role, binding = b.restore_rbac(parts("r-read"))
    assert sa["kind"] == "ServiceAccount"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "r-read", "namespace": "ns"}]
    read = b.read_job(parts("r-read", service_account="r-read"), "claim", "dir", "img:1", "objs")
    pod = read["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "r-read"
    assert pod["automountServiceAccountToken"] is True
    assert pod["volumes"][0]["persistentVolumeClaim"]["readOnly"] is True


def test_restore_job_restores_the_database_then_the_files() -> None:
    job_ = b.restore_job(
        b.RestoreJob(
            parts=parts("r-restore", backoff_limit=0),
            claim="claim",
            directory="dir",
            database_image="postgres:16",
            database_env=b.database_env("pulp", MANAGED),
            pulp_image="quay.io/pulp/pulp-minimal:3.123.1",
            files_claim="pulp-file-storage",
        )
    )
    assert [c["name"] for c in containers(job_)] == ["restore-database", "restore-files"]
    assert job_["spec"]["backoffLimit"] == 0
    assert "pg_restore" in containers(job_)[0]["command"][-1]


# --- images and versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "major", "expected"),
    [
        ("postgres:15", 16, "postgres:16"),
        ("docker.io/library/postgres:15.4-bookworm", 17, "docker.io/library/postgres:17"),
        ("registry.example:5000/db/postgres:15", 14, "registry.example:5000/db/postgres:14"),
        ("registry.example:5000/db/postgres", 14, "registry.example:5000/db/postgres:14"),
        ("postgres@sha256:abc", 16, "postgres:16"),
        ("postgres", 16, "postgres:16"),
    ],
)
def test_client_image_keeps_the_repository(image: str, major: int, expected: str) -> None:
    assert b.client_image(image, major) == expected


def test_versions() -> None:
    assert b.server_major("150004") == 15
    assert b.server_major("170002\n") == 17
    assert b.server_major("90624") is None
    assert b.server_major("16.2") == 16
    assert b.server_major("17beta1") == 17
    assert b.server_major("") is None
    assert b.server_major("garbage") is None
    assert b.image_major("postgres:15") == 15
    assert b.image_major("postgres:16.2-bookworm") == 16
    assert b.image_major("postgres:latest") is None


# --- the objects of a backup ---------------------------------------------------------------------


def secret(name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "uid": "x", "resourceVersion": "9", **meta},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def pulp_cr(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "repo-manager.pulpproject.org/v1",
        "kind": "Pulp",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "p-1",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "a": "b"},
        },
        "spec": spec,
        "status": {"conditions": []},
    }


def sample_objects(name: str = "pulp") -> dict[str, str]:
    spec = {"file_storage_storage_class": "standard", "custom_pulp_settings": "settings"}
    parsed = PulpSpec.model_validate(spec)
    roles = b.secret_roles(name, parsed, {})
    secrets = {
        role: secret(
            secret_name,
            {"password": f"pw-{role}", "host": names.database_service(name)}
            if role == b.POSTGRES_ROLE
            else {"k": role},
            labels=names.labels(name, "secrets"),
            annotations={"kubectl.kubernetes.io/last-applied-configuration": "secret!"},
        )
        for role, secret_name in roles.items()
    }
    cms = {
        "custom_pulp_settings": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "uid": "c"},
            "data": {"content_origin": '"http://x"'},
        }
    }
    meta = b.BackupMeta(
        pulp=name,
        namespace="ns",
        directory="nightly-20260102-030405",
        created="2026-01-02T03:04:05Z",
        image="quay.io/pulp/pulp-minimal:3.123.1",
        storage_type="File",
        files=True,
        external_database=False,
        database_image="postgres:15",
    )
    return b.backup_objects(meta, pulp_cr(name, spec), secrets, cms)


def test_backup_objects_hold_every_secret_and_drop_what_must_not_travel() -> None:
    files = sample_objects()
    assert set(files) == set(b.OBJECT_FILES)
    assert files == sample_objects()  # deterministic
    secrets = list(yaml.safe_load_all(files["secrets.yaml"]))
    assert sorted(s["metadata"]["name"] for s in secrets) == sorted(
        [
            "pulp-admin-password",
            "pulp-secret-key",
            "pulp-db-fields-encryption",
            "pulp-container-auth",
            "pulp-postgres-configuration",
        ]
    )
    for item in secrets:
        assert set(item["metadata"]) <= {"name", "labels", "annotations"}
        assert "last-applied" not in json.dumps(item)
    (pulp,) = yaml.safe_load_all(files["pulp.yaml"])
    assert pulp["metadata"] == {"name": "pulp", "annotations": {"a": "b"}}
    assert "status" not in pulp
    info = json.loads(files["backup.json"])
    assert info["secrets"]["db_fields_encryption_secret"] == "pulp-db-fields-encryption"
    assert info["config_maps"] == {"custom_pulp_settings": "settings"}
    assert info["files"] is True


def test_secret_roles_cover_what_the_pulp_uses() -> None:
    spec = PulpSpec.model_validate(
        {
            "object_storage_s3_secret": "s3",
            "database": {"external_db_secret": "ext"},
            "ldap": {"config": "ldap", "ca": "ldap-ca"},
            "sso_secret": "sso",
            "signing_secret": "sign",
            "signing_scripts": "scripts",
            "admin_password_secret": "my-admin",
            "cache": {"enabled": True, "external_cache_secret": "redis"},
        }
    )
    roles = b.secret_roles("pulp", spec, {"pulp_secret_key": "key-override"})
    assert roles["admin_password_secret"] == "my-admin"
    assert roles["pulp_secret_key"] == "key-override"
    assert roles["external_db_secret"] == "ext"
    assert b.POSTGRES_ROLE not in roles
    for value in ("s3", "ldap", "ldap-ca", "sso", "sign", "scripts", "redis"):
        assert value in roles.values()


def test_parse_contents_round_trip_and_errors() -> None:
    files = sample_objects()
    contents = b.parse_contents(files)
    assert contents.pulp_name == "pulp"
    assert contents.has_files
    assert "pulp-db-fields-encryption" in contents.secrets
    with pytest.raises(ValueError, match=r"backup\.json"):
        b.parse_contents({**files, "backup.json": "not json"})
    with pytest.raises(ValueError, match=r"pulp\.yaml must hold exactly one Pulp"):
        b.parse_contents({**files, "pulp.yaml": ""})
    docs = [
        d
        for d in yaml.safe_load_all(files["secrets.yaml"])
        if d["metadata"]["name"] != "pulp-secret-key"
    ]
    with pytest.raises(ValueError, match=r"secrets\.yaml lacks Secret pulp-secret-key"):
        b.parse_contents({**files, "secrets.yaml": yaml.safe_dump_all(docs)})
    with pytest.raises(ValueError, match=r"configmaps\.yaml holds something else"):
        b.parse_contents({**files, "configmaps.yaml": files["secrets.yaml"]})


def generated_for(name: str) -> dict[str, b.GeneratedName]:
    labels = names.labels(name, "secrets")
    return {
        "admin_password_secret": b.GeneratedName(names.admin_password(name), labels, False),
        "pulp_secret_key": b.GeneratedName(names.secret_key(name), labels, False),
        b.FERNET_ROLE: b.GeneratedName(names.db_fields_encryption(name), labels, True),
        "container_token_secret": b.GeneratedName(names.container_auth(name), labels, True),
        b.POSTGRES_ROLE: b.GeneratedName(names.postgres_configuration(name), labels, True),
    }


def test_secret_plan_renames_generated_secrets_for_another_pulp_name() -> None:
    contents = b.parse_contents(sample_objects("pulp"))
    same = {p.manifest["metadata"]["name"] for p in b.secret_plan(
        contents, "pulp", "other-ns", generated_for("pulp"))}  # fmt: skip
    assert same == set(contents.secrets)
    plans = {p.role: p for p in b.secret_plan(contents, "copy", "ns2", generated_for("copy"))}
    fernet = plans[b.FERNET_ROLE]
    assert fernet.data_bound
    assert fernet.manifest["metadata"]["name"] == "copy-db-fields-encryption"
    assert fernet.manifest["metadata"]["namespace"] == "ns2"
    assert fernet.manifest["metadata"]["labels"][names.OWNED_LABEL] == "copy"
    assert fernet.manifest["metadata"]["annotations"] == {names.KEEP_ANNOTATION: "true"}
    assert fernet.manifest["data"] == contents.secrets["pulp-db-fields-encryption"]["data"]
    postgres = plans[b.POSTGRES_ROLE].manifest
    assert base64.b64decode(postgres["data"]["host"]).decode() == names.database_service("copy")
    assert not plans["admin_password_secret"].data_bound
    assert "annotations" not in plans["admin_password_secret"].manifest["metadata"]


def test_restored_specs() -> None:
    backed_up = {
        "api": {"replicas": 3, "hpa": {"enabled": True, "max_replicas": 5}},
        "worker": {"replicas": 2},
        "web": {"replicas": 2},
        "file_storage_storage_class": "standard",
    }
    quiet = b.quiesced_spec(backed_up)
    for component in ("api", "content", "worker", "web"):
        assert quiet[component]["replicas"] == 0
    assert quiet["api"]["hpa"] == {"enabled": False, "max_replicas": 5}
    assert quiet["disable_migrations"] is True
    assert backed_up["api"]["replicas"] == 3  # type: ignore[index]  # input untouched
    PulpSpec.model_validate(quiet)
    final = b.final_spec(backed_up, keep_replicas=False)
    assert final["api"]["replicas"] == 1
    assert final["worker"]["replicas"] == 1
    assert final["web"]["replicas"] == 2
    assert final["api"]["hpa"]["enabled"] is True
    assert b.final_spec(backed_up, keep_replicas=True) == backed_up
    merged = b.merge_patch(backed_up, {"api": {"replicas": None}, "nodeport_port": 30241})
    assert merged["api"] == {"hpa": {"enabled": True, "max_replicas": 5}}
    assert merged["nodeport_port"] == 30241


# --- the models ----------------------------------------------------------------------------------


def test_models_reject_bad_input_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="keep applies only with schedule"):
        PulpBackupSpec.model_validate({"deployment_name": "pulp", "keep": 3})
    with pytest.raises(ValidationError, match="five fields"):
        PulpBackupSpec.model_validate({"deployment_name": "pulp", "schedule": "* * * * * *"})
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        PulpBackupSpec.model_validate({"deployment_name": "pulp", "schedule": "0 0 30 2 *"})
    with pytest.raises(ValidationError, match="backup_pvc and backup_dir"):
        PulpRestoreSpec.model_validate({"backup_pvc": "claim"})
    spec = PulpBackupSpec.model_validate(
        {"deployment_name": "pulp", "schedule": "@daily", "keep": 2}
    )
    assert spec.keep == 2
    restore = PulpRestoreSpec.model_validate({"backup_name": "b"})
    assert restore.deployment_name is None  # the backed-up Pulp's name, not upstream's "pulp"
    assert restore.allow_overwrite is False


def test_crds_have_printer_columns_and_the_rules() -> None:
    for kind, condition in ((PULP_BACKUP, "BackupComplete"), (PULP_RESTORE, "RestoreComplete")):
        version = crd(kind)["spec"]["versions"][0]
        columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
        assert condition in columns["Complete"]
        assert columns["Phase"] == ".status.phase"
        assert columns["Step"] == ".status.step"
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert spec["x-kubernetes-validations"]
    backup_spec = crd(PULP_BACKUP)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    rules = {r["message"]: r["rule"] for r in backup_spec["x-kubernetes-validations"]}
    assert "self.schedule.matches(" in rules[schedule.SHAPE_MESSAGE]


def test_status_patch_clears_what_a_new_run_lacks() -> None:
    old = {"run": {"directory": "a", "databaseImage": "postgres:15", "steps": [1, 2]}, "x": 1}
    new = {"run": {"directory": "b", "steps": []}}
    patch = runs.merge_diff(old, new)
    assert patch == {"x": None, "run": {"directory": "b", "databaseImage": None, "steps": []}}
    assert runs.merge_diff(new, new) == {}


def test_schedule() -> None:
    utc = datetime.UTC
    at = datetime.datetime(2026, 1, 1, 10, 5, tzinfo=utc)
    assert schedule.latest_due("*/5 * * * *", at - datetime.timedelta(minutes=5), at) == at
    assert schedule.latest_due("*/5 * * * *", at, at + datetime.timedelta(minutes=4)) is None
    long_ago = at - datetime.timedelta(days=3)
    assert schedule.latest_due("0 3 * * *", long_ago, at) == datetime.datetime(
        2026, 1, 1, 3, 0, tzinfo=utc
    )  # missed runs collapse into the latest
    assert schedule.next_after("@hourly", at) == datetime.datetime(2026, 1, 1, 11, 0, tzinfo=utc)


# --- the scripts, for real -------------------------------------------------------------------


def run_python(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_run(root: Path, name: str, complete: bool, payload: int = 10) -> Path:
    here = root / name
    here.mkdir(parents=True)
    (here / "database.dump").write_bytes(b"d" * payload)
    if complete:
        (here / "backup.json").write_text("{}")
    return here


def test_write_objects_marks_the_backup_complete_and_prunes(tmp_path: Path) -> None:
    root, objects = tmp_path / "backups", tmp_path / "objects"
    objects.mkdir()
    for name, text in sample_objects().items():
        (objects / name).write_text(text)
    make_run(root, "nightly-20260101-030000", complete=True)
    make_run(root, "nightly-20260101-040000", complete=True)
    make_run(root, "nightly-20260101-050000", complete=False)  # a failed run
    make_run(root, "other-20260101-030000", complete=True)  # another PulpBackup's
    current = make_run(root, "nightly-20260102-030405", complete=False, payload=1234)
    (current / "files.tar").write_bytes(b"f" * 100)
    (current / "database.version").write_text("15.4\n")
    log = tmp_path / "termination-log"
    result = run_python(
        b.WRITE_OBJECTS,
        {
            "BACKUP_ROOT": str(root),
            "BACKUP_DIRECTORY": current.name,
            "OBJECTS_DIR": str(objects),
            "SERIES": "nightly",
            "KEEP": "2",
            "TERMINATION_LOG": str(log),
        },
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in root.iterdir()) == [
        "nightly-20260101-040000",
        "nightly-20260102-030405",
        "other-20260101-030000",
    ]
    meta = json.loads((current / "backup.json").read_text())
    assert meta["database_version"] == "15.4"
    assert meta["sizes"]["database"] == 1234
    assert meta["sizes"]["files"] == 100
    assert meta["sizes"]["total"] > 1334
    assert oct((current / "secrets.yaml").stat().st_mode & 0o777) == "0o600"
    assert (current / "secrets.yaml").read_text() == sample_objects()["secrets.yaml"]
    assert not list(current.glob("*.partial"))
    report = json.loads(log.read_text())
    assert report["sizes"]["total"] == sum(p.stat().st_size for p in current.iterdir())
    assert report["backups"][-1]["sizeBytes"] == report["sizes"]["total"]
    assert [x["directory"] for x in report["backups"]] == [
        "nightly-20260101-040000",
        "nightly-20260102-030405",
    ]
    assert sorted(report["removed"]) == ["nightly-20260101-030000", "nightly-20260101-050000"]


def test_write_objects_refuses_a_run_without_its_dump(tmp_path: Path) -> None:
    root, objects = tmp_path / "backups", tmp_path / "objects"
    objects.mkdir()
    for name, text in sample_objects().items():
        (objects / name).write_text(text)
    (root / "nightly-20260102-030405").mkdir(parents=True)
    result = run_python(
        b.WRITE_OBJECTS,
        {
            "BACKUP_ROOT": str(root),
            "BACKUP_DIRECTORY": "nightly-20260102-030405",
            "OBJECTS_DIR": str(objects),
            "SERIES": "nightly",
            "TERMINATION_LOG": str(tmp_path / "log"),
        },
    )
    assert result.returncode != 0
    assert "database.dump is missing" in result.stderr
    assert not (root / "nightly-20260102-030405" / "backup.json").exists()


def as_pulp_user(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a script as uid/gid 700, as the Jobs do (this test runs as root: setpriv, from
    util-linux, drops to 700)."""
    command = ["/bin/sh", "-c", script]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=700", "--regid=700", "--clear-groups", *command]
    return subprocess.run(command, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, check=False)  # fmt: skip


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory uid 700 can reach (pytest's lies under a root-only one)."""
    with tempfile.TemporaryDirectory(prefix="pulp-backup-test-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def test_file_storage_round_trip_through_tar(open_tmp: Path) -> None:
    """As uid 700, into a volume whose root belongs to root with mode 0777 (hostPath volumes,
    some provisioners): the restore must not try to change the root's metadata."""
    tmp_path = open_tmp
    source, root, target = tmp_path / "pulp", tmp_path / "backups", tmp_path / "restored"
    (source / "media" / "artifact" / "ab").mkdir(parents=True)
    (source / "media" / "artifact" / "ab" / "cdef").write_bytes(os.urandom(4096))
    (source / "tmp").mkdir()
    (source / "tmp" / "upload-in-flight").write_text("partial")
    (source / "assets").mkdir()
    for path in [source, *source.rglob("*")]:
        os.chown(path, 700, 700)
    target.mkdir()
    target.chmod(0o777)  # root's, writable by all: as the node's hostPath provisioner makes it
    root.mkdir()
    os.chown(root, 700, 700)
    env = {"BACKUP_ROOT": str(root), "BACKUP_DIRECTORY": "run", "FILES_ROOT": str(source)}
    copy = as_pulp_user(b.COPY_FILES, env)
    assert copy.returncode == 0, copy.stderr
    assert (root / "run" / "files.tar").is_file()
    assert not (root / "run" / "files.tar.partial").exists()
    env["FILES_ROOT"] = str(target)
    restore = as_pulp_user(b.RESTORE_FILES, env)
    assert restore.returncode == 0, restore.stderr
    artifact = "media/artifact/ab/cdef"
    assert (target / artifact).read_bytes() == (source / artifact).read_bytes()
    assert (target / "tmp").is_dir()
    assert not (target / "tmp" / "upload-in-flight").exists()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[dict[str, Any]]]]:
    """An HTTPS server standing in for the API server: records the POSTed bodies."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    account = tmp_path / "account"
    account.mkdir()
    (account / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (account / "token").write_text("t0ken\n")
    keyfile = tmp_path / "key.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(
                {"path": self.path, "auth": self.headers["Authorization"], "body": body}
            )
            self.send_response(201 if len(received) == 1 else 409)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(account / "ca.crt", keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], account, received
    finally:
        server.shutdown()


def test_read_backup_hands_the_objects_over_in_one_secret(
    tmp_path: Path, api_server: tuple[int, Path, list[dict[str, Any]]]
) -> None:
    port, account, received = api_server
    root = tmp_path / "backups"
    here = root / "nightly-20260102-030405"
    here.mkdir(parents=True)
    for name, text in sample_objects().items():
        (here / name).write_text(text)
    (here / "database.dump").write_bytes(b"dump")
    metadata = {"name": "r-backup-objects", "namespace": "ns", "labels": {"a": "b"}}
    env = {
        "BACKUP_ROOT": str(root),
        "BACKUP_DIRECTORY": here.name,
        "OBJECTS_METADATA": json.dumps(metadata),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(port),
        "SERVICE_ACCOUNT_DIR": str(account),
        "TERMINATION_LOG": str(tmp_path / "log"),
    }
    for _ in range(2):  # the second attempt gets 409 AlreadyExists: still a success
        result = run_python(b.READ_BACKUP, env)
        assert result.returncode == 0, result.stderr
    request = received[0]
    assert request["path"] == "/api/v1/namespaces/ns/secrets"
    assert request["auth"] == "Bearer t0ken"
    assert request["body"]["metadata"] == metadata
    decoded = {k: base64.b64decode(v).decode() for k, v in request["body"]["data"].items()}
    assert b.parse_contents(decoded).pulp_name == "pulp"
    assert "database.dump" not in decoded

    (here / "backup.json").unlink()
    result = run_python(b.READ_BACKUP, env)
    assert result.returncode == 1
    assert "not a complete backup" in (tmp_path / "log").read_text()
    assert len(received) == 2
