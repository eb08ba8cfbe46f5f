"""The kustomize tree under config/: a base (config/default) and two overlays.

config/default      CRDs, the ServiceAccount, the leader-election Role, the manager Deployment, the
                    metrics Service and the namespace (pulp-operator-system)
config/overlays/namespaced     + a Role and RoleBinding in each watched namespace (by default the
                               operator's own), WATCH_NAMESPACE set to them
config/overlays/cluster-wide   + a ClusterRole and ClusterRoleBinding, WATCH_NAMESPACE empty (all)
config/monitoring   ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap (for clusters with
                    the Prometheus operator)

`overlay` writes an overlay for any other settings (`make deploy`, the end-to-end test): it
refers to config/default and patches only what differs from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pulp_operator.api.crd import KINDS, crd, crd_filename
from pulp_operator.api.crd import to_yaml as crd_yaml

from . import monitoring, objects
from .files import Files, yaml_documents, yaml_file
from .settings import DEFAULT_NAMESPACE, IMAGE_REPOSITORY, OPERATOR, Install

BASE = Install()
CLUSTER_WIDE = Install(mode="cluster-wide")


def _kustomization(**fields: Any) -> str:
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}
    return yaml_file(body, sort_keys=False)


def base_files() -> Files:
    files: Files = {}
    for kind in KINDS:
        files[f"config/crd/{crd_filename(kind)}"] = crd_yaml(crd(kind))
    files["config/crd/kustomization.yaml"] = _kustomization(
        resources=[crd_filename(kind) for kind in KINDS]
    )
    rbac = {
        "service_account.yaml": objects.service_account(BASE),
        "leader_election_role.yaml": objects.leader_election_rbac(BASE)[0],
        "leader_election_role_binding.yaml": objects.leader_election_rbac(BASE)[1],
    }
    for name, obj in rbac.items():
        files[f"config/rbac/{name}"] = yaml_file(obj)
    files["config/rbac/kustomization.yaml"] = _kustomization(resources=list(rbac))
    manager = {
        "namespace.yaml": objects.namespace(BASE),
        "deployment.yaml": objects.deployment(BASE),
        "metrics_service.yaml": objects.metrics_service(BASE),
    }
    for name, obj in manager.items():
        files[f"config/manager/{name}"] = yaml_file(obj)
    files["config/manager/kustomization.yaml"] = _kustomization(resources=list(manager))
    files["config/default/kustomization.yaml"] = _kustomization(
        resources=["../crd", "../rbac", "../manager"]
    )
    files.update(overlay_files(BASE, "../../default", "config/overlays/namespaced"))
    files.update(overlay_files(CLUSTER_WIDE, "../../default", "config/overlays/cluster-wide"))
    files.update(monitoring_files())
    return files


def monitoring_files() -> Files:
    files: Files = {
        "config/monitoring/servicemonitor.yaml": yaml_file(monitoring.service_monitor(BASE)),
        "config/monitoring/prometheusrule.yaml": yaml_file(monitoring.prometheus_rule(BASE)),
        "config/monitoring/grafana/pulp-operator.json": monitoring.dashboard_json(),
    }
    files["config/monitoring/kustomization.yaml"] = _kustomization(
        resources=["servicemonitor.yaml", "prometheusrule.yaml"],
        configMapGenerator=[
            {
                "name": f"{OPERATOR}-dashboard",
                "namespace": DEFAULT_NAMESPACE,
                "files": ["grafana/pulp-operator.json"],
                "options": {
                    "disableNameSuffixHash": True,
                    # The label Grafana's dashboard sidecar looks for.
                    "labels": {"grafana_dashboard": "1", **objects.meta("")["labels"]},
                },
            }
        ],
    )
    return files


def _image_entry(image: str) -> dict[str, str]:
    """kustomize's images: entry that replaces the base image by `image`."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return {"name": IMAGE_REPOSITORY, "newName": repository, "digest": digest}
    repository, colon, tag = image.rpartition(":")
    if colon and "/" not in tag:
        return {"name": IMAGE_REPOSITORY, "newName": repository, "newTag": tag}
    return {"name": IMAGE_REPOSITORY, "newName": image}


