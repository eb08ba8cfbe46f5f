"""Local Kubernetes control planes (etcd + kube-apiserver, optionally controllers + kwok nodes)
and their audit logs.

Used by the test fixtures in tests/conftest.py and by ``python -m pulp_devcluster``.
The binaries are built by hack/testbin/build.sh (``make testbin``).
"""

from pulp_devcluster.audit import AuditEntry, AuditLog
from pulp_devcluster.controlplane import (
    K8S_VERSION,
    TIERS,
    ClusterInfo,
    ControlPlane,
    DevClusterError,
    MissingBinaryError,
    Tier,
    check_binaries,
    cleanup_stale_runs,
    default_runs_dir,
    default_testbin_dir,
    install_crds,
    load_crd_documents,
    make_client,
    stop_from_state_dir,
)

__all__ = [
    "K8S_VERSION",
    "TIERS",
    "AuditEntry",
    "AuditLog",
    "ClusterInfo",
    "ControlPlane",
    "DevClusterError",
    "MissingBinaryError",
    "Tier",
    "check_binaries",
    "cleanup_stale_runs",
    "default_runs_dir",
    "default_testbin_dir",
    "install_crds",
    "load_crd_documents",
    "make_client",
    "stop_from_state_dir",
]
