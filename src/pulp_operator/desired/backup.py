"""What backups and restores are made of: the backup claim, the Jobs that do the work, the objects
a backup keeps and how a restore puts them back.

Pure and deterministic like the other builders: the controllers (backups.py, restores.py) observe
and decide, these functions only build. The work itself runs in Jobs, never through exec: a dump
or restore of the database with a PostgreSQL client of the server's major version, a tar of the
file storage, and a small Python step that writes the objects and prunes old runs. Database
credentials reach the containers only as environment variables from their Secret (libpq reads
PGPASSWORD), never on a command line.

A backup directory holds:

    backup.json       what was backed up, sizes, database version; written last: the marker
                      that the backup is complete
    database.dump     pg_dump --format=custom
    database.version  server_version of the dumped server
    files.tar         the file storage (/var/lib/pulp without tmp/), for PVC storage only
    pulp.yaml         the Pulp CR
    secrets.yaml      every Secret the Pulp uses (kubectl apply -f works on it)
    configmaps.yaml   the custom settings (and trusted CA) ConfigMaps
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .. import names
from ..api.pulp import PulpSpec
from .common import PULP_UID, container_security_context, env_value, pod_security_context
from .inputs import Manifest

FORMAT = 1
BACKUP_ROOT = "/backups"
FILES_ROOT = "/var/lib/pulp"
OBJECTS_DIR = "/etc/pulp-backup"
OBJECT_FILES = ("pulp.yaml", "secrets.yaml", "configmaps.yaml", "backup.json")

BACKUP_LABEL = "repo-manager.pulpproject.org/pulpbackup"
"""On every object made for a PulpBackup: its name. Watches route events by it."""
RESTORE_LABEL = "repo-manager.pulpproject.org/pulprestore"
"""On every object made for a PulpRestore: its name."""
RESTORED_FROM_ANNOTATION = "repo-manager.pulpproject.org/restored-from"
"""On a Pulp a restore created or took over: namespace/name of the PulpRestore."""

_DROPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",  # may hold the Secret data in clear
    "repo-manager.pulpproject.org/applied-hash",
)

# Which Secrets a Pulp uses, by the spec field that names them (or the role of a generated one).
GENERATED_ROLES: dict[str, Any] = {
    "admin_password_secret": names.admin_password,
    "pulp_secret_key": names.secret_key,
    "db_fields_encryption_secret": names.db_fields_encryption,
    "container_token_secret": names.container_auth,
    "postgres_configuration_secret": names.postgres_configuration,
}
FERNET_ROLE = "db_fields_encryption_secret"
POSTGRES_ROLE = "postgres_configuration_secret"


def utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def run_directory(backup: str, moment: datetime.datetime) -> str:
    """The dated directory (and Job name) of a run: <backup>-YYYYMMDD-HHMMSS (UTC)."""
    return f"{backup}-{moment.astimezone(datetime.UTC):%Y%m%d-%H%M%S}"


def backup_labels(backup: str, component: str = "backup") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"pulp-{component}",
        "app.kubernetes.io/instance": f"pulp-{component}-{backup}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": names.PART_OF,
        "app.kubernetes.io/managed-by": names.MANAGER,
        BACKUP_LABEL: backup,
    }


def restore_labels(restore: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "pulp-restore",
        "app.kubernetes.io/instance": f"pulp-restore-{restore}",
        "app.kubernetes.io/component": "restore",
        "app.kubernetes.io/part-of": names.PART_OF,
        "app.kubernetes.io/managed-by": names.MANAGER,
        RESTORE_LABEL: restore,
    }


def files_claim(pulp: str, spec: PulpSpec) -> str | None:
    """The file storage claim of a Pulp (None with object storage)."""
    if spec.file_storage_storage_class:
        return names.file_storage(pulp)
    return spec.pvc


def default_claim(backup: str) -> str:
    return f"{backup}-backup-claim"


def backup_claim(backup: str, namespace: str, size: str, storage_class: str | None) -> Manifest:
    """The backup PVC the operator creates (without ownerReference: it outlives the PulpBackup)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": default_claim(backup),
            "namespace": namespace,
            "labels": backup_labels(backup, "backup-storage"),
        },
        "spec": spec,
    }


