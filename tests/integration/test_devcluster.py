"""Proves the devcluster fixtures: the real API (apiserver tier) and the simulated cluster."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.batch_v1 import JobSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta, OwnerReference
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod

from pulp_devcluster import (
    AuditLog,
    ClusterInfo,
    ControlPlane,
    DevClusterError,
    MissingBinaryError,
    cleanup_stale_runs,
    install_crds,
    make_client,
)
from pulp_devcluster.controlplane import pid_alive, port_is_free, proc_start_time

from ..support import AUDITED_USER

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
IMAGE = "registry.invalid/pulp-operator/fake:1"  # never pulled: kwok runs no containers


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, within: float = 60.0
) -> T:
    """Poll ``check`` until it returns something other than None/False."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def _pod_template(app: str, restart_policy: str = "Always") -> PodTemplateSpec:
    return PodTemplateSpec(
        metadata=ObjectMeta(labels={"app": app}),
        spec=PodSpec(
            restartPolicy=restart_policy,
            containers=[Container(name=app, image=IMAGE, imagePullPolicy="IfNotPresent")],
        ),
    )


# ------------------------------------------------------------------------------------------
# apiserver tier
# ------------------------------------------------------------------------------------------


def test_audit_log_counts_the_requests_of_one_user(
    apiserver: ClusterInfo, api_audit: AuditLog, api_namespace: str
) -> None:
    """Every request of a process (here: a client of the audited user) between two marks, each
    once, complete right after the requests; other users' requests and the marks apart."""
    ns = api_namespace
    client = make_client(apiserver.kubeconfigs[AUDITED_USER], "audit-test")
    admin = make_client(apiserver.kubeconfig, "audit-test")
    try:
        before = api_audit.mark()
        client.create(ConfigMap(metadata=ObjectMeta(name="counted", namespace=ns), data={}))
        client.get(ConfigMap, "counted", namespace=ns)
        assert [c.metadata.name for c in client.list(ConfigMap, namespace=ns) if c.metadata] == [
            "counted"
        ]
        client.patch(ConfigMap, "counted", {"data": {"a": "1"}}, namespace=ns)
        for _event, _obj in client.watch(ConfigMap, namespace=ns):  # a long-running request
            break
        admin.get(ConfigMap, "counted", namespace=ns)
        client.delete(ConfigMap, "counted", namespace=ns)
        after = api_audit.mark()
    finally:
        client.close()
        admin.close()

    mine = api_audit.requests(since=before, until=after, username=AUDITED_USER)
    assert [(e.verb, e.resource, e.namespace) for e in mine] == [
        ("create", "configmaps", ns),
        ("get", "configmaps", ns),
        ("list", "configmaps", ns),
        ("patch", "configmaps", ns),
        ("watch", "configmaps", ns),
        ("delete", "configmaps", ns),
    ]
    assert [e.name for e in mine if e.verb in ("get", "patch", "delete")] == ["counted"] * 3
    assert all(e.username == AUDITED_USER and e.api_group is None for e in mine)
    assert [e.code for e in mine if e.verb != "watch"] == [201, 200, 200, 200, 200]
    assert api_audit.count(before, after, username=AUDITED_USER) == {
        "create": 1, "get": 1, "list": 1, "patch": 1, "watch": 1, "delete": 1,
    }  # fmt: skip
    others = api_audit.requests(since=before, until=after, username="admin")
    assert [(e.verb, e.name) for e in others] == [("get", "counted")]
    agent = mine[0].user_agent
    assert agent
    assert {e.user_agent for e in [*mine, *others]} == {agent}
    assert len(api_audit.requests(before, after, user_agent_prefix=agent.split("/")[0])) == 7
    # nothing of the audited user between two marks (the watch's end is not a new request)
    assert api_audit.requests(since=after, until=api_audit.mark(), username=AUDITED_USER) == []


