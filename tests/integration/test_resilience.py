"""Survival of the operator as a process: SIGKILL in the middle of a reconcile, an API server
restart, two replicas with leader election (writes per replica, a killed leader, a partitioned
leader).

These tests run a control plane of their own (the API-server tier, with an audit log and one user
per operator replica, so that the API server tells their requests apart) because they restart its
API server. Each test uses namespaces of its own.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
from lightkube.types import PatchType

from pulp_devcluster import AuditEntry, AuditLog, ClusterInfo, ControlPlane, install_crds
from pulp_devcluster import make_client as devcluster_client
from pulp_operator import desired, names
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.kube import OWNED_KINDS, PulpResource
from pulp_operator.render import render

from ..samples import load_sample
from .processes import OperatorProc, Partition, kubeconfig_via, operators, wait_for

pytestmark = pytest.mark.apiserver

REPO = Path(__file__).resolve().parents[2]
REPLICAS = ("replica-a", "replica-b")
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
HANDOVER_LIMIT = 15.0
OUTAGE = 65.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(
        tier="apiserver",
        state_dir=tmp_path_factory.mktemp("resilience-cp"),
        audit=True,
        users=REPLICAS,
    )
    info = cp.start()
    try:
        install_crds(info.kubeconfig, REPO / "config" / "crd")
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def info(plane: ControlPlane) -> ClusterInfo:
    assert plane.info is not None
    return plane.info


@pytest.fixture(scope="module")
def client(info: ClusterInfo) -> Iterator[Client]:
    c = devcluster_client(info.kubeconfig, "resilience-tests")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def namespace(client: Client, request: pytest.FixtureRequest) -> str:
    name = f"r-{request.node.name[5:30].replace('_', '-')}-{secrets.token_hex(3)}".lower()
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


# --- helpers --------------------------------------------------------------------------------

SIMPLE = load_sample("simple.yaml")
_ports = iter(range(30100, 32767))


def create_pulps(
    client: Client, namespace: str, count: int, prefix: str = "p", nodeport: bool = True
) -> list[str]:
    """Pulps of the simple sample (its Secret and ConfigMap once per namespace); without
    `nodeport`, not exposed (ingress_type none)."""
    for doc in SIMPLE:
        if doc["kind"] in ("Secret", "ConfigMap"):
            body = copy.deepcopy(doc)
            body["metadata"]["namespace"] = namespace
            cls = Secret if doc["kind"] == "Secret" else ConfigMap
            try:
                client.create(cls.from_dict(body))  # type: ignore[call-overload]
            except ApiError as exc:
                if exc.status.code != 409:
                    raise
    template = next(d for d in SIMPLE if d["kind"] == "Pulp")
    out = []
    for i in range(count):
        body = copy.deepcopy(template)
        body["metadata"] = {"name": f"{prefix}{i}", "namespace": namespace}
        if nodeport:
            body["spec"]["nodeport_port"] = next(_ports)
        else:
            body["spec"]["ingress_type"] = "none"
            body["spec"].pop("nodeport_port", None)
        client.create(PulpResource.from_dict(body))
        out.append(body["metadata"]["name"])
    return out


EXPECTED = len(render(SIMPLE, namespace="x").objects)
"""How many objects the operator creates for a Pulp of the simple sample."""


def owned_counts(client: Client, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cls in OWNED_KINDS:
        for obj in client.list(cls, namespace=namespace, labels={names.OWNED_LABEL: None}):
            owner = (obj.metadata.labels or {})[names.OWNED_LABEL]  # type: ignore[attr-defined]
            counts[owner] = counts.get(owner, 0) + 1
    return counts


def pulp(client: Client, namespace: str, name: str) -> dict[str, Any]:
    obj: GenericNamespacedResource = client.get(PulpResource, name, namespace=namespace)
    return obj.to_dict()  # type: ignore[no-untyped-call, no-any-return]


def converged(client: Client, namespace: str, pulps: list[str]) -> bool:
    """Every Pulp has a status for its generation and all the objects of the sample."""
    counts = owned_counts(client, namespace)
    for name in pulps:
        body = pulp(client, namespace, name)
        conditions = (body.get("status") or {}).get("conditions") or []
        generation = body["metadata"].get("generation")
        if not conditions or conditions[0].get("observedGeneration") != generation:
            return False
        if counts.get(name, 0) < EXPECTED:
            return False
    return True


def generated_secrets(client: Client, namespace: str) -> dict[str, dict[str, str]]:
    """Data of every Secret the operator generated in a namespace, by name."""
    out: dict[str, dict[str, str]] = {}
    for obj in client.list(Secret, namespace=namespace, labels={names.OWNED_LABEL: None}):
        assert obj.metadata is not None
        assert obj.metadata.name is not None
        out[obj.metadata.name] = dict(obj.data or {})
    return out


def writes_of(entries: list[AuditEntry]) -> list[AuditEntry]:
    """The writes among the requests, leaving out the leader-election Lease."""
    return [e for e in entries if e.verb in WRITES and e.resource != "leases"]


def holder(client: Client, namespace: str) -> str | None:
    try:
        lease = client.get(Lease, "pulp-operator-leader", namespace=namespace)
    except ApiError:
        return None
    return lease.spec.holderIdentity if lease.spec else None


def replica(
    info: ClusterInfo,
    namespace: str,
    user: str,
    logs: Path,
    kubeconfig: Path | None = None,
) -> OperatorProc:
    return OperatorProc(
        kubeconfig or info.kubeconfigs[user],
        [namespace],
        logs / f"{user}.log",
        extra=(
            "--leader-elect",
            "--leader-election-namespace",
            namespace,
            "--leader-election-identity",
            user,
        ),
    )


# --- SIGKILL mid-reconcile ------------------------------------------------------------------


def test_sigkill_mid_reconcile_then_a_new_operator_converges_all_keeping_secrets(
    info: ClusterInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    with operators() as started:
        first = OperatorProc(info.kubeconfigs["replica-a"], [namespace], tmp_path / "first.log")
        started.append(first.start())
        wait_for("the first operator", lambda: first.endpoint("healthz")[0] == 200, 60)
        # No NodePorts: a Service create the kill aborts can leave its NodePort allocated in the
        # API server until its repair loop frees it, minutes later (the operator reports the
        # refusal of the port and retries meanwhile); that is the API server's, not tested here.
        pulps = create_pulps(client, namespace, 20, nodeport=False)
        # the moment the first generated Secret exists the operator is inside its first passes
        wait_for("a generated Secret", lambda: generated_secrets(client, namespace), 60, 0.02)
        first.kill()
        before = generated_secrets(client, namespace)
        assert not converged(client, namespace, pulps), "killed too late to interrupt anything"

        second = OperatorProc(info.kubeconfigs["replica-b"], [namespace], tmp_path / "second.log")
        started.append(second.start())
        wait_for("all 20 Pulps converged", lambda: converged(client, namespace, pulps), 120, 0.5)
    after = generated_secrets(client, namespace)
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert not changed, f"Secrets changed by the second operator: {changed}"
    for name in pulps:
        spec = PulpSpec.model_validate(pulp(client, namespace, name)["spec"])
        for gen in desired.generated_secrets(name, namespace, spec):
            assert gen.name in after, f"{gen.name} was never generated"


# --- kube-apiserver restart -----------------------------------------------------------------


def test_apiserver_restart_watches_recover_and_outage_changes_are_reconciled(
    plane: ControlPlane, info: ClusterInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    with operators() as started:
        op = OperatorProc(info.kubeconfigs["replica-a"], [namespace], tmp_path / "operator.log")
        started.append(op.start())
        wait_for("the operator", lambda: op.endpoint("readyz")[0] == 200, 60)
        pulps = create_pulps(client, namespace, 2)
        wait_for("two Pulps converged", lambda: converged(client, namespace, pulps), 60, 0.2)

        plane.stop_apiserver(crash=True)  # a graceful stop waits 15 s for its watches
        stopped = time.monotonic()
        try:
            _, body = wait_for(
                "/readyz to report the outage",
                lambda: (r := op.endpoint("readyz"))[0] == 503 and r,
                30,
                0.5,
            )
            assert body["api"]["reachable"] is False, body
            assert any(
                p.startswith("api: the API server has not answered") for p in body["problems"]
            )
            assert op.endpoint("healthz")[0] == 200, "liveness must not fail for an API outage"
            # changes during the outage, made through another API server of the same etcd
            with (
                plane.second_apiserver() as other,
                devcluster_client(other, "resilience-tests") as during,
            ):
                (new,) = create_pulps(during, namespace, 1, prefix="during")
                during.delete(Deployment, names.api(pulps[0]), namespace=namespace)
                during.patch(
                    PulpResource,
                    pulps[1],
                    {"spec": {"content": {"replicas": 3}}},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
            # longer than kopf's own retries last (~1 minute): its watches must outlive them
            wait_for("a long outage", lambda: time.monotonic() - stopped > OUTAGE, 90, 1)
        finally:
            plane.start_apiserver()
        back = time.monotonic()

        def repaired() -> bool:
            try:
                content = client.get(Deployment, names.content(pulps[1]), namespace=namespace)
                client.get(Deployment, names.api(pulps[0]), namespace=namespace)
            except ApiError:
                return False
            assert content.spec is not None
            return content.spec.replicas == 3 and converged(client, namespace, [new])

        wait_for("the outage's changes reconciled", repaired, 60, 0.5)
        took = time.monotonic() - back
        wait_for("/readyz to recover", lambda: op.endpoint("readyz")[0] == 200, 30, 0.5)
        assert op.alive()
    print(f"\noutage changes reconciled {took:.1f}s after the API server came back")


# --- two replicas ---------------------------------------------------------------------------


def test_only_the_leader_writes_and_a_killed_leader_hands_over_in_15s(
    info: ClusterInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    audit = AuditLog.of(info)
    with operators() as started:
        a = replica(info, namespace, "replica-a", tmp_path)
        started.append(a.start())
        wait_for("replica-a to lead", lambda: a.leading(), 60)
        b = replica(info, namespace, "replica-b", tmp_path)
        started.append(b.start())
        wait_for("replica-b to follow", lambda: b.leading() is False, 60)
        since = audit.mark()
        pulps = create_pulps(client, namespace, 3)
        wait_for("three Pulps converged", lambda: converged(client, namespace, pulps), 60, 0.2)
        until = audit.mark()
        writes = {
            user: len(writes_of(audit.requests(since, until, username=user))) for user in REPLICAS
        }
        assert writes["replica-a"] > 0, writes
        assert writes["replica-b"] == 0, writes
        leases_b = [
            e for e in audit.requests(since, until, username="replica-b") if e.verb in WRITES
        ]
        assert not leases_b, f"the follower wrote: {leases_b}"

        a.kill()
        killed = time.monotonic()
        (late,) = create_pulps(client, namespace, 1, prefix="late")
        wait_for(
            "replica-b to hold the Lease", lambda: holder(client, namespace) == "replica-b", 30
        )
        handover = time.monotonic() - killed
        wait_for("replica-b to lead", lambda: b.leading(), 10)
        wait_for("the late Pulp converged", lambda: converged(client, namespace, [late]), 30, 0.2)
    assert handover <= HANDOVER_LIMIT, f"handover took {handover:.1f}s"
    print(f"\nhandover {handover:.1f}s after SIGKILL of the leader")


def test_a_partitioned_leader_stops_writing_before_its_lease_can_be_taken_over(
    plane: ControlPlane, info: ClusterInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    audit = AuditLog.of(info)
    port = int(info.server.rsplit(":", 1)[1])
    line = Partition(("127.0.0.1", port))
    try:
        with operators() as started:
            via = kubeconfig_via(info.kubeconfigs["replica-a"], line.url, tmp_path / "a.kubeconfig")
            a = replica(info, namespace, "replica-a", tmp_path, kubeconfig=via)
            started.append(a.start())
            wait_for("replica-a to lead", lambda: a.leading(), 60)
            b = replica(info, namespace, "replica-b", tmp_path)
            started.append(b.start())
            wait_for("replica-b to follow", lambda: b.leading() is False, 60)
            (name,) = create_pulps(client, namespace, 1)
            wait_for("the Pulp converged", lambda: converged(client, namespace, [name]), 60, 0.2)

            line.cut.set()
            cut = time.monotonic()
            stopped = took_over = None
            while stopped is None or took_over is None:
                now = time.monotonic()
                assert now - cut < 30, f"stopped {stopped}, taken over {took_over}"
                if stopped is None and a.leading() is False:
                    stopped = now - cut
                if took_over is None and holder(client, namespace) == "replica-b":
                    took_over = now - cut
                time.sleep(0.05)
            assert stopped < took_over, (
                f"replica-a stopped leading {stopped:.1f}s after the cut, replica-b took over"
                f" {took_over:.1f}s after it"
            )
            # a change during the partition: the new leader reconciles it
            client.patch(
                PulpResource,
                name,
                {"spec": {"api": {"replicas": 2}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
            wait_for("replica-b to lead", lambda: b.leading(), 10)

            def api_replicas() -> int | None:
                spec = client.get(Deployment, names.api(name), namespace=namespace).spec
                return spec.replicas if spec else None

            wait_for("the change applied by replica-b", lambda: api_replicas() == 2, 30, 0.2)

            line.cut.clear()  # the old leader's connections work again: it must stay quiet
            healed = audit.mark()
            client.patch(
                PulpResource,
                name,
                {"spec": {"content": {"replicas": 2}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )

            def content_replicas() -> int | None:
                spec = client.get(Deployment, names.content(name), namespace=namespace).spec
                return spec.replicas if spec else None

            wait_for("the second change applied", lambda: content_replicas() == 2, 30, 0.2)
            time.sleep(3)  # give the old leader time to misbehave: it must not
            after = audit.mark()
            by_a = [
                e for e in audit.requests(healed, after, username="replica-a") if e.verb in WRITES
            ]
            by_b = writes_of(audit.requests(healed, after, username="replica-b"))
            assert a.alive()
            assert a.leading() is False
    finally:
        line.close()
    assert not by_a, f"the old leader wrote after the partition healed: {by_a}"
    assert by_b, "the new leader wrote nothing"
    print(f"\npartition: replica-a stopped {stopped:.1f}s, replica-b took over {took_over:.1f}s")
