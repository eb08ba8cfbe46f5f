"""End-to-end checks of the real single node (devcluster/src/pulp_devcluster/node/).

A control plane of tier ``cluster`` without fake nodes (``nodes=0``: kwok runs but manages
nothing, so the scheduler can only pick the real node) plus :class:`Node` with the busybox test
image of ``hack/node/build.sh busybox`` and the pause image of hack/images/build.sh. Needs root,
the binaries of hack/testbin/build.sh and hack/node/build.sh; fails (never skips) without them.

Run: ``sudo .venv/bin/pytest -m e2e tests/e2e/test_node.py -v``
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import PersistentVolumeClaimStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    Namespace,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Service,
    ServiceAccount,
)
from lightkube.resources.core_v1 import Node as NodeResource
from lightkube.resources.discovery_v1 import EndpointSlice

from pulp_devcluster import ClusterInfo, ControlPlane, DevClusterError, make_client
from pulp_devcluster.node import (
    TEST_IMAGE,
    Node,
    NodeInfo,
    busybox_image_archive,
    cgroup_pids,
    check_node_prerequisites,
    cleanup_stale,
    leftovers,
    lock_holder_env,
    read_sysctl,
)

pytestmark = pytest.mark.e2e

PAGE = "hello from the pulp e2e busybox image"
_NO_STATUS = PersistentVolumeClaimStatus()
REPO_ROOT = Path(__file__).resolve().parents[2]


def _fail_unless_ready() -> None:
    problems: list[str] = []
    try:
        check_node_prerequisites()
    except DevClusterError as exc:
        problems.append(str(exc))
    if not busybox_image_archive().is_file():
        problems.append(f"{busybox_image_archive()} missing: run `hack/node/build.sh busybox`")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    _fail_unless_ready()
    plane = ControlPlane(tier="cluster", nodes=0, state_dir=tmp_path_factory.mktemp("e2e-cluster"))
    try:
        yield plane.start()
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def e2e_node_obj(
    e2e_cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    node = Node(
        e2e_cluster,
        state_dir=tmp_path_factory.mktemp("e2e-node"),
        images=[busybox_image_archive()],
    )
    try:
        node.start()
        print(f"\nnode ready in {node.timings['total']:.1f}s: {node.timings}")
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def e2e_node(e2e_node_obj: Node) -> NodeInfo:
    assert e2e_node_obj.info is not None
    return e2e_node_obj.info


@pytest.fixture
def client(e2e_cluster: ClusterInfo) -> Iterator[Client]:
    c = make_client(e2e_cluster.kubeconfig, "pulp-operator-e2e-tests")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def namespace(client: Client, e2e_node: NodeInfo) -> Iterator[str]:
    name = f"e2e-{secrets.token_hex(3)}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    _wait(f"the default ServiceAccount in {name}", lambda: _exists(client, ServiceAccount, name))
    yield name
    client.delete(Namespace, name)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _wait(what: str, ok: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def _exists(client: Client, kind: Any, namespace: str, name: str = "default") -> bool:
    try:
        if namespace:
            client.get(kind, name, namespace=namespace)
        else:
            client.get(kind, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True


def _pod(
    name: str,
    namespace: str,
    command: list[str],
    mounts: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Any:
    return codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": TEST_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": command,
                        "volumeMounts": mounts or [],
                    }
                ],
                **spec,
            },
        }
    )


def _run_pod(client: Client, namespace: str, name: str, command: list[str]) -> tuple[str, str]:
    """Run a one-shot pod to completion; returns (phase, log)."""
    client.create(_pod(name, namespace, command))

    def done() -> bool:
        pod = client.get(Pod, name, namespace=namespace)
        return pod.status is not None and pod.status.phase in ("Succeeded", "Failed")

    _wait(f"pod {namespace}/{name} to finish", done)
    pod = client.get(Pod, name, namespace=namespace)
    assert pod.status is not None
    # the runtime may still be flushing the log file of a just-exited container
    deadline = time.monotonic() + 10
    while True:
        text = "".join(client.log(name, namespace=namespace))
        if text or time.monotonic() > deadline:
            return str(pod.status.phase), text
        time.sleep(0.3)


def _http_get(url: str, timeout: float = 30.0) -> str:
    """GET ``url``, retrying connection errors for up to ``timeout`` seconds (kube-proxy
    programs a new Service's rules shortly after its endpoints become ready)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _web_deployment(client: Client, namespace: str) -> int:
    """Deployment (2 busybox httpd replicas) behind NodePort Service ``web``; returns the
    node port once both endpoints are ready."""
    labels = {"app": "web"}
    client.create(
        codecs.from_dict(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "terminationGracePeriodSeconds": 1,
                            "containers": [
                                {
                                    "name": "httpd",
                                    "image": TEST_IMAGE,
                                    "imagePullPolicy": "Never",
                                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                                    "readinessProbe": {
                                        "tcpSocket": {"port": 8080},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            }
        )
    )
    client.create(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {
                    "type": "NodePort",
                    "selector": labels,
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            }
        )
    )

    def ready() -> bool:
        dep = client.get(Deployment, "web", namespace=namespace)
        if dep.status is None or (dep.status.readyReplicas or 0) < 2:
            return False
        slices = client.list(
            EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": "web"}
        )
        addresses = [
            a
            for s in slices
            for e in s.endpoints or []
            if e.conditions is None or e.conditions.ready
            for a in e.addresses
        ]
        return len(addresses) >= 2

    _wait("deployment web to be ready behind its service", ready)
    svc = client.get(Service, "web", namespace=namespace)
    assert svc.spec is not None
    assert svc.spec.ports
    node_port = svc.spec.ports[0].nodePort
    assert node_port
    return int(node_port)


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_node_is_ready_and_real(client: Client, e2e_node: NodeInfo) -> None:
    node = client.get(NodeResource, e2e_node.name)
    assert node.status is not None
    assert node.status.nodeInfo is not None
    assert node.status.nodeInfo.containerRuntimeVersion.startswith("containerd://")
    assert node.status.nodeInfo.kubeletVersion == "v1.36.3"
    addresses = {a.type: a.address for a in node.status.addresses or []}
    assert addresses["InternalIP"] == e2e_node.node_ip
    taints = [t.key for t in (node.spec.taints if node.spec else None) or []]
    assert "node.kubernetes.io/not-ready" not in taints


def test_pod_runs_a_real_container(client: Client, namespace: str, e2e_node: NodeInfo) -> None:
    token = secrets.token_hex(4)
    phase, text = _run_pod(
        client,
        namespace,
        "hello",
        ["sh", "-c", f"echo hello-{token}; hostname; cat /etc/resolv.conf; ip -4 addr show eth0"],
    )
    assert phase == "Succeeded", text
    assert f"hello-{token}" in text
    assert "hello\n" in text  # the pod's hostname: its own UTS namespace
    assert f"nameserver {e2e_node.dns_service_ip}" in text
    assert f"search {namespace}.svc.{e2e_node.cluster_domain}" in text
    assert "inet 10.88." in text  # an address of the pod network (own network namespace)


def test_service_reachable_from_host_and_by_dns_from_pod(
    client: Client, namespace: str, e2e_node: NodeInfo
) -> None:
    _web_deployment(client, namespace)
    svc = client.get(Service, "web", namespace=namespace)
    assert svc.spec is not None
    cluster_ip = str(svc.spec.clusterIP)
    assert PAGE in _http_get(f"http://{cluster_ip}/")  # host -> ClusterIP (kube-proxy DNAT)

    fqdn = f"web.{namespace}.svc.{e2e_node.cluster_domain}"
    request = r"printf 'GET / HTTP/1.0\r\n\r\n'"
    phase, text = _run_pod(
        client,
        namespace,
        "client",
        ["sh", "-c", f"nslookup {fqdn} && {request} | nc {fqdn} 80 && {request} | nc web 80"],
    )
    assert phase == "Succeeded", text
    assert cluster_ip in text  # resolved by CoreDNS
    assert text.count(PAGE) == 2, text  # by FQDN and by the short name (search path)


def test_nodeport_reachable_from_host(client: Client, namespace: str, e2e_node: NodeInfo) -> None:
    node_port = _web_deployment(client, namespace)
    assert PAGE in _http_get(f"http://127.0.0.1:{node_port}/")
    assert PAGE in _http_get(f"http://{e2e_node.node_ip}:{node_port}/")


def test_pods_reach_the_apiserver(
    client: Client, namespace: str, e2e_node: NodeInfo, e2e_cluster: ClusterInfo
) -> None:
    # from a pod: TCP to the kubernetes Service by name (busybox has no TLS client that works)
    phase, text = _run_pod(
        client,
        namespace,
        "api",
        ["sh", "-c", "env | grep KUBERNETES_SERVICE; nc -w 5 kubernetes.default.svc 443 "
         "</dev/null && echo tcp-ok"],
    )  # fmt: skip
    assert phase == "Succeeded", text
    assert "KUBERNETES_SERVICE_HOST=10.0.0.1" in text
    assert "tcp-ok" in text
    # the same path with TLS verification, from the host: ClusterIP 10.0.0.1 (in the serving
    # certificate) -> kube-proxy -> the proxy on the node IP -> the apiserver on loopback
    ctx = ssl.create_default_context(cafile=str(e2e_cluster.ca_file))
    req = urllib.request.Request(
        "https://10.0.0.1/version", headers={"Authorization": f"Bearer {e2e_cluster.token}"}
    )
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    with opener.open(req, timeout=5) as resp:
        assert json.load(resp)["gitVersion"] == "v1.36.3"


def test_persistent_volume_claim_is_provisioned(
    client: Client, namespace: str, e2e_node: NodeInfo
) -> None:
    client.create(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },  # no storageClassName: the node's default class
            }
        )
    )
    token = secrets.token_hex(4)
    client.create(
        _pod(
            "writer",
            namespace,
            ["sh", "-c", f"echo {token} > /data/file && id -u"],
            mounts=[{"name": "data", "mountPath": "/data"}],
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            securityContext={"runAsUser": 1001},
        )
    )
    _wait("pod writer to finish", lambda: _phase(client, "writer", namespace) == "Succeeded")
    assert "".join(client.log("writer", namespace=namespace)).strip() == "1001"
    files = list((e2e_node.state_dir / "volumes").glob(f"{namespace}-data-*/file"))
    assert [f.read_text().strip() for f in files] == [token]