# --- database access -------------------------------------------------------------------------


def _ref(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def database_secret(pulp: str, spec: PulpSpec, override: str | None = None) -> str:
    if spec.database.external_db_secret:
        return spec.database.external_db_secret
    return override or names.postgres_configuration(pulp)


def database_env(pulp: str, spec: PulpSpec, override: str | None = None) -> list[dict[str, Any]]:
    """libpq environment for the Pulp's database; the password only as a Secret reference."""
    secret = database_secret(pulp, spec, override)
    if spec.database.external_db_secret:
        return [
            _ref("PGHOST", secret, "POSTGRES_HOST"),
            _ref("PGPORT", secret, "POSTGRES_PORT"),
            _ref("PGUSER", secret, "POSTGRES_USERNAME"),
            _ref("PGPASSWORD", secret, "POSTGRES_PASSWORD"),
            _ref("PGDATABASE", secret, "POSTGRES_DB_NAME"),
            _ref("PGSSLMODE", secret, "POSTGRES_SSLMODE", optional=True),
            env_value("PGCONNECT_TIMEOUT", "10"),
        ]
    return [
        env_value("PGHOST", names.database_service(pulp)),
        env_value("PGPORT", str(spec.database.postgres_port)),
        _ref("PGUSER", secret, "username"),
        _ref("PGPASSWORD", secret, "password"),
        _ref("PGDATABASE", secret, "database"),
        env_value("PGSSLMODE", spec.database.postgres_ssl_mode),
        env_value("PGCONNECT_TIMEOUT", "10"),
    ]


_IMAGE_TAG = re.compile(r"^(?P<repo>.+?)(:(?P<tag>[\w][\w.-]*))?(@(?P<digest>.+))?$")


def client_image(server_image: str, major: int) -> str:
    """The image of the same repository as server_image for PostgreSQL `major`."""
    match = _IMAGE_TAG.match(server_image)
    repo = match.group("repo") if match else server_image
    if match and match.group("tag") is None and ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}:{major}"


def image_major(image: str) -> int | None:
    """The PostgreSQL major version an image tag such as postgres:15 or :16.2-bookworm names."""
    match = _IMAGE_TAG.match(image)
    tag = match.group("tag") if match else None
    found = re.match(r"^(\d+)", tag or "")
    return int(found.group(1)) if found else None


def server_major(version: str) -> int | None:
    """Major version from server_version_num (150004) or server_version (15.4, 16beta1)."""
    text = version.strip()
    if text.isdigit() and len(text) >= 5:
        number = int(text)
        return number // 10000 if number >= 100000 else None
    found = re.match(r"^(\d+)", text)
    return int(found.group(1)) if found and int(found.group(1)) >= 10 else None


# --- scripts the Jobs run ----------------------------------------------------------------------

WAIT_DATABASE = """\
tries=0
until pg_isready --quiet --timeout=5; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "the database at $PGHOST:$PGPORT did not answer within 5 minutes" >&2
    exit 1
  fi
  sleep 5
done
"""

DETECT_VERSION = (
    "set -eu\n"
    + WAIT_DATABASE
    + """\
version=$(psql --no-psqlrc --tuples-only --no-align --quiet --command 'SHOW server_version_num')
echo "database server version $version"
printf '%s' "$version" > /dev/termination-log
"""
)

DUMP_DATABASE = (
    "set -eu\n"
    + WAIT_DATABASE
    + """\
dir="$BACKUP_ROOT/$BACKUP_DIRECTORY"
mkdir -p "$dir"
psql --no-psqlrc --tuples-only --no-align --quiet --command 'SHOW server_version' \
  > "$dir/database.version.partial"
echo "dumping database $PGDATABASE (server $(cat "$dir/database.version.partial"))\
 with $(pg_dump --version)"
pg_dump --format=custom --no-password --file="$dir/database.dump.partial"
mv "$dir/database.dump.partial" "$dir/database.dump"
mv "$dir/database.version.partial" "$dir/database.version"
echo "database dumped: $(wc -c < "$dir/database.dump") bytes"
"""
)