def test_audit_log_needs_audit_on(tmp_path: Path) -> None:
    info = ClusterInfo(
        tier="apiserver",
        kubeconfig=tmp_path / "kubeconfig",
        server="https://127.0.0.1:1",
        token="t",
        ca_file=tmp_path / "ca.crt",
        testbin=tmp_path,
        state_dir=tmp_path,
    )
    with pytest.raises(DevClusterError, match="audit=True"):
        AuditLog.of(info)


async def test_configmap_roundtrip(api_client: AsyncClient, api_namespace: str) -> None:
    cm = ConfigMap(metadata=ObjectMeta(name="hello", namespace=api_namespace), data={"a": "1"})
    created = await api_client.create(cm)
    assert created.metadata is not None
    assert created.metadata.uid
    got = await api_client.get(ConfigMap, "hello", namespace=api_namespace)
    assert got.data == {"a": "1"}
    # a real apiserver checks resourceVersion on update
    stale = ConfigMap(
        metadata=ObjectMeta(name="hello", namespace=api_namespace, resourceVersion="1"),
        data={"a": "2"},
    )
    with pytest.raises(ApiError) as conflict:
        await api_client.replace(stale)
    assert conflict.value.status.code == 409


async def test_crd_established_and_custom_resource(
    apiserver: ClusterInfo, api_client: AsyncClient, api_namespace: str, tmp_path: Path
) -> None:
    group = f"t{secrets.token_hex(4)}.devcluster.pulpproject.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    (tmp_path / "crds.yaml").write_text(
        yaml.safe_dump_all([crd, {"apiVersion": "v1", "kind": "Kustomization"}])
    )
    assert install_crds(apiserver.kubeconfig, tmp_path) == [f"widgets.{group}"]
    try:
        got = await api_client.get(CustomResourceDefinition, f"widgets.{group}")
        assert got.status is not None
        assert any(
            c.type == "Established" and c.status == "True" for c in got.status.conditions or []
        )
        widget_cls = create_namespaced_resource(group, "v1", "Widget", "widgets")
        widget = widget_cls(
            apiVersion=f"{group}/v1",
            kind="Widget",
            metadata=ObjectMeta(name="w1", namespace=api_namespace),
            spec={"size": 3},
        )
        await api_client.create(widget)
        fetched = await api_client.get(widget_cls, "w1", namespace=api_namespace)
        assert fetched["spec"] == {"size": 3}
        invalid = widget_cls(
            apiVersion=f"{group}/v1",
            kind="Widget",
            metadata=ObjectMeta(name="w2", namespace=api_namespace),
            spec={"size": 0},
        )
        with pytest.raises(ApiError) as rejected:  # the schema is enforced
            await api_client.create(invalid)
        assert rejected.value.status.code == 422
    finally:
        await api_client.delete(CustomResourceDefinition, f"widgets.{group}")


async def test_server_side_apply(api_client: AsyncClient, api_namespace: str) -> None:
    def cm(data: dict[str, str]) -> ConfigMap:
        return ConfigMap(metadata=ObjectMeta(name="ssa", namespace=api_namespace), data=data)

    await api_client.apply(cm({"a": "1"}), field_manager="manager-a")
    await api_client.apply(cm({"b": "2"}), field_manager="manager-b")
    got = await api_client.get(ConfigMap, "ssa", namespace=api_namespace)
    assert got.data == {"a": "1", "b": "2"}
    assert got.metadata is not None
    managers = {m.manager for m in got.metadata.managedFields or []}
    assert {"manager-a", "manager-b"} <= managers

    with pytest.raises(ApiError) as conflict:
        await api_client.apply(cm({"a": "changed", "b": "2"}), field_manager="manager-b")
    assert conflict.value.status.code == 409
    await api_client.apply(cm({"a": "changed", "b": "2"}), field_manager="manager-b", force=True)
    got = await api_client.get(ConfigMap, "ssa", namespace=api_namespace)
    assert got.data == {"a": "changed", "b": "2"}


# ------------------------------------------------------------------------------------------
# cluster tier
# ------------------------------------------------------------------------------------------


