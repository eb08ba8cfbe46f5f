"""The install artefacts with their own tools: helm lint and template, kubectl kustomize, the OLM
bundle validators, Prometheus' PromQL parser; the manifests against the API server (server-side
dry run) and the chart compared with kustomize for the same settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from pulp_devcluster import ClusterInfo, make_client
from pulp_generate import kustomize, monitoring, objects
from pulp_generate.settings import Install

from ..packaging_tools import (
    REPO,
    documents,
    helm_template,
    key,
    kubectl,
    kustomize_build,
    run,
    tool,
)

SETTINGS = {
    "default": Install(),
    "two-namespaces": Install(
        namespace="ops",
        watch_namespaces=("team-a", "team-b"),
        image="registry.example.com/pulp/pulp-operator:0.1.0",
        image_pull_policy="Always",
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}},
        metrics_port=9090,
        log_level="debug",
    ),
    "cluster-wide": Install(mode="cluster-wide", namespace="pulp-operators"),
    "no-metrics-service": Install(metrics=False, image="localhost/pulp-operator:dev"),
}


def without_namespace_objects(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    """By key; the Namespace object is kustomize's only (Helm installs into an existing one)."""
    return {key(o): o for o in objs if o["kind"] != "Namespace"}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_chart_and_kustomize_give_the_same_objects(name: str, tmp_path: Path) -> None:
    install = SETTINGS[name]
    from_helm = without_namespace_objects(helm_template(install, tmp_path))
    from_kustomize = without_namespace_objects(kustomize_build(install, tmp_path))
    expected = without_namespace_objects(objects.install_objects(install))
    assert sorted(from_helm) == sorted(expected)
    assert sorted(from_kustomize) == sorted(expected)
    for k, obj in expected.items():
        assert from_helm[k] == obj, f"helm: {k}"
        assert from_kustomize[k] == obj, f"kustomize: {k}"


def test_checked_in_overlays_build() -> None:
    for overlay, install in (
        ("config/overlays/namespaced", kustomize.BASE),
        ("config/overlays/cluster-wide", kustomize.CLUSTER_WIDE),
    ):
        built = documents(run(kubectl(), "kustomize", REPO / overlay).stdout)
        assert {key(o): o for o in built} == {key(o): o for o in objects.install_objects(install)}
    built = documents(run(kubectl(), "kustomize", REPO / "config/monitoring").stdout)
    assert sorted(o["kind"] for o in built) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]


def test_helm_lint_strict_and_the_values_schema() -> None:
    helm = tool("helm")
    out = run(helm, "lint", "--strict", REPO / "charts/pulp-operator")
    assert "0 chart(s) failed" in out.stdout
    for bad, field in (
        ("logLevel=loud", "logLevel"),
        ("watch.namespaces[0]=Not_A_Name", "namespaces"),
        ("metrics.port=0", "port"),
        ("imageTypo=x", "imageTypo"),
    ):
        out = run(
            helm, "lint", "--strict", REPO / "charts/pulp-operator", "--set", bad, check=False
        )
        assert out.returncode != 0, bad
        assert field in out.stdout + out.stderr, (bad, out.stdout, out.stderr)


def test_chart_renders_the_monitoring_kit_when_asked(tmp_path: Path) -> None:
    objs = helm_template(
        Install(),
        tmp_path,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.dashboard.enabled=true",
    )
    by_kind = {o["kind"]: o for o in objs}
    assert by_kind["PrometheusRule"] == monitoring.prometheus_rule(Install())
    assert by_kind["ServiceMonitor"] == monitoring.service_monitor(Install())
    dashboard = json.loads(by_kind["ConfigMap"]["data"]["pulp-operator.json"])
    assert dashboard == monitoring.dashboard()


def test_bundle_passes_the_olm_validators() -> None:
    out = run(tool("bundle-validate"), REPO / "bundle")
    print(out.stdout)
    assert "0 errors" in out.stdout