COPY_FILES = """\
set -eu
dir="$BACKUP_ROOT/$BACKUP_DIRECTORY"
mkdir -p "$dir"
cd "$FILES_ROOT"
# The entries of the volume, not the volume's root itself (its owner and mode belong to the
# volume: a restore could not set them). tmp/ holds uploads in flight only. tar exits 1 when a
# file changed while it was read: artifacts never change, so such a file is an upload too.
status=0
find . -mindepth 1 -maxdepth 1 ! -name tmp ! -name .gunicorn -print0 \
  | tar --create --file="$dir/files.tar.partial" --null --files-from=- \
      --warning=no-file-changed --warning=no-file-ignored \
  || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi
mv "$dir/files.tar.partial" "$dir/files.tar"
echo "file storage copied: $(wc -c < "$dir/files.tar") bytes"
"""

WRITE_OBJECTS = r"""
import json, os, re, shutil, sys
from pathlib import Path

root = Path(os.environ["BACKUP_ROOT"])
run = os.environ["BACKUP_DIRECTORY"]
here = root / run
objects = Path(os.environ["OBJECTS_DIR"])
series = re.compile(re.escape(os.environ["SERIES"]) + r"-\d{8}-\d{6}")
keep = int(os.environ.get("KEEP") or 0)
report_to = Path(os.environ.get("TERMINATION_LOG", "/dev/termination-log"))

def put(name, text, mode):
    partial = here / (name + ".partial")
    partial.write_text(text)
    partial.chmod(mode)
    os.replace(partial, here / name)

def size(path):
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

here.mkdir(parents=True, exist_ok=True)
for name in ("pulp.yaml", "configmaps.yaml", "secrets.yaml"):
    put(name, (objects / name).read_text(), 0o600 if name == "secrets.yaml" else 0o640)
meta = json.loads((objects / "backup.json").read_text())
version = here / "database.version"
meta["database_version"] = version.read_text().strip() if version.is_file() else None
if not (here / "database.dump").is_file():
    sys.exit("database.dump is missing: the database step did not finish")
if meta.get("files") and not (here / "files.tar").is_file():
    sys.exit("files.tar is missing: the file storage step did not finish")
meta["sizes"] = {
    "database": size(here / "database.dump"),
    "files": size(here / "files.tar") if (here / "files.tar").is_file() else 0,
}
meta["sizes"]["total"] = size(here) + len(json.dumps(meta))
put("backup.json", json.dumps(meta, indent=2, sort_keys=True) + "\n", 0o640)

ours = sorted(p for p in root.iterdir() if p.is_dir() and series.fullmatch(p.name))
complete = [p for p in ours if (p / "backup.json").is_file()]
removed = []
if keep:
    for old in complete[:-keep]:
        shutil.rmtree(old)
        removed.append(old.name)
    complete = complete[-keep:]
for stale in ours:
    if stale.name < run and stale.is_dir() and not (stale / "backup.json").is_file():
        shutil.rmtree(stale)  # left by a failed run
        removed.append(stale.name)
for name in removed:
    print("removed old backup", name)
backups = [{"directory": p.name, "sizeBytes": size(p)} for p in complete]
sizes = {**meta["sizes"], "total": size(here)}  # with backup.json, as it stays
report = {"directory": run, "sizes": sizes, "databaseVersion": meta["database_version"],
          "backups": backups, "removed": removed}
text = json.dumps(report, sort_keys=True)
while len(text) > 4000 and report["backups"]:
    report["backups"] = report["backups"][1:]
    text = json.dumps(report, sort_keys=True)
print("backup complete:", run, sizes)
try:
    report_to.write_text(text)
except OSError as exc:
    print("cannot write the termination message:", exc)
"""

