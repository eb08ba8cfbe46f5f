"""The operator in-cluster, from its own image, deploying a real Pulp.

Control plane (tier ``cluster`` without fake nodes) + a real node with the operator image built
from the project's Containerfile by hack/operator-image/build.sh and the stand-in Pulp images of
hack/images/build.sh. The project's manifests are applied unmodified: config/manager/namespace.yaml,
config/rbac/*.yaml (ClusterRole, ServiceAccount, ClusterRoleBinding) and
config/manager/deployment.yaml (image localhost/pulp-operator:latest, IfNotPresent, ``run
--all-namespaces``, readiness probe on /healthz). The operator, talking to the apiserver through
the in-cluster ``kubernetes`` Service with its ServiceAccount token, then brings a Pulp CR to
Ready=True (migrations run for real) and the status endpoint behind the NodePort lists a worker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod

from pulp_operator.devcluster import ControlPlane, install_crds, make_client
from pulp_operator.devcluster.node import Node, check_node_prerequisites
from pulp_operator.kube import PulpResource

from .common import IMAGES, PULP_ARCHIVES, PULP_TAG, deploy_pulp, wait

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NODEPORT = 30181
NAME = "incluster"
NAMESPACE = "pulp-incluster"
OPERATOR_NAMESPACE = "pulp-operator-system"
OPERATOR_DEPLOYMENT = "pulp-operator"
OPERATOR_ARCHIVE = "pulp-operator.oci.tar"
OPERATOR_IMAGE = "localhost/pulp-operator:latest"
# Applied in this order, unmodified.
MANIFESTS = (
    "config/manager/namespace.yaml",
    "config/rbac/service_account.yaml",
    "config/rbac/role.yaml",
    "config/rbac/role_binding.yaml",
    "config/manager/deployment.yaml",
)


def check_images() -> list[Path]:
    operator = IMAGES / OPERATOR_ARCHIVE
    if not operator.is_file():
        pytest.fail(
            f"operator image archive {operator} missing: run hack/operator-image/build.sh",
            pytrace=False,
        )
    names = operator.with_name(operator.name + ".names")
    if not names.is_file() or OPERATOR_IMAGE not in names.read_text().split():
        pytest.fail(
            f"{names} does not name {OPERATOR_IMAGE}: run hack/operator-image/build.sh",
            pytrace=False,
        )
    pulp = [IMAGES / name for name in PULP_ARCHIVES]
    missing = [str(a) for a in pulp if not a.is_file()]
    if missing:
        pytest.fail(f"images missing: {missing}; run `hack/images/build.sh`", pytrace=False)
    return [operator, *pulp]


def operator_pods(client: Client) -> list[Pod]:
    return list(
        client.list(
            Pod,
            namespace=OPERATOR_NAMESPACE,
            labels={"app.kubernetes.io/name": "pulp-operator"},
        )
    )


def operator_logs(client: Client) -> str:
    return "".join(
        "".join(client.log(pod.metadata.name, namespace=OPERATOR_NAMESPACE))  # type: ignore[union-attr]
        for pod in operator_pods(client)
    )


def operator_available(client: Client) -> bool:
    dep = client.get(Deployment, OPERATOR_DEPLOYMENT, namespace=OPERATOR_NAMESPACE)
    status = dep.status
    if status is None or not status.readyReplicas:
        return False
    return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])


def pulp_ready(client: Client) -> bool:
    cr = client.get(PulpResource, NAME, namespace=NAMESPACE).to_dict()
    for cond in (cr.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return bool(cond["status"] == "True")
    return False


def status() -> dict[str, Any]:
    url = f"http://127.0.0.1:{NODEPORT}/pulp/api/v3/status/"
    with urllib.request.urlopen(url, timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def status_with_worker() -> dict[str, Any] | None:
    st = status()
    return st if st.get("online_workers") else None


def dump(client: Client, kubeconfig: Path) -> None:
    """What helps to see why a wait timed out: pods and their states, the operator's log (and
    that of its previous, crashed container: kubectl, as lightkube cannot ask for it)."""
    for ns in (OPERATOR_NAMESPACE, NAMESPACE):
        try:
            for pod in client.list(Pod, namespace=ns):
                states = [
                    f"{cs.name}: ready={cs.ready} restarts={cs.restartCount} state={cs.state}"
                    for cs in (pod.status.containerStatuses if pod.status else None) or []
                ]
                phase = pod.status.phase if pod.status else None
                print(f"pod {ns}/{pod.metadata.name} {phase} {states}")  # type: ignore[union-attr]
        except Exception as exc:
            print(f"cannot list pods in {ns}: {exc!r}")
    try:
        print(
            "---- operator log (tail) ----\n" + "\n".join(operator_logs(client).splitlines()[-60:])
        )
    except Exception as exc:
        print(f"cannot read the operator log: {exc!r}")
    kubectl = shutil.which("kubectl")
    if kubectl:
        args = ["-n", OPERATOR_NAMESPACE, "logs", "--previous", "--tail", "60"]
        out = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), *args, f"deployment/{OPERATOR_DEPLOYMENT}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        print(f"---- previous operator container (tail) ----\n{out.stdout}{out.stderr}")


# Node start, operator rollout and up to 15 minutes for the Pulp: beyond the default 900 s.
@pytest.mark.timeout(1500)
def test_operator_in_cluster_deploys_pulp(tmp_path_factory: pytest.TempPathFactory) -> None:
    check_node_prerequisites()
    archives = check_images()
    started = time.monotonic()
    plane = ControlPlane(tier="cluster", nodes=0, state_dir=tmp_path_factory.mktemp("incluster-cp"))
    info = plane.start()
    node = Node(
        info,
        state_dir=tmp_path_factory.mktemp("incluster-node"),
        images=archives,
        containerd_root=Path.home() / ".cache/pulp-operator/e2e-containerd",
    )
    client = make_client(info.kubeconfig, "pulp-operator-e2e")
    operator_applied = False
    ok = False
    try:
        node.start()
        install_crds(info.kubeconfig, REPO / "config" / "crd")
        print(f"\ncontrol plane + node + CRDs: {time.monotonic() - started:.0f}s")

        for path in MANIFESTS:
            for obj in codecs.load_all_yaml((REPO / path).read_text()):
                client.apply(obj, force=True)
                operator_applied = True
        t0 = time.monotonic()
        wait("operator Deployment available", lambda: operator_available(client), 300, 2)
        print(f"operator Deployment available after {time.monotonic() - t0:.0f}s")
        [pod] = operator_pods(client)
        assert pod.spec is not None
        assert pod.spec.serviceAccountName == "pulp-operator"
        assert pod.spec.containers[0].image == OPERATOR_IMAGE

        client.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
        deploy_pulp(client, NAME, NAMESPACE, NODEPORT)
        t0 = time.monotonic()
        wait("Pulp Ready=True", lambda: pulp_ready(client), timeout=900, every=3)
        print(f"Pulp Ready=True after {time.monotonic() - t0:.0f}s")

        st = wait("an online worker in /pulp/api/v3/status/", status_with_worker, 120, 3)
        assert st["database_connection"]["connected"] is True
        assert len(st["online_workers"]) >= 1, st
        cr = client.get(PulpResource, NAME, namespace=NAMESPACE).to_dict()
        assert cr["status"]["migrated_image"] == f"quay.io/pulp/pulp-minimal:{PULP_TAG}"

        logs = operator_logs(client)
        assert NAME in logs, f"the operator's log does not mention {NAME!r}:\n{logs[-3000:]}"
        assert NAMESPACE in logs, logs[-3000:]
        print(f"in-cluster test passed {time.monotonic() - started:.0f}s after its start")
        ok = True
    finally:
        if not ok:
            dump(client, Path(info.kubeconfig))
        if operator_applied:
            try:
                client.delete(Deployment, OPERATOR_DEPLOYMENT, namespace=OPERATOR_NAMESPACE)
                wait("operator pod gone", lambda: not operator_pods(client), 90, 1)
            except Exception as exc:
                print(f"stopping the operator: {exc!r}")
        client.close()
        node.stop()
        plane.stop()
