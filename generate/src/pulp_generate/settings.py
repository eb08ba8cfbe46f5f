"""The settings of an install, and the project facts every install method shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pulp_operator import __version__

OPERATOR = "pulp-operator"
VERSION = __version__
DEFAULT_NAMESPACE = "pulp-operator-system"
IMAGE_REPOSITORY = "localhost/pulp-operator"
"""The image hack/operator-image/build.sh builds from the Containerfile (no published image)."""
IMAGE_TAG = "latest"
HEALTH_PORT = 8081
METRICS_PORT = 8080
LOG_LEVELS = ("debug", "info", "warning", "error")
CHANNEL = "candidate"
CAPABILITY_LEVEL: Literal[
    "Basic Install", "Seamless Upgrades", "Full Lifecycle", "Deep Insights", "Auto Pilot"
] = "Full Lifecycle"
"""The OLM capability level claimed: only what the tests show (here, and nowhere else). Full
Lifecycle: upgrades without a failed request and operator upgrades that roll only what the
changelog says (tests/e2e/test_upgrade.py, golden render outputs), backup and restore on the
real node (tests/e2e/test_backup.py), recovery from lost pods, objects and operators."""
MIN_KUBE_VERSION = "1.30.0"
"""Every API the manifests and the operator use is GA by 1.29 (CRD validation rules); the tests
run on 1.36."""
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"memory": "512Mi"},
}
COMMON_LABELS = {
    "app.kubernetes.io/name": OPERATOR,
    "app.kubernetes.io/part-of": OPERATOR,
}
SELECTOR = {"app.kubernetes.io/name": OPERATOR}

InstallMode = Literal["namespaced", "cluster-wide"]


@dataclass(frozen=True)
class Install:
    """One install: the same settings give the same objects with kustomize, Helm and OLM."""

    namespace: str = DEFAULT_NAMESPACE
    mode: InstallMode = "namespaced"
    watch_namespaces: tuple[str, ...] = ()
    """Namespaces watched in the namespaced mode; none means the operator's own namespace."""
    image: str = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
    image_pull_policy: str = "IfNotPresent"
    resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    metrics: bool = True
    """A Service for the metrics endpoint."""
    metrics_port: int = METRICS_PORT
    log_level: str = "info"

    @property
    def watched(self) -> tuple[str, ...]:
        """The namespaces watched; empty for all."""
        if self.mode == "cluster-wide":
            return ()
        return self.watch_namespaces or (self.namespace,)