READ_BACKUP = r"""
import base64, json, os, ssl, sys, urllib.error, urllib.request
from pathlib import Path

here = Path(os.environ["BACKUP_ROOT"]) / os.environ["BACKUP_DIRECTORY"]
report_to = Path(os.environ.get("TERMINATION_LOG", "/dev/termination-log"))

def fail(message):
    print(message, file=sys.stderr)
    try:
        report_to.write_text(message)
    except OSError:
        pass
    sys.exit(1)

if not (here / "backup.json").is_file():
    fail(f"{here.name} is not a complete backup: it has no backup.json (a backup writes it last)")
missing = [n for n in ("database.dump", "pulp.yaml", "secrets.yaml") if not (here / n).is_file()]
if missing:
    fail(f"{here.name} lacks {', '.join(missing)}")
data = {}
for name in ("backup.json", "pulp.yaml", "secrets.yaml", "configmaps.yaml"):
    path = here / name
    if path.is_file():
        data[name] = base64.b64encode(path.read_bytes()).decode()
meta = json.loads(os.environ["OBJECTS_METADATA"])
body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": data}
account = Path(
    os.environ.get("SERVICE_ACCOUNT_DIR") or "/var/run/secrets/kubernetes.io/serviceaccount"
)
host = os.environ["KUBERNETES_SERVICE_HOST"]
if ":" in host:
    host = f"[{host}]"
url = (f"https://{host}:{os.environ['KUBERNETES_SERVICE_PORT']}"
       f"/api/v1/namespaces/{meta['namespace']}/secrets")
request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
    "Authorization": "Bearer " + (account / "token").read_text().strip(),
    "Content-Type": "application/json",
})
context = ssl.create_default_context(cafile=str(account / "ca.crt"))
try:
    urllib.request.urlopen(request, context=context, timeout=30)
except urllib.error.HTTPError as exc:
    if exc.code != 409:  # 409: an earlier attempt created it
        fail(f"cannot create Secret {meta['name']}: HTTP {exc.code} {exc.read()[:300]!r}")
print(f"read {here.name}: {', '.join(sorted(data))}")
"""

RESTORE_DATABASE = (
    "set -eu\n"
    + WAIT_DATABASE
    + """\
dump="$BACKUP_ROOT/$BACKUP_DIRECTORY/database.dump"
echo "restoring database $PGDATABASE from $BACKUP_DIRECTORY with $(pg_restore --version)"
pg_restore --clean --if-exists --no-owner --no-acl --exit-on-error --single-transaction \
  --no-password --dbname="$PGDATABASE" "$dump"
echo "database restored"
"""
)

RESTORE_FILES = """\
set -eu
archive="$BACKUP_ROOT/$BACKUP_DIRECTORY/files.tar"
tar --extract --file="$archive" --directory="$FILES_ROOT" --no-same-owner
mkdir -p "$FILES_ROOT/media" "$FILES_ROOT/assets" "$FILES_ROOT/tmp"
echo "file storage restored"
"""

# Container name -> the step it does (status and Events speak of steps).
STEPS = {
    "database-version": "DetectDatabaseVersion",
    "dump-database": "DumpDatabase",
    "copy-files": "CopyFiles",
    "write-objects": "WriteObjects",
    "read-backup": "ReadBackup",
    "restore-database": "RestoreDatabase",
    "restore-files": "RestoreFiles",
}


# --- Jobs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobParts:
    """What every backup or restore Job shares."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    owner: Mapping[str, Any]
    affinity: Mapping[str, Any] | None = None
    service_account: str | None = None
    backoff_limit: int = 1


def _container(
    name: str, image: str, command: list[str], env: list[dict[str, Any]], mounts: list[Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _job(
    parts: JobParts,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> Manifest:
    *init, main = containers
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": parts.service_account is not None,
        "securityContext": pod_security_context(PULP_UID),
        "terminationGracePeriodSeconds": 30,
    }
    if parts.service_account:
        pod["serviceAccountName"] = parts.service_account
    if init:
        pod["initContainers"] = init
    pod["containers"] = [main]
    if volumes:
        pod["volumes"] = volumes
    if parts.affinity:
        pod["affinity"] = dict(parts.affinity)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": parts.name,
            "namespace": parts.namespace,
            "labels": dict(parts.labels),
            "ownerReferences": [dict(parts.owner)],
        },
        "spec": {
            "backoffLimit": parts.backoff_limit,
            "template": {"metadata": {"labels": dict(parts.labels)}, "spec": pod},
        },
    }


def _claim_volume(name: str, claim: str, read_only: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": source}


def _mount(name: str, path: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def node_affinity(affinity: Mapping[str, Any] | None, node: str | None) -> dict[str, Any] | None:
    """The user's affinity, plus a required term for `node` (a ReadWriteOnce volume is attached
    there); the node term is added to each of the user's terms."""
    if node is None:
        return dict(affinity) if affinity else None
    out: dict[str, Any] = json.loads(json.dumps(dict(affinity or {})))
    expression = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    required = out.setdefault("nodeAffinity", {}).setdefault(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    )
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*(term.get("matchExpressions") or []), expression]}
        for term in terms
    ]
    return out