def test_persistent_volume_claim_grows(
    client: Client, namespace: str, e2e_node: NodeInfo, e2e_cluster: ClusterInfo
) -> None:
    """The provisioner expands its volumes: a bound claim asking for more gets it, as
    `kubectl get pvc` shows; the volume keeps its data; shrinking is refused."""
    client.create(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "grow", "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
    )

    def claim() -> PersistentVolumeClaim:
        return client.get(PersistentVolumeClaim, "grow", namespace=namespace)

    _wait("claim grow to be Bound", lambda: (claim().status or _NO_STATUS).phase == "Bound")
    bound = claim()
    assert bound.spec is not None
    assert bound.spec.volumeName
    assert bound.status is not None
    assert (bound.status.capacity or {})["storage"] == "1Gi"
    pv_name = bound.spec.volumeName
    pv = client.get(PersistentVolume, pv_name)
    assert pv.spec is not None
    assert pv.spec.hostPath is not None
    host_dir = Path(pv.spec.hostPath.path)
    (host_dir / "kept").write_text("data")

    client.patch(
        PersistentVolumeClaim,
        "grow",
        {"spec": {"resources": {"requests": {"storage": "3Gi"}}}},
        namespace=namespace,
    )
    _wait(
        "claim grow to have 3Gi",
        lambda: ((claim().status or _NO_STATUS).capacity or {}).get("storage") == "3Gi",
        timeout=60,
    )
    grown = claim()
    assert grown.status is not None
    assert [c.type for c in grown.status.conditions or []] == []
    assert "storage" not in (grown.status.allocatedResourceStatuses or {})
    assert (grown.status.allocatedResources or {}).get("storage") == "3Gi"
    pv = client.get(PersistentVolume, pv_name)
    assert pv.spec is not None
    assert pv.spec.capacity == {"storage": "3Gi"}
    assert pv.spec.hostPath is not None
    assert Path(pv.spec.hostPath.path) == host_dir
    assert (host_dir / "kept").read_text() == "data"

    table = subprocess.run(
        [str(e2e_cluster.testbin / "kubectl"), "get", "pvc", "grow", "-n", namespace],
        env=e2e_cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert row[header.index("CAPACITY")] == "3Gi"

    with pytest.raises(ApiError) as refused:
        client.patch(
            PersistentVolumeClaim,
            "grow",
            {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
            namespace=namespace,
        )
    assert refused.value.status.code == 422
    assert "spec.resources.requests.storage" in str(refused.value.status.message)


def test_memory_of_node_processes(e2e_node_obj: Node) -> None:
    memory = e2e_node_obj.memory()
    print("\nRSS MiB:", {k: round(v / 2**20) for k, v in memory.items()})
    for name in ("containerd", "kubelet", "kube-proxy", "coredns", "apiserver-proxy"):
        assert 0 < memory[name] < 512 * 2**20, (name, memory)


def test_stop_leaves_nothing_behind(e2e_node_obj: Node, client: Client) -> None:
    """Runs last among the tests of the shared node: stops it (the fixture's stop is a no-op)."""
    info = e2e_node_obj.info
    assert info is not None
    record = _read_record(e2e_node_obj)
    # something to clean up: a running pod with a hostPort (portmap chains) and a volume mount
    client.create(
        _pod(
            "busy",
            "default",
            ["sleep", "3600"],
            mounts=[{"name": "scratch", "mountPath": "/scratch"}],
            volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
        )
    )
    _wait("pod busy to run", lambda: _phase(client, "busy") == "Running")
    assert cgroup_pids(), "the pod's processes should be in the node's cgroups"
    state_dir = info.state_dir
    e2e_node_obj.stop()
    print(f"\nstopped in {e2e_node_obj.timings['stop']:.1f}s")
    assert leftovers(state_dir, info.bridge) == []
    assert cgroup_pids() == []
    assert "pulp-operator devcluster node" not in Path("/etc/hosts").read_text()
    for key, value in record["sysctls"].items():
        assert read_sysctl(key) == value, key
    assert not (state_dir / "containerd").exists()
    assert (state_dir / "logs" / "kubelet.log").is_file()  # a given state dir keeps its logs
    assert not _exists(client, NodeResource, "", info.name)  # the Node object is deleted too
    client.delete(Pod, "busy", namespace="default", grace_period=0)


def test_cleanup_stale_after_a_crash(e2e_cluster: ClusterInfo, tmp_path: Path) -> None:
    """A node whose owner was SIGKILLed (containers survive in their shims) is cleaned up."""
    state_dir = tmp_path / "crashed"
    # the node runs under this session's node lock: no other node can start after the crash
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), **lock_holder_env())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulp_devcluster.node",
            "up",
            "--state-dir",
            str(state_dir),
            "--cluster-state-dir",
            str(e2e_cluster.state_dir),
            "--test-image",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        output: list[bytes] = []
        for line in iter(proc.stdout.readline, b""):
            output.append(line)
            if line.startswith(b"node ") and b" ready in " in line:
                break
        else:
            pytest.fail(f"node up exited with {proc.wait()}:\n{b''.join(output).decode()}")
        client = make_client(e2e_cluster.kubeconfig, "pulp-operator-e2e-tests")
        try:
            client.create(_pod("survivor", "default", ["sleep", "3600"]))
            _wait("pod survivor to run", lambda: _phase(client, "survivor") == "Running")
        finally:
            client.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1)
    assert cgroup_pids(), "the containers should survive the crash of their owner"
    assert cleanup_stale() >= 1
    assert leftovers(state_dir / "node") == []
    assert cgroup_pids() == []
    client = make_client(e2e_cluster.kubeconfig, "pulp-operator-e2e-tests")
    try:
        client.delete(Pod, "survivor", namespace="default", grace_period=0)
    except ApiError:
        pass
    finally:
        client.close()


def _phase(client: Client, name: str, namespace: str = "default") -> str:
    pod = client.get(Pod, name, namespace=namespace)
    return str(pod.status.phase) if pod.status else ""


def _read_record(node: Node) -> dict[str, Any]:
    assert node.state_dir is not None
    data = json.loads((node.state_dir / "node.json").read_text())
    assert isinstance(data, dict)
    return data