def test_bundle_validator_fails_on_errors(tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(REPO / "bundle", broken)
    csv_path = broken / "manifests/pulp-operator.clusterserviceversion.yaml"
    csv = yaml.safe_load(csv_path.read_text())
    del csv["spec"]["icon"]
    csv["spec"]["customresourcedefinitions"]["owned"].pop()
    csv_path.write_text(yaml.safe_dump(csv))
    out = run(tool("bundle-validate"), broken, check=False)
    assert out.returncode == 1, out.stdout
    assert "ERROR" in out.stdout


def test_bundle_content() -> None:
    csv = yaml.safe_load(
        (REPO / "bundle/manifests/pulp-operator.clusterserviceversion.yaml").read_text()
    )
    examples = json.loads(csv["metadata"]["annotations"]["alm-examples"])
    assert sorted(e["kind"] for e in examples) == ["Pulp", "PulpBackup", "PulpRestore"]
    spec = csv["spec"]
    container = spec["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["env"] == [
        {
            "name": "WATCH_NAMESPACE",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['olm.targetNamespaces']"}
            },
        }
    ]
    assert {m["type"] for m in spec["installModes"] if m["supported"]} == {
        "OwnNamespace",
        "SingleNamespace",
        "MultiNamespace",
        "AllNamespaces",
    }
    images = {i["name"]: i["image"] for i in spec["relatedImages"]}
    assert images["postgres"] == "postgres:15"
    assert images["pulp-minimal"] == "quay.io/pulp/pulp-minimal:stable"
    assert "clusterPermissions" not in spec["install"]["spec"]


MONITORING_FILES = (
    "config/monitoring/prometheusrule.yaml",
    "config/monitoring/servicemonitor.yaml",
    "config/monitoring/grafana/pulp-operator.json",
)


def check_monitoring(*files: Path) -> list[dict[str, Any]]:
    out = run(tool("monitoring-check"), *files, check=False)
    assert out.returncode == 0, out.stderr
    expressions: list[dict[str, Any]] = json.loads(out.stdout)
    return expressions


def test_alerts_and_dashboard_parse_with_the_promql_parser() -> None:
    expressions = check_monitoring(*(REPO / f for f in MONITORING_FILES))
    alerts = {e["where"].split("/", 1)[1] for e in expressions if e["where"].startswith("pulp-")}
    assert alerts == {a.name for a in monitoring.ALERTS}
    rule = yaml.safe_load((REPO / MONITORING_FILES[0]).read_text())
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"]
    dashboard_targets = [e for e in expressions if e["where"].startswith("panel")]
    assert len(dashboard_targets) == sum(len(p.targets) for p in monitoring.PANELS)


def test_monitoring_checker_rejects_bad_input(tmp_path: Path) -> None:
    bad_expr = monitoring.prometheus_rule(Install())
    bad_expr["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(x[5m]) by"
    bad_field = monitoring.service_monitor(Install())
    bad_field["spec"]["endpoints"][0]["intervall"] = "30s"
    for name, obj in (("expr.yaml", bad_expr), ("field.yaml", bad_field)):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(obj))
        out = run(tool("monitoring-check"), path, check=False)
        assert out.returncode == 1, name
        assert "ERROR" in out.stderr


# --- against the API server ---------------------------------------------------------------------


def _namespace(client: Client, name: str) -> None:
    try:
        client.create(Namespace(metadata=ObjectMeta(name=name)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise


@pytest.mark.apiserver
@pytest.mark.parametrize("source", ["helm", "kustomize"])
@pytest.mark.parametrize("mode", ["namespaced", "cluster-wide"])
def test_manifests_pass_a_server_side_dry_run(
    apiserver: ClusterInfo, api_namespace: str, tmp_path: Path, source: str, mode: str
) -> None:
    install = Install(
        namespace=api_namespace,
        mode=mode,  # type: ignore[arg-type]
        watch_namespaces=(api_namespace, f"{api_namespace}-w") if mode == "namespaced" else (),
    )
    client = make_client(apiserver.kubeconfig, "pulp-operator-tests")
    dry = Client(  # every request of this client is dryRun=All
        config=KubeConfig.from_file(apiserver.kubeconfig),
        field_manager="pulp-operator-tests",
        dry_run=True,
        trust_env=False,
    )
    try:
        for ns in install.watched or (api_namespace,):
            _namespace(client, ns)
        objs = (
            helm_template(install, tmp_path)
            if source == "helm"
            else kustomize_build(install, tmp_path)
        )
        assert objs
        for obj in objs:
            if obj["kind"] == "Namespace":
                continue
            resource = codecs.from_dict(obj)
            try:
                dry.apply(resource, force=True)
            except ApiError as exc:
                raise AssertionError(f"{key(obj)} rejected: {exc.status.message}") from exc
    finally:
        if mode == "namespaced":
            client.delete(Namespace, f"{api_namespace}-w")
        client.close()
        dry.close()