def version_job(parts: JobParts, image: str, db_env: list[dict[str, Any]]) -> Manifest:
    """A Job that writes the database server's server_version_num as its termination message."""
    container = _container("database-version", image, ["/bin/sh", "-c", DETECT_VERSION], db_env, [])
    container["terminationMessagePolicy"] = "File"
    return _job(parts, [container], [])


@dataclass(frozen=True)
class BackupJob:
    parts: JobParts
    directory: str
    series: str
    """The PulpBackup name: the prefix of its run directories (what pruning looks at)."""
    claim: str
    database_image: str
    database_env: list[dict[str, Any]]
    pulp_image: str
    objects_secret: str
    files_claim: str | None = None
    keep: int | None = None


def backup_job(job: BackupJob) -> Manifest:
    where = [
        env_value("BACKUP_ROOT", BACKUP_ROOT),
        env_value("BACKUP_DIRECTORY", job.directory),
    ]
    backup_mount = _mount("backup", BACKUP_ROOT)
    containers = [
        _container(
            "dump-database",
            job.database_image,
            ["/bin/sh", "-c", DUMP_DATABASE],
            [*where, *job.database_env],
            [backup_mount],
        )
    ]
    volumes = [
        _claim_volume("backup", job.claim),
        {
            "name": "objects",
            "secret": {"secretName": job.objects_secret, "defaultMode": 0o440},
        },
    ]
    if job.files_claim:
        containers.append(
            _container(
                "copy-files",
                job.pulp_image,
                ["/bin/sh", "-c", COPY_FILES],
                [*where, env_value("FILES_ROOT", FILES_ROOT)],
                [backup_mount, _mount("files", FILES_ROOT, read_only=True)],
            )
        )
        volumes.append(_claim_volume("files", job.files_claim, read_only=True))
    finish_env = [
        *where,
        env_value("OBJECTS_DIR", OBJECTS_DIR),
        env_value("SERIES", job.series),
    ]
    if job.keep:
        finish_env.append(env_value("KEEP", str(job.keep)))
    finish = _container(
        "write-objects",
        job.pulp_image,
        ["python3", "-c", WRITE_OBJECTS],
        finish_env,
        [backup_mount, _mount("objects", OBJECTS_DIR, read_only=True)],
    )
    finish["terminationMessagePolicy"] = "File"
    containers.append(finish)
    return _job(job.parts, containers, volumes)


