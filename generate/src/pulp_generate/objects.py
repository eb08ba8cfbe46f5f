"""The Kubernetes objects of an operator install, from its settings and the operator's sources.

kustomize, the Helm chart and the OLM bundle all take their objects from here: the Deployment and
the RBAC are written once.
"""

from __future__ import annotations

from typing import Any

from pulp_operator import permissions
from pulp_operator.api.crd import all_crds

from .settings import (
    COMMON_LABELS,
    HEALTH_PORT,
    OPERATOR,
    SELECTOR,
    Install,
)

Obj = dict[str, Any]

LEADER_ELECTION = f"{OPERATOR}-leader-election"
METRICS_SERVICE = f"{OPERATOR}-metrics"
WATCH_NAMESPACE = "WATCH_NAMESPACE"


def meta(name: str, namespace: str | None = None, **extra: Any) -> Obj:
    out: Obj = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = dict(COMMON_LABELS)
    out.update(extra)
    return out


def namespace(install: Install) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(install.namespace)}


def service_account(install: Install) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(OPERATOR, install.namespace),
    }


def _subjects(install: Install) -> list[Obj]:
    return [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": install.namespace}]


def role(name: str, namespace: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(name, namespace),
        "rules": rules,
    }


def role_binding(name: str, namespace: str, install: Install, kind: str = "Role") -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": _subjects(install),
    }


def leader_election_rbac(install: Install) -> list[Obj]:
    """Rights in the operator's own namespace (scope ``own``)."""
    return [
        role(LEADER_ELECTION, install.namespace, permissions.rules("own")),
        role_binding(LEADER_ELECTION, install.namespace, install),
    ]


def watch_rbac(install: Install) -> list[Obj]:
    """Rights in the watched namespaces: a Role and RoleBinding each, or one ClusterRole."""
    rules = permissions.rules("watched")
    if install.mode == "cluster-wide":
        return [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": meta(OPERATOR),
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": meta(OPERATOR),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": OPERATOR,
                },
                "subjects": _subjects(install),
            },
        ]
    out: list[Obj] = []
    for ns in install.watched:
        out += [role(OPERATOR, ns, rules), role_binding(OPERATOR, ns, install)]
    return out


def container_args(install: Install) -> list[str]:
    return [
        "run",
        f"--health-address=http://0.0.0.0:{HEALTH_PORT}/healthz",
        f"--metrics-port={install.metrics_port}",
        f"--log-level={install.log_level}",
        "--leader-elect",
    ]


def watch_namespace_env(install: Install) -> Obj:
    return {"name": WATCH_NAMESPACE, "value": ",".join(install.watched)}


def pod_spec(install: Install, env: list[Obj]) -> Obj:
    return {
        "serviceAccountName": OPERATOR,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "operator",
                "image": install.image,
                "imagePullPolicy": install.image_pull_policy,
                "args": container_args(install),
                "env": env,
                "ports": [
                    {"name": "health", "containerPort": HEALTH_PORT},
                    {"name": "metrics", "containerPort": install.metrics_port},
                ],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "health"},
                    "periodSeconds": 20,
                },
                "readinessProbe": {  # /readyz also fails while the API server does not answer
                    "httpGet": {"path": "/readyz", "port": "health"},
                    "periodSeconds": 10,
                },
                "resources": install.resources,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def deployment_spec(install: Install, env: list[Obj] | None = None) -> Obj:
    # Two replicas with leader election (a Lease in the operator's namespace): one works, the
    # other keeps its cache warm and takes over within 15 s.
    return {
        "replicas": 2,
        "selector": {"matchLabels": dict(SELECTOR)},
        "template": {
            "metadata": {"labels": dict(COMMON_LABELS)},
            "spec": pod_spec(install, env if env is not None else [watch_namespace_env(install)]),
        },
    }


def deployment(install: Install) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(OPERATOR, install.namespace),
        "spec": deployment_spec(install),
    }


def metrics_service(install: Install) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(METRICS_SERVICE, install.namespace),
        "spec": {
            "selector": dict(SELECTOR),
            "ports": [{"name": "metrics", "port": install.metrics_port, "targetPort": "metrics"}],
        },
    }


def install_objects(
    install: Install, *, crds: bool = True, with_namespace: bool = True
) -> list[Obj]:
    """Every object of an install, in apply order."""
    out: list[Obj] = list(all_crds()) if crds else []
    if with_namespace:
        out.append(namespace(install))
    out += [service_account(install), *leader_election_rbac(install), *watch_rbac(install)]
    out.append(deployment(install))
    if install.metrics:
        out.append(metrics_service(install))
    return out
