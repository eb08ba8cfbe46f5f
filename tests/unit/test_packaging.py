"""Generated install artefacts: up to date, RBAC that matches the calls, docs that cannot drift."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pulp_generate import __main__ as generate
from pulp_generate import docs, objects
from pulp_generate.files import stale
from pulp_generate.settings import Install
from pulp_operator import kube, operator, permissions, statusview
from pulp_operator.cli import watched_namespaces

REPO = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    found = stale(REPO, generate.all_files(REPO), generate.OWNED_DIRS)
    assert not found, f"stale generated files (run `make generate`): {found}"


def test_a_hand_edit_is_reported_as_stale(tmp_path: Path) -> None:
    files = {"config/rbac/service_account.yaml": "x: 1\n"}
    (tmp_path / "config/rbac").mkdir(parents=True)
    (tmp_path / "config/rbac/service_account.yaml").write_text("x: 2\n")
    (tmp_path / "config/rbac/extra.yaml").write_text("y: 1\n")
    found = stale(tmp_path, files, ["config/rbac"])
    assert found[0] == "config/rbac/service_account.yaml"
    assert "config/rbac/extra.yaml" in found[1]


def test_every_field_of_the_three_kinds_has_a_description() -> None:
    assert docs.undocumented_fields() == []


def test_reference_lists_every_field_with_type_and_default() -> None:
    text = (REPO / docs.REFERENCE).read_text()
    assert (
        '| `postgres_storage_requirements` | quantity greater than 0 (e.g. 8Gi) | `"8Gi"` |' in text
    )
    assert "`IfNotPresent`, `Always`, `Never`" in text
    for kind in ("Pulp spec", "PulpBackup spec", "PulpRestore spec", "Pulp status"):
        assert f"### {kind} " in text


def test_every_condition_reason_the_code_sets_is_explained() -> None:
    missing, obsolete = docs.reason_drift(REPO / "src" / "pulp_operator")
    assert missing == [], (
        f"reasons without an entry in pulp_generate/assets/reasons.yaml: {missing}"
    )
    assert obsolete == [], f"entries for reasons the code no longer sets: {obsolete}"


def test_reason_extraction_finds_literals_patterns_and_branches(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "m.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            @dataclass
            class Check:
                type: str
                ok: bool
                reason: str
                message: str

            class Problems:
                def add(self, field, reason, message): ...

            def other(text): ...

            def f(label, problems, ok):
                Check("X", False, "BrandNew", "m")
                Check("X", False, f"{label}Gone", "m")
                problems.add("spec.x", "AlsoNew", "m")
                problems.add("spec.x", message="m", reason="ByKeyword")
                Check("Y", ok, "Up" if ok else "Down", "m")
                other("NotAReason")
            """
        )
    )
    found = {r.pattern for r in docs.condition_reasons(package)}
    assert found == {"BrandNew", "<Label>Gone", "AlsoNew", "ByKeyword", "Up", "Down"}


# --- RBAC ---------------------------------------------------------------------------------------


def _verbs(group: str, resource: str) -> set[str]:
    return {
        v for a in permissions.ACCESS if (a.group, a.resource) == (group, resource) for v in a.verbs
    }


def test_rbac_grants_what_the_operator_calls() -> None:
    for cls in kube.OWNED_KINDS:
        info = cls._api_info
        verbs = _verbs(info.resource.group, info.plural)
        assert {"list", "watch", "create", "patch"} <= verbs, info
        if info.resource.kind != "PersistentVolumeClaim":  # never pruned
            assert "delete" in verbs, info
    for watch in operator.WATCHES:
        assert {"list", "watch"} <= _verbs(watch.group, watch.plural), watch
    # a PulpRestore creates the Pulp it restores and patches its spec
    assert _verbs("repo-manager.pulpproject.org", "pulps") == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
    }
    for kind in ("pulpbackups", "pulprestores"):
        assert _verbs("repo-manager.pulpproject.org", kind) == {"get", "list", "watch"}
        assert _verbs("repo-manager.pulpproject.org", f"{kind}/status") == {"patch"}
    assert _verbs("repo-manager.pulpproject.org", "pulps/status") == {"patch"}
    assert _verbs("", "events") == {"create", "list"}
    assert _verbs("", "persistentvolumeclaims") & {"delete"} == set()


def test_rbac_grants_nothing_dangerous() -> None:
    for access in permissions.ACCESS:
        assert "*" not in access.verbs
        assert access.resource != "*"
        if access.resource.startswith("pods"):  # read the backup Jobs' pods, nothing more
            assert access.resource == "pods", "no pods/exec, pods/log..."
            assert set(access.verbs) <= {"get", "list", "watch"}, "pods are only read"
        assert {"escalate", "bind", "impersonate"}.isdisjoint(access.verbs)
    assert _verbs("", "secrets") <= {"get", "list", "watch", "create", "patch", "delete"}


