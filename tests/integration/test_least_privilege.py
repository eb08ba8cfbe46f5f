"""The operator runs with exactly the RBAC the install manifests grant, on the API-server tier.

A ServiceAccount gets the Roles of a namespaced install (generated from permissions.py) and a
token from the TokenRequest API; `pulp-operator run`, configured like the in-cluster Deployment
(WATCH_NAMESPACE, no -n), uses only that token. It reconciles a Pulp without one 403 (its own
API-error metric counts them), the API server confirms what the account may not do, the metrics
endpoint serves every series the alerts and the dashboard read, and `pulp-operator status`
reports the Pulp.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType
from prometheus_client.parser import text_string_to_metric_families

from pulp_devcluster import ClusterInfo, make_client
from pulp_generate import objects
from pulp_generate.settings import OPERATOR, Install
from pulp_operator.kube import PulpResource

from ..packaging_tools import REPO, run, tool
from ..support import as_dict

pytestmark = pytest.mark.apiserver

PULP = "least"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, ok: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = ok()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Running:
    client: Client
    namespace: str
    operator_namespace: str
    metrics_url: str
    admin_env: dict[str, str]
    log: Path

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            text = r.read().decode()
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def pulp(self) -> dict[str, Any]:
        obj: dict[str, Any] = as_dict(self.client.get(PulpResource, PULP, namespace=self.namespace))
        return obj


def _kubeconfig(info: ClusterInfo, token: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": info.server, "certificate-authority": str(info.ca_file)},
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "operator"}}],
        "current-context": "c",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh)
    return path


@pytest.fixture(scope="module")
def running(apiserver: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("least-privilege")
    client = make_client(apiserver.kubeconfig, "pulp-operator-tests")
    suffix = os.urandom(3).hex()
    namespace, operator_ns = f"lp-pulp-{suffix}", f"lp-operator-{suffix}"
    install = Install(namespace=operator_ns, watch_namespaces=(namespace,))
    for ns in (namespace, operator_ns):
        client.create(Namespace(metadata=ObjectMeta(name=ns)))
    for obj in objects.install_objects(install, crds=False, with_namespace=False):
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            client.create(codecs.from_dict(obj))
    request = ServiceAccount.Token(
        metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
    )
    status = client.create(request, OPERATOR, namespace=operator_ns).status
    assert status is not None
    assert status.token
    token = status.token
    kubeconfig = _kubeconfig(apiserver, token, tmp / "operator-kubeconfig")
    metrics, health = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(KUBECONFIG=str(kubeconfig), WATCH_NAMESPACE=namespace)
    log = tmp / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulp_operator.cli",
                "run",
                f"--health-address=http://127.0.0.1:{health}/healthz",
                f"--metrics-port={metrics}",
                "--log-level=debug",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait("the operator's health endpoint", lambda: _ok(f"http://127.0.0.1:{health}/healthz"))
        yield Running(
            client,
            namespace,
            operator_ns,
            f"http://127.0.0.1:{metrics}/metrics",
            apiserver.env(),
            log,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for ns in (namespace, operator_ns):
            client.delete(Namespace, ns)
        client.close()


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


def _pulp_manifest(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "repo-manager.pulpproject.org/v1",
        "kind": "Pulp",
        "metadata": {"name": PULP, "namespace": namespace},
        "spec": {
            "file_storage_storage_class": "standard",
            "file_storage_size": "1Gi",
            "file_storage_access_mode": "ReadWriteOnce",
            "cache": {"enabled": True},
            "web": {"replicas": 1},
            **spec,
        },
    }


def _reconciled(r: Running) -> dict[str, Any] | None:
    pulp = r.pulp()
    status = pulp.get("status") or {}
    generation = pulp["metadata"]["generation"]
    return pulp if status.get("observedGeneration") == generation else None


def _reasons(r: Running) -> set[str]:
    pulp = _reconciled(r)
    return {c["reason"] for c in pulp["status"]["conditions"]} if pulp else set()


def test_reconciles_with_the_generated_rbac_and_no_403(running: Running) -> None:
    r = running
    r.client.create(codecs.from_dict(_pulp_manifest(r.namespace, api={"pdb": {"minAvailable": 1}})))
    pulp = wait("the Pulp's status", lambda: _reconciled(r))
    deployments = {
        d.metadata.name for d in r.client.list(Deployment, namespace=r.namespace) if d.metadata
    }
    assert {f"{PULP}-api", f"{PULP}-content", f"{PULP}-worker", f"{PULP}-web"} <= deployments
    assert r.client.get(PodDisruptionBudget, f"{PULP}-api", namespace=r.namespace)
    reasons = {c["type"]: c["reason"] for c in pulp["status"]["conditions"]}
    assert reasons["Ready"] not in ("ApplyFailed",), pulp["status"]
    # A change that prunes (the PDB) and one the API server rejects (limits below requests).
    patch = {
        "spec": {
            "api": {
                "pdb": None,
                "resource_requirements": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
            }
        }
    }
    r.client.patch(PulpResource, PULP, patch, namespace=r.namespace, patch_type=PatchType.MERGE)
    wait("ApplyFailed", lambda: "ApplyFailed" in _reasons(r))
    errors = r.scrape().get("pulp_operator_api_errors_total", {})
    forbidden = {labels: v for labels, v in errors.items() if ("code", "403") in labels}
    assert not forbidden, (
        f"the generated RBAC misses rules: {forbidden}\n{r.log.read_text()[-3000:]}"
    )
    assert any(("code", "422") in labels for labels in errors), errors
    # Back to a valid spec for the other tests.
    r.client.patch(
        PulpResource,
        PULP,
        {"spec": {"api": {"resource_requirements": None}}},
        namespace=r.namespace,
        patch_type=PatchType.MERGE,
    )
    wait("the Pulp without ApplyFailed", lambda: _reasons(r) and "ApplyFailed" not in _reasons(r))


def _can(
    r: Running, verb: str, resource: str, namespace: str, sub: str | None = None, group: str = ""
) -> bool:
    review = SubjectAccessReview(
        spec=SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{r.operator_namespace}:{OPERATOR}",
            groups=["system:serviceaccounts", "system:authenticated"],
            resourceAttributes=ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace, subresource=sub, group=group
            ),
        )
    )
    result = r.client.create(review)
    return bool(result.status and result.status.allowed)


def test_the_account_may_do_nothing_more(running: Running) -> None:
    r = running
    assert _can(r, "patch", "deployments", r.namespace, group="apps")
    assert _can(r, "create", "secrets", r.namespace)
    assert not _can(r, "create", "pods", r.namespace, "exec")
    assert not _can(r, "get", "pods", r.namespace)
    assert not _can(r, "create", "secrets", "default"), "no Secret writes outside its namespaces"
    assert not _can(r, "get", "secrets", ""), "no cluster-wide Secret access"
    assert not _can(r, "list", "namespaces", "")
    assert not _can(r, "delete", "persistentvolumeclaims", r.namespace), "claims hold data"
    leases = "coordination.k8s.io"
    assert _can(r, "update", "leases", r.operator_namespace, group=leases)
    assert not _can(r, "update", "leases", r.namespace, group=leases)


def test_metrics_serve_what_the_alerts_and_dashboard_read(running: Running) -> None:
    r = running
    wait("the Pulp", lambda: _reconciled(r))
    scraped = r.scrape()
    ok = scraped["pulp_operator_reconciles_total"]
    assert ok.get((("result", "ok"),), 0) > 0
    assert scraped["pulp_operator_reconcile_duration_seconds_count"][()] > 0
    applied = {
        dict(k)["kind"]: v for k, v in scraped["pulp_operator_applied_objects_total"].items()
    }
    assert applied.get("Deployment", 0) >= 4
    deleted = {dict(k)["kind"] for k in scraped["pulp_operator_deleted_objects_total"]}
    assert "PodDisruptionBudget" in deleted
    assert scraped["pulp_operator_queue_depth"][()] >= 0
    assert scraped["pulp_operator_queue_wait_seconds_count"][()] > 0
    ready = {
        dict(k)["status"]: v
        for k, v in scraped["pulp_operator_pulp_condition"].items()
        if dict(k)["condition"] == "Ready" and dict(k)["pulp"] == PULP
    }
    assert ready == {"True": 0.0, "False": 1.0, "Unknown": 0.0}  # no pods on this tier
    reasons = {
        dict(k)["reason"]
        for k in scraped["pulp_operator_pulp_condition_reason"]
        if dict(k)["condition"] == "Ready" and dict(k)["namespace"] == r.namespace
    }
    assert len(reasons) == 1, "one reason series per condition"
    # Every pulp_operator_* name the alerts and the dashboard read is served.
    files = [
        REPO / "config/monitoring/prometheusrule.yaml",
        REPO / "config/monitoring/grafana/pulp-operator.json",
    ]
    expressions = json.loads(run(tool("monitoring-check"), *files).stdout)
    read = {m for e in expressions for m in e["metrics"] if m.startswith("pulp_operator_")}
    assert read
    assert read <= set(scraped), f"not served: {read - set(scraped)}"


def _status(r: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulp_operator.cli", "status", *args],
        env=r.admin_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_status_command_reports_the_pulp(running: Running) -> None:
    r = running
    wait("the Pulp", lambda: _reconciled(r))
    out = _status(r, PULP, "-n", r.namespace)
    assert out.returncode == 1, "not Ready on this tier (no pods): exit 1"
    assert f"Pulp {r.namespace}/{PULP}: NOT READY" in out.stdout
    for component in ("api", "content", "worker", "web", "database", "cache"):
        assert f"\n  {component} " in out.stdout, out.stdout
    assert "0/1" in out.stdout
    assert "quay.io/pulp/pulp-minimal:stable" in out.stdout
    assert "desired stable" in out.stdout
    assert "Ready=False" in out.stdout
    everywhere = _status(r, "-A")
    assert f"Pulp {r.namespace}/{PULP}" in everywhere.stdout
    missing = _status(r, "nope", "-n", r.namespace)
    assert missing.returncode == 1
    assert f"Pulp nope not found in namespace {r.namespace}" in missing.stderr
    empty = _status(r, "-n", r.operator_namespace)
    assert empty.returncode == 1
    assert "no Pulp in namespace" in empty.stderr