async def test_nodes_ready(cluster_client: AsyncClient) -> None:
    nodes = [n async for n in cluster_client.list(Node, labels={"type": "kwok"})]
    assert len(nodes) == 2
    for node in nodes:
        assert node.status is not None
        assert node.spec is not None
        assert not node.spec.taints
        assert node.status.allocatable == {"cpu": "32", "memory": "256Gi", "pods": "110"}
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


async def test_deployment_becomes_available(
    cluster_client: AsyncClient, cluster_namespace: str
) -> None:
    deployment = Deployment(
        metadata=ObjectMeta(name="web", namespace=cluster_namespace),
        spec=DeploymentSpec(
            replicas=2,
            selector=LabelSelector(matchLabels={"app": "web"}),
            template=_pod_template("web"),
        ),
    )
    await cluster_client.create(deployment)

    async def available() -> Deployment | None:
        d = await cluster_client.get(Deployment, "web", namespace=cluster_namespace)
        s = d.status
        ok = s is not None and s.readyReplicas == 2 and s.availableReplicas == 2
        return d if ok else None

    await eventually(available, "deployment web to have 2 ready replicas")
    pods = [p async for p in cluster_client.list(Pod, namespace=cluster_namespace)]
    assert len(pods) == 2
    for pod in pods:
        assert pod.status is not None
        assert pod.spec is not None
        assert pod.status.phase == "Running"
        assert (pod.spec.nodeName or "").startswith("kwok-node-")


async def test_job_completes(cluster_client: AsyncClient, cluster_namespace: str) -> None:
    job = Job(
        metadata=ObjectMeta(name="once", namespace=cluster_namespace),
        spec=JobSpec(backoffLimit=0, template=_pod_template("once", restart_policy="Never")),
    )
    await cluster_client.create(job)

    async def complete() -> Job | None:
        j = await cluster_client.get(Job, "once", namespace=cluster_namespace)
        conds = (j.status.conditions if j.status else None) or []
        done = any(c.type == "Complete" and c.status == "True" for c in conds)
        return j if done else None

    done = await eventually(complete, "job once to complete")
    assert done.status is not None
    assert done.status.succeeded == 1


async def test_garbage_collection(cluster_client: AsyncClient, cluster_namespace: str) -> None:
    ns = cluster_namespace
    owner = await cluster_client.create(
        ConfigMap(metadata=ObjectMeta(name="owner", namespace=ns), data={"x": "1"})
    )
    assert owner.metadata is not None
    assert owner.metadata.uid is not None
    ref = OwnerReference(apiVersion="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    await cluster_client.create(
        ConfigMap(metadata=ObjectMeta(name="owned", namespace=ns, ownerReferences=[ref]))
    )
    await cluster_client.delete(ConfigMap, "owner", namespace=ns)

    async def owned_gone() -> bool:
        try:
            await cluster_client.get(ConfigMap, "owned", namespace=ns)
        except ApiError as exc:
            if exc.status.code == 404:
                return True
            raise
        return False

    await eventually(owned_gone, "the garbage collector to delete ConfigMap owned")


# ------------------------------------------------------------------------------------------
# lifecycle: stop, crash leftovers, CLI, missing binaries
# ------------------------------------------------------------------------------------------


@pytest.mark.apiserver
def test_stop_leaves_no_process(tmp_path: Path) -> None:
    plane = ControlPlane(tier="apiserver", runs_dir=tmp_path / "runs")  # temp state dir
    info = plane.start()
    pids, ports = plane.pids, plane.ports
    assert set(pids) == {"etcd", "kube-apiserver"}
    assert all(pid_alive(pid) for pid in pids.values())
    in_use = {"etcd_client", "etcd_peer", "apiserver"}
    assert not [name for name, port in ports.items() if name in in_use and port_is_free(port)]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1
    client = make_client(info.kubeconfig)
    assert client.get(Namespace, "default").metadata is not None
    client.close()
    plane.stop()

    assert not [name for name, pid in pids.items() if Path(f"/proc/{pid}").exists()]
    assert all(port_is_free(port) for port in ports.values())
    assert not info.state_dir.exists()
    assert not list((tmp_path / "runs").glob("*.json"))


