"""The operator installed as admins install it, on the real node, each bringing a Pulp to Ready.

* Helm: `helm install` of charts/pulp-operator (values: the local image, one watched namespace),
  `--wait` for the operator Deployment;
* kustomize: an overlay of config/default written by `python -m pulp_generate overlay` (what
  `make deploy` runs), built by `kubectl kustomize`, applied by `kubectl apply --server-side`.

Both use the namespaced mode (a Role per watched namespace), so the in-cluster operator touches
nothing of the other test modules, and the operator image built from the Containerfile by
hack/operator-image/build.sh, named by the tag of this code's inputs. Readiness is checked with
`pulp-operator status` (exit 0), and Pulp's status API answers through the NodePort with a worker
online. Each test removes the operator at the end (helm uninstall; the kustomize objects minus
the CRDs, like `make undeploy`) and prints its install and ready times.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Pod

from ..packaging_tools import kubectl, tool
from .common import IMAGES, PULP_ARCHIVES, deploy_pulp, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LABELS: dict[str, Any] = {"app.kubernetes.io/name": "pulp-operator"}


def operator_image() -> str:
    """localhost/pulp-operator:<tag of this worktree's sources>: the image built from this code,
    which a build of :latest in another worktree cannot replace."""
    out = subprocess.run(
        ["bash", str(REPO / "hack/operator-image/build.sh"), "--print-image"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(out.stderr.strip() or "run hack/operator-image/build.sh", pytrace=False)
    return out.stdout.strip()


def check_images() -> str:
    missing = [a for a in PULP_ARCHIVES if not (IMAGES / a).is_file()]
    if missing:
        pytest.fail(f"images missing: {missing}; run `make images`", pytrace=False)
    return operator_image()


def sh(args: list[str | Path], env: dict[str, str], stdin: str | None = None) -> str:
    out = subprocess.run(
        [str(a) for a in args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, f"{args[:3]} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def status(env: dict[str, str], name: str, namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulp_operator.cli", "status", name, "-n", namespace],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def operator_pods(client: Client, namespace: str) -> list[Pod]:
    return list(client.list(Pod, namespace=namespace, labels=LABELS))


def api_status(nodeport: int) -> dict[str, Any] | None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{nodeport}/pulp/api/v3/status/", timeout=10
    ) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data if data.get("online_workers") else None


def bring_pulp_to_ready(
    real_node: RealNode,
    name: str,
    namespace: str,
    operator_namespace: str,
    nodeport: int,
    image: str,
) -> float:
    """Create the Pulp, wait until `pulp-operator status` exits 0; the seconds it took."""
    client = real_node.client
    pods = operator_pods(client, operator_namespace)
    assert len(pods) == 2, "two replicas with leader election"
    for pod in pods:
        assert pod.spec is not None
        assert pod.spec.containers[0].image == image

    def holder() -> str | None:
        lease = client.get(Lease, "pulp-operator-leader", namespace=operator_namespace)
        return lease.spec.holderIdentity if lease.spec else None

    wait("a replica to hold the leader Lease", holder, 60, 1)
    deploy_pulp(client, name, namespace, nodeport)
    t0 = time.monotonic()
    env = real_node.cluster.env()
    report = wait(
        f"`pulp-operator status {name}` to exit 0",
        lambda: (out := status(env, name, namespace)).returncode == 0 and out.stdout,
        timeout=900,
        every=5,
    )
    ready = time.monotonic() - t0
    print(f"\n{report}")
    assert f"Pulp {namespace}/{name}: Ready" in report
    st = wait("an online worker in the status API", lambda: api_status(nodeport), 120, 3)
    assert st["database_connection"]["connected"] is True
    return ready


def dump(real_node: RealNode, *namespaces: str) -> None:
    for ns in namespaces:
        for pod in real_node.client.list(Pod, namespace=ns):
            phase = pod.status.phase if pod.status else None
            print(f"pod {ns}/{pod.metadata.name if pod.metadata else '?'}: {phase}")
        for pod in operator_pods(real_node.client, ns):
            name = (pod.metadata.name if pod.metadata else None) or ""
            log = "".join(real_node.client.log(name, namespace=ns))
            print(f"---- {ns}/{name} log (tail)\n" + "\n".join(log.splitlines()[-40:]))


@pytest.fixture
def image() -> str:
    return check_images()


@pytest.mark.timeout(1500)
def test_helm_install_brings_a_pulp_to_ready(real_node: RealNode, image: str) -> None:
    helm = tool("helm")
    operator_ns, namespace, nodeport = "packaging-helm-system", "packaging-helm", 30210
    env = real_node.cluster.env()
    real_node.namespace(namespace)
    ok = False
    try:
        t0 = time.monotonic()
        sh(
            [
                helm, "install", "pulp-operator", REPO / "charts/pulp-operator",
                "--namespace", operator_ns, "--create-namespace",
                "--set", "image.repository=localhost/pulp-operator",
                "--set", f"image.tag={image.rsplit(':', 1)[1]}",
                "--set", f"watch.namespaces={{{namespace}}}",
                "--wait", "--timeout", "5m",
            ],
            env,
        )  # fmt: skip
        installed = time.monotonic() - t0
        ready = bring_pulp_to_ready(real_node, "helm", namespace, operator_ns, nodeport, image)
        print(
            f"helm install: operator available after {installed:.0f}s;"
            f" Pulp Ready after {ready:.0f}s"
        )
        ok = True
    finally:
        if not ok:
            dump(real_node, operator_ns, namespace)
        subprocess.run(
            [str(helm), "uninstall", "pulp-operator", "--namespace", operator_ns, "--wait"],
            env=env,
            capture_output=True,
            check=False,
            timeout=300,
        )
        wait(
            "the operator pod gone",
            lambda: not operator_pods(real_node.client, operator_ns),
            120,
            1,
        )
        real_node.delete_namespaces(namespace, operator_ns)


@pytest.mark.timeout(1500)
def test_kustomize_install_brings_a_pulp_to_ready(
    real_node: RealNode, tmp_path: Path, image: str
) -> None:
    operator_ns, namespace, nodeport = "packaging-kustomize-system", "packaging-kustomize", 30211
    env = real_node.cluster.env()
    real_node.namespace(namespace)
    generate = [sys.executable, "-m", "pulp_generate"]
    overlay = tmp_path / "overlay"
    manifests = ""
    ok = False
    try:
        t0 = time.monotonic()
        sh([*generate, "overlay", "--namespace", operator_ns, "--watch", namespace, "--image",
            image, "--out", overlay], env)  # fmt: skip
        manifests = sh([kubectl(), "kustomize", overlay], env)
        sh([kubectl(), "apply", "--server-side", "--force-conflicts", "-f", "-"], env, manifests)
        wait(
            "the operator Deployment available",
            lambda: _available(real_node.client, operator_ns),
            300,
            2,
        )
        installed = time.monotonic() - t0
        ready = bring_pulp_to_ready(real_node, "kustomize", namespace, operator_ns, nodeport, image)
        print(
            f"kustomize: operator available after {installed:.0f}s; Pulp Ready after {ready:.0f}s"
        )
        ok = True
    finally:
        if not ok:
            dump(real_node, operator_ns, namespace)
        if manifests:
            without_crds = sh([*generate, "without-crds"], env, manifests)
            subprocess.run(
                [str(kubectl()), "delete", "--ignore-not-found", "--wait", "-f", "-"],
                input=without_crds,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
        wait(
            "the operator pod gone",
            lambda: not operator_pods(real_node.client, operator_ns),
            120,
            1,
        )
        real_node.delete_namespaces(namespace, operator_ns)


def _available(client: Client, namespace: str) -> bool:
    dep = client.get(Deployment, "pulp-operator", namespace=namespace)
    conditions = dep.status.conditions if dep.status else None
    return any(c.type == "Available" and c.status == "True" for c in conditions or [])
