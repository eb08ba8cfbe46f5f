"""The resource manager's hot spares: pulpcore 3.13 with resource_manager.replicas 2.

pulpcore 3.13 names its resource manager "resource-manager" in RQ: a second one started beside
it fails ("There exists an active worker named 'resource-manager' already") after marking the
running one offline, and after a kill a new one is refused until the dead one's Redis key
expires. The operator therefore runs each resource manager under a guard holding a PostgreSQL
advisory lock (desired/pulpcore.py): one pod is active, the other waits. The test kills the
active resource manager's process (SIGKILL through containerd, as a crash would) and starts a
file sync right after: it completes, one resource manager being active again (the spare or the
restarted container, whichever takes the lock first). Then it deletes the active pod, as a node
failure would: the spare takes over while the replacement pod starts, and the next sync
completes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from lightkube import Client
from lightkube.resources.core_v1 import Pod, Secret

from pulp_operator import names
from pulp_operator.kube import PulpResource

from ..support import as_dict
from .common import FIGURES, IMAGES, deploy_pulp, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NAME = "rm"
NAMESPACE = "plugins-rm"
NODEPORT = 30201
TAG = "3.13"
ACTIVE = "this is the active resource manager"
WAITING = "waiting for the lock"


@dataclass
class OldPulp:
    client: Client
    node: Any
    base_url: str
    password: str

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = requests.request(
            method, self.base_url + path, auth=("admin", self.password), timeout=60, **kwargs
        )
        assert r.ok, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def task(self, href: str, timeout: float) -> dict[str, Any]:
        def finished() -> Any:
            task = self.api("GET", href)
            return task if task["state"] in ("completed", "failed", "canceled") else None

        task: dict[str, Any] = wait(f"task {href}", finished, timeout, 1)
        return task

    def rm_pods(self) -> list[Pod]:
        pods = self.client.list(
            Pod,
            namespace=NAMESPACE,
            labels=dict[str, Any](names.selector(NAME, "resource-manager")),
        )
        return [p for p in pods if p.metadata and not p.metadata.deletionTimestamp]

    def log(self, pod: Pod) -> str:
        assert pod.metadata is not None
        assert pod.metadata.name
        try:
            return "".join(self.client.log(pod.metadata.name, namespace=NAMESPACE))
        except Exception:
            return ""

    def active(self) -> list[Pod]:
        return [p for p in self.rm_pods() if ACTIVE in self.log(p)]


@pytest.fixture(scope="module")
def old_pulp(real_node: RealNode) -> Iterator[OldPulp]:
    missing = [
        a
        for a in (f"pulp-minimal-{TAG}.oci.tar", f"pulp-web-{TAG}.oci.tar")
        if not (IMAGES / a).is_file()
    ]
    if missing:
        pytest.fail(f"images missing: {missing}; run `make images`", pytrace=False)
    client = real_node.client
    real_node.namespace(NAMESPACE)
    try:
        with real_node.operator([NAMESPACE], log_name="test_resource_manager"):
            deploy_pulp(
                client,
                NAME,
                NAMESPACE,
                NODEPORT,
                tag=TAG,
                settings=False,
                spec_update={"resource_manager": {"replicas": 2}},
            )

            def ready() -> bool:
                cr = as_dict(client.get(PulpResource, NAME, namespace=NAMESPACE))
                conds = (cr.get("status") or {}).get("conditions") or []
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

            wait(f"Pulp {TAG} Ready=True", ready, timeout=900, every=3)
            secret = client.get(Secret, names.admin_password(NAME), namespace=NAMESPACE)
            assert secret.data is not None
            password = base64.b64decode(secret.data["password"]).decode()
            base_url = f"http://127.0.0.1:{NODEPORT}"
            # Ready=True can come a moment before kube-proxy routes the NodePort
            wait(
                "the API through pulp-web's NodePort",
                lambda: requests.get(f"{base_url}/pulp/api/v3/status/", timeout=10).ok,
                timeout=120,
            )
            yield OldPulp(client, real_node.node, base_url, password)
    finally:
        real_node.delete_namespaces(NAMESPACE)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def remote_url(old_pulp: OldPulp, tmp_path: Path) -> Iterator[str]:
    """A file repository (PULP_MANIFEST) served on the node's address for the worker pods."""
    lines = []
    for i in range(3):
        data = secrets.token_bytes(20_000 + i)
        (tmp_path / f"f{i}.bin").write_bytes(data)
        lines.append(f"f{i}.bin,{hashlib.sha256(data).hexdigest()},{len(data)}")
    (tmp_path / "PULP_MANIFEST").write_text("\n".join(lines) + "\n")
    server = http.server.ThreadingHTTPServer(
        (old_pulp.node.node_ip, 0), functools.partial(_Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{old_pulp.node.node_ip}:{server.server_address[1]}/PULP_MANIFEST"
    finally:
        server.shutdown()


def sync(pulp: OldPulp, remote: str, repository: str) -> str:
    """Start a sync (through the resource manager); returns its task href."""
    task: str = pulp.api("POST", f"{repository}sync/", json={"remote": remote})["task"]
    return task


def test_a_spare_resource_manager_takes_over(old_pulp: OldPulp, remote_url: str) -> None:
    pulp = old_pulp
    wait("two resource manager pods", lambda: len(pulp.rm_pods()) == 2, timeout=300)
    (active,) = wait("one active resource manager", pulp.active, timeout=300)
    (spare,) = [
        p
        for p in pulp.rm_pods()
        if p.metadata and p.metadata.name != (active.metadata and active.metadata.name)
    ]
    assert WAITING in pulp.log(spare)
    assert ACTIVE not in pulp.log(spare)

    remote = pulp.api(
        "POST",
        "/pulp/api/v3/remotes/file/file/",
        json={"name": "upstream", "url": remote_url, "policy": "immediate"},
    )["pulp_href"]
    repository = pulp.api("POST", "/pulp/api/v3/repositories/file/file/", json={"name": "r"})[
        "pulp_href"
    ]
    assert pulp.task(sync(pulp, remote, repository), 300)["state"] == "completed"

    # Kill the active resource manager's process, as a crash would.
    assert active.status is not None
    assert active.status.containerStatuses
    container_id = active.status.containerStatuses[0].containerID
    assert container_id
    assert container_id.startswith("containerd://")
    subprocess.run(
        [
            "ctr",
            "--address",
            str(pulp.node.containerd_socket),
            "--namespace",
            "k8s.io",
            "task",
            "kill",
            "--signal",
            "SIGKILL",
            container_id.removeprefix("containerd://"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    killed = time.monotonic()
    # A sync started after the kill completes: the spare or the restarted container (kubelet
    # restarts a killed container within a second or two: they race for the lock) dispatched it.
    task = pulp.task(sync(pulp, remote, repository), 240)
    assert task["state"] == "completed", task
    after_kill = round(time.monotonic() - killed, 1)
    print(f"\nsync after the kill completed {after_kill}s after it")
    (now_active,) = wait("one resource manager active again", pulp.active, timeout=180)
    others = [p for p in pulp.rm_pods() if p.metadata and now_active.metadata
              and p.metadata.name != now_active.metadata.name]  # fmt: skip
    assert len(others) == 1
    assert ACTIVE not in pulp.log(others[0])

    # The active pod is gone (as with a node failure or an eviction): its replacement needs a
    # new pod, so the spare takes over, and dispatches the next sync.
    assert now_active.metadata is not None
    assert now_active.metadata.name
    gone = now_active.metadata.name
    pulp.client.delete(Pod, gone, namespace=NAMESPACE, grace_period=0)
    deleted = time.monotonic()
    task = pulp.task(sync(pulp, remote, repository), 240)
    assert task["state"] == "completed", task
    after_deletion = round(time.monotonic() - deleted, 1)
    print(f"sync after the pod's deletion completed {after_deletion}s after it")
    FIGURES["resource manager: sync completed, seconds after"] = {
        "the active one's kill": after_kill,
        "the active pod's deletion": after_deletion,
    }
    (spare_name,) = [p.metadata.name for p in others if p.metadata]
    wait(
        "the spare alone active, the replacement pod waiting",
        lambda: (
            [p.metadata.name for p in pulp.active() if p.metadata] == [spare_name]
            and len(pulp.rm_pods()) == 2
            and all(
                WAITING in pulp.log(p)
                for p in pulp.rm_pods()
                if p.metadata and p.metadata.name != spare_name
            )
        ),
        timeout=180,
    )