def _container_patch(install: Install) -> dict[str, Any] | None:
    """A strategic-merge patch of the operator container for the settings that differ."""
    container: dict[str, Any] = {}
    if install.image_pull_policy != BASE.image_pull_policy:
        container["imagePullPolicy"] = install.image_pull_policy
    if objects.container_args(install) != objects.container_args(BASE):
        container["args"] = objects.container_args(install)
    if install.resources != BASE.resources:
        container["resources"] = {**install.resources, "$patch": "replace"}
    base_watch = objects.watch_namespace_env(BASE)
    if objects.watch_namespace_env(install) != base_watch:
        container["env"] = [objects.watch_namespace_env(install)]
    if not container:
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": OPERATOR, "namespace": DEFAULT_NAMESPACE},
        "spec": {"template": {"spec": {"containers": [{"name": "operator", **container}]}}},
    }


def _operator_layer(install: Install, base: str) -> dict[str, Any]:
    """The fields of the kustomization that turns config/default into the operator's part."""
    fields: dict[str, Any] = {"resources": [base]}
    if install.image != BASE.image:
        fields["images"] = [_image_entry(install.image)]
    patches: list[dict[str, Any]] = []
    container = _container_patch(install)
    if container is not None:
        patches.append({"patch": yaml_file(container, header=False)})
    if install.metrics_port != BASE.metrics_port:
        target = {"kind": "Deployment", "name": OPERATOR}
        ops = [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/ports/1/containerPort",
                "value": install.metrics_port,
            }
        ]
        patches.append({"target": target, "patch": yaml_file(ops, header=False)})
        service_ops = [
            {"op": "replace", "path": "/spec/ports/0/port", "value": install.metrics_port}
        ]
        patches.append(
            {
                "target": {"kind": "Service", "name": objects.METRICS_SERVICE},
                "patch": yaml_file(service_ops, header=False),
            }
        )
    if not install.metrics:
        gone = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": objects.METRICS_SERVICE, "namespace": DEFAULT_NAMESPACE},
            "$patch": "delete",
        }
        patches.append({"patch": yaml_file(gone, header=False)})
    if patches:
        fields["patches"] = patches
    return fields


def overlay_files(install: Install, base: str, directory: str) -> Files:
    """An overlay of config/default (at `base`, relative to `directory`: kustomize accepts no
    absolute paths) for the
    settings of `install`: the operator's part, then the RBAC of the watched namespaces."""
    files: Files = {}
    layer = _operator_layer(install, base)
    resources: list[str]
    if install.namespace != DEFAULT_NAMESPACE:
        # kustomize moves everything of the operator's part into the namespace (the RoleBinding
        # subjects too); the watched namespaces' RBAC stays outside it, in its own namespaces.
        inner = {**layer, "resources": [f"../{base}"]}
        files[f"{directory}/operator/kustomization.yaml"] = _kustomization(
            namespace=install.namespace, **inner
        )
        resources = ["operator"]
        extra: dict[str, Any] = {}
    else:
        resources = list(layer.pop("resources"))
        extra = layer
    rbac_file = "cluster_rbac.yaml" if install.mode == "cluster-wide" else "watch_rbac.yaml"
    files[f"{directory}/{rbac_file}"] = yaml_documents(objects.watch_rbac(install))
    files[f"{directory}/kustomization.yaml"] = _kustomization(
        resources=[*resources, rbac_file], **extra
    )
    return files


def write_overlay(install: Install, base: Path, directory: Path) -> Files:
    """Write an overlay for `install` into `directory` (for `make deploy` and the tests)."""
    directory.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(base.resolve(), directory.resolve())
    files = overlay_files(install, relative, ".")
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return files
