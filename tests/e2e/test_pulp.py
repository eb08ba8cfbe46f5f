"""A real Pulp on a real node, driven with pulp-cli through the operator-created endpoint.

The shared real node (tests/e2e/conftest.py: kubelet, containerd, runc, kube-proxy, CoreDNS) with
the locally built images of hack/images/build.sh, the operator running as a process, and one Pulp
CR: managed PostgreSQL and Redis, PVC file storage, pulp-web behind a
NodePort. The tests run in order on the same Pulp.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret
from lightkube.types import PatchType

from pulp_devcluster import ClusterInfo
from pulp_devcluster.node import NodeInfo
from pulp_operator import names
from pulp_operator.kube import PulpResource

from .common import IMAGES, PULP_TAG, as_dict, deploy_pulp, pulp_cli, pulp_manifests, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NODEPORT = 30180
NAME = "e2e"
NAMESPACE = "pulp-e2e"
OLD_NAMESPACE = "pulp-e2e-old"
OLD_TAG = "3.13"
OLD_NODEPORT = 30182
OLD_IMAGES = (f"pulp-minimal-{OLD_TAG}.oci.tar", f"pulp-web-{OLD_TAG}.oci.tar")


@dataclass
class PulpEnv:
    cluster: ClusterInfo
    node: NodeInfo
    client: Client
    base_url: str
    password: str
    home: Path

    def pulp(self, *args: str) -> Any:
        """Run pulp-cli; JSON output parsed."""
        return pulp_cli(self.base_url, self.password, self.home, *args)

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/pulp/api/v3/status/", timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def pulp_cr(self) -> dict[str, Any]:
        return as_dict(self.client.get(PulpResource, NAME, namespace=NAMESPACE))

    def ready(self) -> bool:
        for cond in (self.pulp_cr().get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready":
                return bool(cond["status"] == "True")
        return False

    def patch_spec(self, patch: dict[str, Any]) -> None:
        self.client.patch(
            PulpResource, NAME, {"spec": patch}, namespace=NAMESPACE, patch_type=PatchType.MERGE
        )


@pytest.fixture(scope="module")
def env(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulpEnv]:
    started = time.monotonic()
    client = real_node.client
    home = tmp_path_factory.mktemp("pulp-cli-home")
    real_node.namespace(NAMESPACE)
    real_node.namespace(OLD_NAMESPACE)
    try:
        with real_node.operator([NAMESPACE, OLD_NAMESPACE], log_name="test_pulp"):
            deploy_pulp(client, NAME, NAMESPACE, NODEPORT)
            env = PulpEnv(
                real_node.cluster, real_node.node, client, f"http://127.0.0.1:{NODEPORT}", "", home
            )
            wait("Pulp Ready=True", env.ready, timeout=900, every=3)
            secret = client.get(Secret, names.admin_password(NAME), namespace=NAMESPACE)
            assert secret.data is not None
            env.password = base64.b64decode(secret.data["password"]).decode()
            print(f"\nPulp ready {time.monotonic() - started:.0f}s after the start of the fixture")
            yield env
    finally:
        real_node.delete_namespaces(NAMESPACE, OLD_NAMESPACE)


def test_status_lists_online_components(env: PulpEnv) -> None:
    status = env.pulp("status")
    assert status["database_connection"]["connected"] is True
    assert status["redis_connection"]["connected"] is True
    assert len(status["online_workers"]) >= 1
    assert len(status["online_api_apps"]) >= 1
    assert len(status["online_content_apps"]) >= 1
    assert status["versions"][0]["version"] == PULP_TAG or any(
        v["component"] == "core" and v["version"] == PULP_TAG for v in status["versions"]
    )
    # the migration Job ran for real
    pulp = env.pulp_cr()
    assert pulp["status"]["migrated_image"] == f"quay.io/pulp/pulp-minimal:{PULP_TAG}"


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        data: bytes = r.read()
        return data


def test_file_upload_publish_distribute_download(env: PulpEnv, tmp_path: Path) -> None:
    payload = secrets.token_bytes(200_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    env.pulp("file", "repository", "create", "--name", "upload")
    env.pulp(
        "file",
        "content",
        "upload",
        "--file",
        str(path),
        "--relative-path",
        "blob.bin",
        "--repository",
        "file:file:upload",
    )
    publication = env.pulp("file", "publication", "create", "--repository", "upload")
    env.pulp(
        "file",
        "distribution",
        "create",
        "--name",
        "upload",
        "--base-path",
        "upload",
        "--publication",
        publication["pulp_href"],
    )
    got = download(f"{env.base_url}/pulp/content/upload/blob.bin")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_on_demand_sync_streams_from_the_remote(env: PulpEnv, tmp_path: Path) -> None:
    served = tmp_path / "remote"
    served.mkdir()
    files = {f"f{i}.bin": secrets.token_bytes(50_000 + i) for i in range(3)}
    lines = []
    for name, data in files.items():
        (served / name).write_bytes(data)
        lines.append(f"{name},{hashlib.sha256(data).hexdigest()},{len(data)}")
    (served / "PULP_MANIFEST").write_text("\n".join(lines) + "\n")
    requests: list[str] = []

    class Handler(_Quiet):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        (env.node.node_ip, 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{env.node.node_ip}:{server.server_address[1]}/PULP_MANIFEST"
        env.pulp(
            "file", "remote", "create", "--name", "lazy", "--url", url, "--policy", "on_demand"
        )
        env.pulp("file", "repository", "create", "--name", "lazy", "--remote", "lazy")
        env.pulp("file", "repository", "sync", "--name", "lazy")
        assert [p for p in requests if p.endswith(".bin")] == []  # nothing fetched at sync
        publication = env.pulp("file", "publication", "create", "--repository", "lazy")
        env.pulp(
            "file",
            "distribution",
            "create",
            "--name",
            "lazy",
            "--base-path",
            "lazy",
            "--publication",
            publication["pulp_href"],
        )
        got = download(f"{env.base_url}/pulp/content/lazy/f1.bin")
        assert got == files["f1.bin"]
        assert requests.count("/f1.bin") == 1  # streamed from the remote on first request
    finally:
        server.shutdown()


def _ready_replicas(env: PulpEnv, deployment: str) -> int:
    dep = env.client.get(Deployment, deployment, namespace=NAMESPACE)
    return (dep.status.readyReplicas or 0) if dep.status else 0


def test_scale_workers(env: PulpEnv) -> None:
    env.patch_spec({"worker": {"replicas": 3}})
    wait("3 online workers", lambda: len(env.status()["online_workers"]) == 3, timeout=300)
    env.patch_spec({"worker": {"replicas": 1}})
    wait("1 worker pod", lambda: _ready_replicas(env, names.worker(NAME)) == 1, timeout=180)
    wait("1 online worker", lambda: len(env.status()["online_workers"]) == 1, timeout=300)


def test_settings_change_rolls_the_pods(env: PulpEnv) -> None:
    new_origin = f"http://localhost:{NODEPORT}"
    env.client.patch(
        ConfigMap,
        "e2e-settings",
        {"data": {"content_origin": f'"{new_origin}"'}},
        namespace=NAMESPACE,
    )
    wait(
        "the new CONTENT_ORIGIN in effect",
        lambda: env.status()["content_settings"]["content_origin"] == new_origin,
        timeout=400,
    )


def test_api_pod_and_deployment_come_back(env: PulpEnv) -> None:
    selector: dict[str, Any] = dict(names.selector(NAME, "api"))
    pods = list(env.client.list(Pod, namespace=NAMESPACE, labels=selector))
    assert pods
    old = {p.metadata.name for p in pods if p.metadata}
    for pod in pods:
        assert pod.metadata is not None
        assert pod.metadata.name
        env.client.delete(Pod, pod.metadata.name, namespace=NAMESPACE)
    wait(
        "a new api pod serving",
        lambda: (
            {
                p.metadata.name
                for p in env.client.list(Pod, namespace=NAMESPACE, labels=selector)
                if p.metadata
            }
            - old
            and env.status()["database_connection"]["connected"]
        ),
        timeout=300,
    )

    env.client.delete(Deployment, names.api(NAME), namespace=NAMESPACE)
    wait(
        "the api Deployment restored by the operator",
        lambda: env.client.get(Deployment, names.api(NAME), namespace=NAMESPACE),
        timeout=60,
    )
    wait("the api serving again", lambda: env.status()["online_api_apps"], timeout=300)
    wait("Ready again", env.ready, timeout=300)


def test_old_release_runs_the_resource_manager(env: PulpEnv) -> None:
    """pulpcore 3.13 (Python 3.9 image): four services, the resource manager among them."""
    if not all((IMAGES / name).is_file() for name in OLD_IMAGES):
        pytest.fail(
            f"no pulpcore {OLD_TAG} image: run `make images` (hack/images/build.sh --pulp-tag"
            f" {OLD_TAG} pulp-minimal pulp-web; needs Debian bullseye's Python 3.9)",
            pytrace=False,
        )
    name = "old"
    (pulp,) = pulp_manifests(name, OLD_NAMESPACE, OLD_NODEPORT, tag=OLD_TAG, settings=False)
    env.client.create(PulpResource.from_dict(pulp))

    def ready() -> bool:
        pulp = as_dict(env.client.get(PulpResource, name, namespace=OLD_NAMESPACE))
        conds = (pulp.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait(f"Pulp {OLD_TAG} Ready=True", ready, timeout=900, every=3)
    rm = env.client.get(Deployment, names.resource_manager(name), namespace=OLD_NAMESPACE)
    assert rm.spec is not None
    assert rm.spec.replicas == 1
    url = f"http://127.0.0.1:{OLD_NODEPORT}/pulp/api/v3/status/"

    def status() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def resource_manager_online() -> Any:
        workers = status()["online_workers"]
        return any("resource-manager" in w["name"] for w in workers) and workers

    workers = wait("the resource manager online", resource_manager_online, timeout=300)
    assert len(workers) >= 2  # the resource manager and a worker
    versions = {v["component"]: v["version"] for v in status()["versions"]}
    assert versions["core"].startswith(OLD_TAG)