def objects_secret(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any],
    files: Mapping[str, str],
) -> Manifest:
    """The Secret that carries the files of `backup_objects` into the backup Job."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [dict(owner)],
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(files.items())},
    }


# --- the objects of a backup -------------------------------------------------------------------


def _clean_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta["name"]}
    labels = dict(sorted((meta.get("labels") or {}).items()))
    annotations = {
        k: v
        for k, v in sorted((meta.get("annotations") or {}).items())
        if k not in _DROPPED_ANNOTATIONS
    }
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    return out


def clean_pulp(pulp: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": pulp["apiVersion"],
        "kind": pulp["kind"],
        "metadata": _clean_metadata(pulp["metadata"]),
        "spec": pulp.get("spec") or {},
    }


def clean_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _clean_metadata(secret["metadata"]),
        "type": secret.get("type") or "Opaque",
        "data": dict(sorted((secret.get("data") or {}).items())),
    }


def clean_config_map(cm: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _clean_metadata(cm["metadata"]),
        "data": dict(sorted((cm.get("data") or {}).items())),
    }
    if cm.get("binaryData"):
        out["binaryData"] = dict(sorted(cm["binaryData"].items()))
    return out


def _yaml_docs(docs: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        "---\n" + yaml.safe_dump(dict(d), sort_keys=True, default_flow_style=False, width=100)
        for d in docs
    )


def secret_roles(pulp: str, spec: PulpSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    """role (spec field) -> name of every Secret a restore of this Pulp needs."""
    roles: dict[str, str] = {
        "admin_password_secret": overrides.get("admin_password_secret")
        or spec.admin_password_secret
        or names.admin_password(pulp),
        "pulp_secret_key": overrides.get("pulp_secret_key")
        or spec.pulp_secret_key
        or names.secret_key(pulp),
        "db_fields_encryption_secret": spec.db_fields_encryption_secret
        or names.db_fields_encryption(pulp),
        "container_token_secret": spec.container_token_secret or names.container_auth(pulp),
    }
    if spec.database.external_db_secret:
        roles["external_db_secret"] = spec.database.external_db_secret
    else:
        roles[POSTGRES_ROLE] = overrides.get(POSTGRES_ROLE) or names.postgres_configuration(pulp)
    optional = {
        "external_cache_secret": spec.cache.external_cache_secret
        if spec.cache is not None and spec.cache.enabled
        else None,
        "object_storage_s3_secret": spec.object_storage_s3_secret,
        "object_storage_azure_secret": spec.object_storage_azure_secret,
        "object_storage_gcs_secret": spec.object_storage_gcs_secret,
        "ldap.config": spec.ldap.config if spec.ldap else None,
        "ldap.ca": spec.ldap.ca if spec.ldap else None,
        "sso_secret": spec.sso_secret,
        "signing_secret": spec.signing_secret,
        "signing_scripts": spec.signing_scripts,
        "ingress_tls_secret": spec.ingress_tls_secret,
        "route_tls_secret": spec.route_tls_secret,
    }
    roles.update({role: name for role, name in optional.items() if name})
    return roles


def config_map_roles(spec: PulpSpec) -> dict[str, str]:
    roles: dict[str, str] = {}
    if spec.custom_pulp_settings:
        roles["custom_pulp_settings"] = spec.custom_pulp_settings
    if spec.mount_trusted_ca_configmap_key:
        roles["mount_trusted_ca_configmap_key"] = spec.mount_trusted_ca_configmap_key.split(":")[0]
    return roles


@dataclass(frozen=True)
class BackupMeta:
    pulp: str
    namespace: str
    directory: str
    created: str
    image: str
    storage_type: str
    files: bool
    external_database: bool
    database_image: str


def backup_objects(
    meta: BackupMeta,
    pulp: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, Any]],
    config_maps: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """The files a backup keeps beside the dump: the Pulp CR, its Secrets and ConfigMaps (by
    role), and backup.json. `secrets`/`config_maps` map a role to the live object."""
    info = {
        "format": FORMAT,
        "pulp": {"name": meta.pulp, "namespace": meta.namespace},
        "directory": meta.directory,
        "created": meta.created,
        "image": meta.image,
        "storage_type": meta.storage_type,
        "files": meta.files,
        "database": {"external": meta.external_database, "image": meta.database_image},
        "secrets": {role: obj["metadata"]["name"] for role, obj in sorted(secrets.items())},
        "config_maps": {role: obj["metadata"]["name"] for role, obj in sorted(config_maps.items())},
    }
    unique_secrets = {obj["metadata"]["name"]: obj for obj in secrets.values()}
    unique_cms = {obj["metadata"]["name"]: obj for obj in config_maps.values()}
    return {
        "backup.json": json.dumps(info, indent=2, sort_keys=True) + "\n",
        "pulp.yaml": _yaml_docs([clean_pulp(pulp)]),
        "secrets.yaml": _yaml_docs([clean_secret(s) for _, s in sorted(unique_secrets.items())]),
        "configmaps.yaml": _yaml_docs([clean_config_map(c) for _, c in sorted(unique_cms.items())]),
    }


# --- restore -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupContents:
    """What ReadBackup brought out of a backup directory."""

    info: dict[str, Any]
    pulp: dict[str, Any]
    secrets: dict[str, dict[str, Any]]
    """By name."""
    config_maps: dict[str, dict[str, Any]]
    """By name."""

    @property
    def pulp_name(self) -> str:
        return str(self.info["pulp"]["name"])

    @property
    def has_files(self) -> bool:
        return bool(self.info.get("files"))

    @property
    def database_version(self) -> str | None:
        value = self.info.get("database_version")
        return str(value) if value else None


def parse_contents(files: Mapping[str, str]) -> BackupContents:
    """The files of a backup directory (text) as objects; ValueError naming the file at fault."""
    try:
        info = json.loads(files["backup.json"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"backup.json is missing or not JSON: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"backup.json is not of backup format {FORMAT}")

    def docs(name: str, kind: str) -> list[dict[str, Any]]:
        try:
            loaded = [d for d in yaml.safe_load_all(files.get(name, "")) if d]
        except yaml.YAMLError as exc:
            raise ValueError(f"{name} is not YAML: {exc}") from exc
        for doc in loaded:
            if not isinstance(doc, dict) or doc.get("kind") != kind or "metadata" not in doc:
                raise ValueError(f"{name} holds something else than a {kind}")
        return loaded

    pulps = docs("pulp.yaml", "Pulp")
    if len(pulps) != 1:
        raise ValueError("pulp.yaml must hold exactly one Pulp")
    pulp = pulps[0]
    secrets = {d["metadata"]["name"]: d for d in docs("secrets.yaml", "Secret")}
    config_maps = {d["metadata"]["name"]: d for d in docs("configmaps.yaml", "ConfigMap")}
    for role, name in (info.get("secrets") or {}).items():
        if name not in secrets:
            raise ValueError(f"secrets.yaml lacks Secret {name} ({role})")
    return BackupContents(info, pulp, secrets, config_maps)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return json.loads(json.dumps(patch))
    out: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_COMPONENTS = ("api", "content", "worker", "web")


def quiesced_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec a Pulp has while its database and files are restored: no pods but the database
    (no replicas, autoscalers off) and no migrations."""
    out: dict[str, Any] = json.loads(json.dumps(dict(spec)))
    for component in _COMPONENTS:
        part = out.setdefault(component, {})
        part["replicas"] = 0
        if isinstance(part.get("hpa"), dict):
            part["hpa"] = {**part["hpa"], "enabled": False}
    out["disable_migrations"] = True
    return out