def test_namespaced_install_has_no_cluster_scoped_rbac() -> None:
    install = Install(watch_namespaces=("a", "b"))
    kinds = {o["kind"] for o in objects.install_objects(install, crds=False)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = [o for o in objects.watch_rbac(install) if o["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    leader = objects.leader_election_rbac(install)[0]
    assert leader["metadata"]["namespace"] == install.namespace
    assert leader["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]


def test_cluster_wide_install_binds_one_cluster_role() -> None:
    rbac = objects.watch_rbac(Install(mode="cluster-wide"))
    assert [o["kind"] for o in rbac] == ["ClusterRole", "ClusterRoleBinding"]
    assert rbac[0]["rules"] == permissions.rules("watched")
    dep = objects.deployment(Install(mode="cluster-wide"))
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "WATCH_NAMESPACE", "value": ""}]


def test_rules_merge_resources_with_the_same_verbs() -> None:
    rules = permissions.rules(
        "watched",
        [
            permissions.Access("apps", "deployments", ("list", "watch"), ""),
            permissions.Access("apps", "statefulsets", ("watch", "list"), ""),
            permissions.Access("apps", "daemonsets", ("get",), ""),
        ],
    )
    assert rules == [
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "statefulsets"],
            "verbs": ["list", "watch"],
        },
    ]


@pytest.mark.parametrize(
    ("namespaces", "needed"),
    [((), False), (("pulp",), False), (("a", "b"), False), (("pulp-*",), True), (("!x",), True)],
)
def test_kopf_scans_namespaces_only_for_globs(namespaces: tuple[str, ...], needed: bool) -> None:
    assert permissions.scanning_needed(namespaces) is needed


# --- the run command's namespaces ----------------------------------------------------------------


def test_watch_namespace_env_as_olm_sets_it() -> None:
    assert watched_namespaces(None, False, {"WATCH_NAMESPACE": "a,b"}) == (("a", "b"), False)
    assert watched_namespaces(None, False, {"WATCH_NAMESPACE": ""}) == ((), True)
    assert watched_namespaces(["x"], False, {"WATCH_NAMESPACE": "a"}) == (("x",), False)
    assert watched_namespaces(None, True, {}) == ((), True)
    assert isinstance(watched_namespaces(None, False, {}), str)
    assert isinstance(watched_namespaces(["x"], True, {}), str)


# --- pulp-operator status ------------------------------------------------------------------------


def _pulp(
    conditions: list[dict[str, str]], generation: int = 2, observed: int = 2
) -> dict[str, object]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "generation": generation},
        "spec": {"image_version": "3.123.1", "file_storage_storage_class": "x"},
        "status": {
            "observedGeneration": observed,
            "version": "3.122.0",
            "url": "http://p-web-svc.ns.svc.cluster.local:24880",
            "conditions": conditions,
        },
    }


def _deployment(component: str, ready: int, replicas: int) -> dict[str, object]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": f"p-{component}",
            "labels": {"app.kubernetes.io/component": component},
        },
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"image": "quay.io/pulp/pulp-minimal:3.122.0"}]}},
        },
        "status": {"availableReplicas": ready},
    }


def test_status_report_shows_components_versions_and_failing_conditions() -> None:
    pulp = _pulp(
        [
            {"type": "Ready", "status": "False", "reason": "WorkerNotReady", "message": "1/2"},
            {"type": "Progressing", "status": "True", "reason": "Progressing", "message": "x"},
            {"type": "Degraded", "status": "False", "reason": "NotDegraded", "message": "ok"},
            {"type": "APIReady", "status": "True", "reason": "APIReady", "message": "ok"},
            {
                "type": "WorkerReady",
                "status": "False",
                "reason": "WorkerNotReady",
                "message": "1/2",
            },
        ]
    )
    report = statusview.report_of(pulp, [_deployment("worker", 1, 2), _deployment("api", 1, 1)])
    assert not report.ready
    text = statusview.format_report(report)
    assert "Pulp ns/p: NOT READY (WorkerNotReady)" in text
    assert "running 3.122.0, desired 3.123.1 (upgrading)" in text
    assert text.index("p-api") < text.index("p-worker"), "components in pipeline order"
    assert "worker     Deployment  p-worker  1/2" in text
    assert "WorkerReady=False WorkerNotReady: 1/2" in text
    assert "APIReady=" not in text
    assert "Progressing=" not in text


def test_status_report_of_a_ready_pulp_and_of_a_stale_status() -> None:
    ready = [{"type": "Ready", "status": "True", "reason": "Ready", "message": "all"}]
    assert statusview.report_of(_pulp(ready), []).ready
    stale_report = statusview.report_of(_pulp(ready, generation=3, observed=2), [])
    assert not stale_report.ready
    assert "StaleStatus" in statusview.format_report(stale_report)
    assert not statusview.report_of(_pulp([]), []).ready


def test_documentation_links_resolve() -> None:
    import re

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name}: dead link {target}"


def test_status_without_a_cluster_configuration_says_so(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    out = subprocess.run(
        [sys.executable, "-m", "pulp_operator.cli", "status", "-A"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: no cluster configuration"), out.stderr