def test_stale_runs_are_cleaned_up(tmp_path: Path) -> None:
    """Processes of a run whose owner died are killed, but only if their cmdline matches."""
    runs = tmp_path / "runs"
    runs.mkdir()
    marker = tmp_path / "stale-state"
    marker.mkdir()
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    leftover = subprocess.Popen([*sleep, str(marker)], process_group=0)
    innocent = subprocess.Popen([*sleep, "unrelated"], process_group=0)
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        for proc in (leftover, innocent):
            deadline = time.monotonic() + 10
            while proc_start_time(proc.pid) is None and time.monotonic() < deadline:
                time.sleep(0.01)

        def record(owner: int, owner_start: int | None, proc: subprocess.Popen[bytes]) -> Any:
            return {
                "owner_pid": owner,
                "owner_start_time": owner_start,
                "state_dir": str(marker),
                "owned_state_dir": True,
                "processes": [
                    {
                        "name": "fake",
                        "pid": proc.pid,
                        "start_time": proc_start_time(proc.pid),
                        "marker": str(marker),
                        "log": "",
                    }
                ],
            }

        # owner gone: clean up. A pid whose cmdline lacks the marker: never touched.
        (runs / "stale.json").write_text(json.dumps(record(gone.pid, 1, leftover)))
        (runs / "reused.json").write_text(json.dumps(record(gone.pid, 1, innocent)))
        # owner alive (this process): left alone
        me = os.getpid()
        (runs / "live.json").write_text(json.dumps(record(me, proc_start_time(me), innocent)))

        assert cleanup_stale_runs(runs, timeout=5) == 2
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert innocent.poll() is None
        assert sorted(p.name for p in runs.glob("*.json")) == ["live.json"]
    finally:
        for proc in (leftover, innocent):
            proc.kill()
            proc.wait()


def test_missing_binaries_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(MissingBinaryError) as exc:
        ControlPlane(tier="cluster", testbin=tmp_path).start()
    message = str(exc.value)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kwok", str(tmp_path)):
        assert name in message
    assert "make testbin" in message


def test_fixture_fails_without_binaries(tmp_path: Path) -> None:
    """Tests using a tier fixture or marker error (never skip) when the binaries are missing."""
    env = {**os.environ, "PULP_OPERATOR_TESTBIN": str(tmp_path / "empty")}
    module = Path(__file__).relative_to(REPO_ROOT)
    targets = [f"{module}::test_configmap_roundtrip", f"{module}::test_stop_leaves_no_process"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *targets],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "2 errors" in out, out
    assert "skipped" not in out, out
    assert "make testbin" in out, out
    assert "kube-apiserver" in out, out


@pytest.mark.apiserver
def test_cli_up_and_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "PULP_OPERATOR_DEVCLUSTER_RUNS": str(tmp_path / "runs")}
    cli = [sys.executable, "-m", "pulp_devcluster"]
    with (tmp_path / "up.log").open("wb") as out:
        up = subprocess.Popen(
            [*cli, "up", "--tier", "apiserver", "--state-dir", str(state)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 180
        data: dict[str, Any] = {}
        while time.monotonic() < deadline and up.poll() is None:
            try:
                data = json.loads((state / "state.json").read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("ready"):
                break
            time.sleep(0.2)
        log = (tmp_path / "up.log").read_text()
        assert data.get("ready"), log
        pids = [p["pid"] for p in data["processes"]]
        client = make_client(state / "kubeconfig")
        assert client.get(Namespace, "kube-system").metadata is not None
        client.close()
        down = subprocess.run(
            [*cli, "down", "--state-dir", str(state)], env=env, timeout=60, capture_output=True
        )
        assert down.returncode == 0, down
        assert up.wait(timeout=30) == 0
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert not (state / "state.json").exists()
        assert (state / "logs" / "kube-apiserver.log").exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