def final_spec(spec: Mapping[str, Any], keep_replicas: bool) -> dict[str, Any]:
    """The restored Pulp's spec once the data is back: the backed-up spec, with api, content and
    worker at 1 replica unless keep_replicas (upstream's rule)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(spec)))
    if not keep_replicas:
        for component in ("api", "content", "worker"):
            part = out.get(component)
            if isinstance(part, dict) and "replicas" in part:
                part["replicas"] = 1
    return out


def restored_pulp(
    contents: BackupContents,
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    restore: str,
) -> Manifest:
    meta = contents.pulp.get("metadata") or {}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    metadata["annotations"] = {
        **dict(meta.get("annotations") or {}),
        RESTORED_FROM_ANNOTATION: f"{namespace}/{restore}",
    }
    return {
        "apiVersion": contents.pulp["apiVersion"],
        "kind": "Pulp",
        "metadata": metadata,
        "spec": dict(spec),
    }


@dataclass(frozen=True)
class SecretPlan:
    role: str
    """The spec field (or generated role) the Secret plays; "" for a Secret no role names."""
    manifest: Manifest
    data_bound: bool
    """The restored data cannot be read without this very Secret (the Fernet key)."""


@dataclass(frozen=True)
class GeneratedName:
    name: str
    labels: dict[str, str]
    keep: bool


def secret_plan(
    contents: BackupContents,
    name: str,
    namespace: str,
    generated: Mapping[str, GeneratedName],
) -> list[SecretPlan]:
    """The Secrets to put back. A Secret under a generated name of the backed-up Pulp gets the
    generated name of the restored one (`generated`, by role) and its labels; others keep their
    names, labels and annotations."""
    old = contents.pulp_name
    by_name = {n: r for r, n in (contents.info.get("secrets") or {}).items()}
    plans = []
    for secret_name in sorted(contents.secrets):
        source = contents.secrets[secret_name]
        role = by_name.get(secret_name, "")
        manifest: Manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": source.get("type") or "Opaque",
            "metadata": {**_clean_metadata(source["metadata"]), "namespace": namespace},
            "data": dict(source.get("data") or {}),
        }
        rename = GENERATED_ROLES.get(role)
        target = generated.get(role)
        if rename is not None and secret_name == rename(old) and target is not None:
            manifest["metadata"]["name"] = target.name
            manifest["metadata"]["labels"] = dict(target.labels)
            annotations = dict(manifest["metadata"].pop("annotations", {}) or {})
            annotations.pop(names.KEEP_ANNOTATION, None)
            if target.keep:
                annotations[names.KEEP_ANNOTATION] = "true"
            if annotations:
                manifest["metadata"]["annotations"] = annotations
            if role == POSTGRES_ROLE and name != old and "host" in manifest["data"]:
                host = names.database_service(name)
                manifest["data"]["host"] = base64.b64encode(host.encode()).decode()
        plans.append(SecretPlan(role, manifest, role == FERNET_ROLE))
    return plans


def config_map_plan(contents: BackupContents, namespace: str) -> list[Manifest]:
    out = []
    for cm_name in sorted(contents.config_maps):
        source = contents.config_maps[cm_name]
        manifest: Manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**_clean_metadata(source["metadata"]), "namespace": namespace},
            "data": dict(source.get("data") or {}),
        }
        if source.get("binaryData"):
            manifest["binaryData"] = dict(source["binaryData"])
        out.append(manifest)
    return out


def restore_rbac(parts: JobParts) -> list[Manifest]:
    """ServiceAccount, Role and RoleBinding with which ReadBackup creates the one Secret that
    carries the backup's objects to the operator (the only way for a pod to hand files to it
    without exec or logs). The Role allows creating Secrets (create cannot be limited to a
    name); the three are deleted when the restore ends."""
    meta = {
        "name": parts.name,
        "namespace": parts.namespace,
        "labels": dict(parts.labels),
        "ownerReferences": [dict(parts.owner)],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(meta),
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(meta),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": parts.name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": parts.name, "namespace": parts.namespace}
            ],
        },
    ]


def read_job(
    parts: JobParts, claim: str, directory: str, image: str, objects_secret_name: str
) -> Manifest:
    metadata = {
        "name": objects_secret_name,
        "namespace": parts.namespace,
        "labels": dict(parts.labels),
        "ownerReferences": [dict(parts.owner)],
    }
    env = [
        env_value("BACKUP_ROOT", BACKUP_ROOT),
        env_value("BACKUP_DIRECTORY", directory),
        env_value("OBJECTS_METADATA", json.dumps(metadata, sort_keys=True)),
    ]
    container = _container(
        "read-backup",
        image,
        ["python3", "-c", READ_BACKUP],
        env,
        [_mount("backup", BACKUP_ROOT, read_only=True)],
    )
    container["terminationMessagePolicy"] = "File"
    return _job(parts, [container], [_claim_volume("backup", claim, read_only=True)])


@dataclass(frozen=True)
class RestoreJob:
    parts: JobParts
    claim: str
    directory: str
    database_image: str
    database_env: list[dict[str, Any]]
    pulp_image: str
    files_claim: str | None = None


def restore_job(job: RestoreJob) -> Manifest:
    where = [
        env_value("BACKUP_ROOT", BACKUP_ROOT),
        env_value("BACKUP_DIRECTORY", job.directory),
    ]
    backup_mount = _mount("backup", BACKUP_ROOT, read_only=True)
    containers = [
        _container(
            "restore-database",
            job.database_image,
            ["/bin/sh", "-c", RESTORE_DATABASE],
            [*where, *job.database_env],
            [backup_mount],
        )
    ]
    volumes = [_claim_volume("backup", job.claim, read_only=True)]
    if job.files_claim:
        containers.append(
            _container(
                "restore-files",
                job.pulp_image,
                ["/bin/sh", "-c", RESTORE_FILES],
                [*where, env_value("FILES_ROOT", FILES_ROOT)],
                [backup_mount, _mount("files", FILES_ROOT)],
            )
        )
        volumes.append(_claim_volume("files", job.files_claim))
    return _job(job.parts, containers, volumes)
