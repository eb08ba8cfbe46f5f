"""A Pulp upgraded on the real node while a client downloads; then deleted and created again; then
its claims grown.

pulpcore 3.122.2 (the stand-in image of hack/images/build.sh --pulp-tag 3.122.2) with uploaded
and on-demand content is upgraded to 3.123.1 while a client downloads every file in a loop:
no download may fail or return other bytes. The Pulp is then deleted and created again: the
content and the admin password it had still work. Last, the file storage and database claims
grow (the node's provisioner resizes).
"""

from __future__ import annotations

import base64
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
from typing import Any, cast

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Event, PersistentVolumeClaim, Secret
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import PulpResource

from .common import FIGURES, IMAGES, PULP_TAG, REPO, as_dict, pulp_cli, pulp_manifests, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NAME = "up"
NAMESPACE = "upgrade-e2e"
NODEPORT = 30250
OLD_TAG = "3.122.2"
OLD_IMAGES = (f"pulp-minimal-{OLD_TAG}.oci.tar", f"pulp-web-{OLD_TAG}.oci.tar")
REPORT = REPO / ".pytest_cache" / "upgrade-report.json"


@dataclass
class Env:
    client: Client
    home: Path
    node_ip: str
    base_url: str = f"http://127.0.0.1:{NODEPORT}"
    password: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    """Content path (under /pulp/content/) -> the bytes it must serve."""

    def pulp(self, *args: str, password: str | None = None) -> Any:
        password = self.password if password is None else password
        return pulp_cli(self.base_url, password, self.home, *args)

    def cr(self) -> dict[str, Any]:
        return as_dict(self.client.get(PulpResource, NAME, namespace=NAMESPACE))

    def condition(self, type_: str) -> dict[str, Any]:
        for cond in (self.cr().get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def ready(self) -> bool:
        return self.condition("Ready").get("status") == "True"

    def patch(self, spec: dict[str, Any]) -> None:
        self.client.patch(
            PulpResource, NAME, {"spec": spec}, namespace=NAMESPACE, patch_type=PatchType.MERGE
        )

    def admin_password(self) -> str:
        secret = self.client.get(Secret, names.admin_password(NAME), namespace=NAMESPACE)
        assert secret.data is not None
        return base64.b64decode(secret.data["password"]).decode()

    def core_version(self) -> str:
        versions = {v["component"]: v["version"] for v in self.pulp("status")["versions"]}
        return str(versions["core"])


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        data: bytes = r.read()
        return data


def deploy(env: Env, tag: str) -> None:
    for doc in pulp_manifests(NAME, NAMESPACE, NODEPORT, tag=tag):
        if doc["kind"] == "Pulp":
            env.client.create(PulpResource.from_dict(doc))
        elif not _exists(env.client, doc):
            env.client.create(cast(ConfigMap, ConfigMap.from_dict(doc)))


def _exists(client: Client, doc: dict[str, Any]) -> bool:
    try:
        client.get(ConfigMap, doc["metadata"]["name"], namespace=NAMESPACE)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def env(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    missing = [n for n in OLD_IMAGES if not (IMAGES / n).is_file()]
    if missing:
        pytest.fail(
            f"images missing: {missing}; run `hack/images/build.sh --pulp-tag {OLD_TAG}"
            " pulp-minimal pulp-web` (or `make images`)",
            pytrace=False,
        )
    real_node.namespace(NAMESPACE)
    served = tmp_path_factory.mktemp("remote")
    server = http.server.ThreadingHTTPServer(
        (real_node.node.node_ip, 0), functools.partial(_Quiet, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = Env(real_node.client, tmp_path_factory.mktemp("pulp-cli"), real_node.node.node_ip)
    try:
        with real_node.operator([NAMESPACE], log_name="test_upgrade"):
            started = time.monotonic()
            deploy(env, OLD_TAG)
            wait(f"Pulp {OLD_TAG} Ready", env.ready, timeout=900, every=3)
            print(f"\nPulp {OLD_TAG} ready after {time.monotonic() - started:.0f}s")
            env.password = env.admin_password()
            add_content(env, served, f"http://{env.node_ip}:{server.server_address[1]}")
            yield env
    finally:
        server.shutdown()
        real_node.delete_namespaces(NAMESPACE)


def add_content(env: Env, served: Path, remote: str) -> None:
    """An uploaded file and three on-demand ones (fetched from the remote at first request)."""
    payload = secrets.token_bytes(300_000)
    upload = env.home / "blob.bin"
    upload.write_bytes(payload)
    env.pulp("file", "repository", "create", "--name", "upload")
    env.pulp("file", "content", "upload", "--file", str(upload), "--relative-path", "blob.bin",
             "--repository", "file:file:upload")  # fmt: skip
    publication = env.pulp("file", "publication", "create", "--repository", "upload")
    env.pulp("file", "distribution", "create", "--name", "upload", "--base-path", "upload",
             "--publication", publication["pulp_href"])  # fmt: skip
    env.files["upload/blob.bin"] = payload

    lazy = {f"f{i}.bin": secrets.token_bytes(100_000 + i) for i in range(3)}
    lines = []
    for file_name, data in lazy.items():
        (served / file_name).write_bytes(data)
        lines.append(f"{file_name},{hashlib.sha256(data).hexdigest()},{len(data)}")
    (served / "PULP_MANIFEST").write_text("\n".join(lines) + "\n")
    env.pulp("file", "remote", "create", "--name", "lazy", "--url", f"{remote}/PULP_MANIFEST",
             "--policy", "on_demand")  # fmt: skip
    env.pulp("file", "repository", "create", "--name", "lazy", "--remote", "lazy")
    env.pulp("file", "repository", "sync", "--name", "lazy")
    publication = env.pulp("file", "publication", "create", "--repository", "lazy")
    env.pulp("file", "distribution", "create", "--name", "lazy", "--base-path", "lazy",
             "--publication", publication["pulp_href"])  # fmt: skip
    env.files.update({f"lazy/{n}": d for n, d in lazy.items()})
    for path, data in env.files.items():
        assert download(f"{env.base_url}/pulp/content/{path}") == data, path


@dataclass
class Downloader:
    """Downloads every file in a loop, as a client would, until stopped."""

    env: Env
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        paths = sorted(self.env.files)
        while not self.stop.is_set():
            path = paths[self.attempts % len(paths)]
            self.attempts += 1
            try:
                got = download(f"{self.env.base_url}/pulp/content/{path}")
            except Exception as exc:
                self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            if got != self.env.files[path]:
                self.failures.append(f"{path}: {len(got)} bytes, not the ones uploaded")


def test_upgrade_while_downloading(env: Env) -> None:
    assert env.core_version() == OLD_TAG
    assert env.cr()["status"]["version"] == OLD_TAG
    downloader = Downloader(env)
    thread = threading.Thread(target=downloader.run, daemon=True)
    thread.start()
    wait("downloads running", lambda: downloader.attempts >= 10, timeout=60, every=0.5)
    seen: set[tuple[str, str]] = set()

    def upgraded() -> bool:
        status = env.cr().get("status") or {}
        if status.get("target_version"):
            seen.add((status.get("version") or "", status["target_version"]))
        return bool(
            status.get("version") == PULP_TAG and not status.get("target_version") and env.ready()
        )

    started = time.monotonic()
    env.patch({"image_version": PULP_TAG, "image_web_version": PULP_TAG})
    wait(f"every pod on {PULP_TAG}, Ready", upgraded, timeout=900, every=1)
    duration = time.monotonic() - started
    # a few more rounds after the last old pod is gone
    last = downloader.attempts
    wait("downloads after the upgrade", lambda: downloader.attempts >= last + 20, 120, 0.5)
    downloader.stop.set()
    thread.join(60)

    report = {"upgrade_seconds": round(duration, 1), "downloads": downloader.attempts,
              "failed": len(downloader.failures)}  # fmt: skip
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report) + "\n")
    print(f"\nupgrade {OLD_TAG} -> {PULP_TAG}: {report}")
    FIGURES[f"upgrade {OLD_TAG} -> {PULP_TAG}"] = report
    assert downloader.failures == [], downloader.failures[:10]
    assert (OLD_TAG, PULP_TAG) in seen  # the status said what runs and where it goes
    assert env.core_version() == PULP_TAG  # `pulp status`
    for path, data in env.files.items():
        assert download(f"{env.base_url}/pulp/content/{path}") == data, path
    reasons = [e.reason for e in env.client.list(Event, namespace=NAMESPACE) if e.reason]
    for phase in ("UpgradeMigrating", "UpgradeRolling", "UpgradeComplete"):
        assert phase in reasons, reasons


def test_deleted_and_created_again_keeps_content_and_password(env: Env) -> None:
    password = env.admin_password()
    env.client.delete(PulpResource, NAME, namespace=NAMESPACE)

    def gone() -> bool:
        for cls, obj_name in ((Deployment, names.api(NAME)), (StatefulSet, names.database(NAME))):
            try:
                env.client.get(cls, obj_name, namespace=NAMESPACE)
            except ApiError as exc:
                if exc.status.code == 404:
                    continue
                raise
            return False
        return True

    wait("the workloads garbage-collected", gone, timeout=300, every=2)
    for claim in (names.file_storage(NAME), names.database_claim(NAME)):
        env.client.get(PersistentVolumeClaim, claim, namespace=NAMESPACE)  # kept
    assert env.admin_password() == password  # kept too

    deploy(env, PULP_TAG)
    wait("the Pulp created again Ready", env.ready, timeout=900, every=3)
    assert env.admin_password() == password
    # the old password still logs in (an authenticated call), the content is all there
    assert {r["name"] for r in env.pulp("file", "repository", "list", password=password)} >= {
        "upload", "lazy",
    }  # fmt: skip
    for path, data in env.files.items():
        assert download(f"{env.base_url}/pulp/content/{path}") == data, path


def capacity(env: Env, claim: str) -> str:
    pvc = env.client.get(PersistentVolumeClaim, claim, namespace=NAMESPACE)
    assert pvc.status is not None
    return str((pvc.status.capacity or {}).get("storage"))


def test_claims_grow(env: Env) -> None:
    file_claim, db_claim = names.file_storage(NAME), names.database_claim(NAME)
    assert (capacity(env, file_claim), capacity(env, db_claim)) == ("2Gi", "1Gi")
    env.patch({"file_storage_size": "3Gi", "database": {"postgres_storage_requirements": "2Gi"}})
    wait("the file storage claim grown", lambda: capacity(env, file_claim) == "3Gi", 300)
    wait("the database claim grown", lambda: capacity(env, db_claim) == "2Gi", 300)
    wait("Ready after the growth", env.ready, timeout=300, every=2)
    for type_ in ("StorageReady", "DatabaseReady"):
        assert env.condition(type_).get("status") == "True", env.condition(type_)
    for path, data in env.files.items():
        assert download(f"{env.base_url}/pulp/content/{path}") == data, path
