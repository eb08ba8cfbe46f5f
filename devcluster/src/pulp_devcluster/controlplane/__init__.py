"""A local Kubernetes control plane on loopback, built from the binaries of hack/testbin.

Two tiers:

* ``apiserver``: etcd + kube-apiserver. Real API semantics (validation, CRDs, resourceVersion
  conflicts, server-side apply, RBAC), but no controllers: nothing reconciles Deployments, Jobs or
  ownerReferences.
* ``cluster``: additionally kube-controller-manager, kube-scheduler and kwok with fake Nodes, so
  Deployments roll out, Pods become Running/Ready (without containers), Jobs complete and the
  garbage collector deletes owned objects.

Every child process runs in its own process group with ``PR_SET_PDEATHSIG`` so it dies with the
process that started it; runs are recorded in a registry directory so that processes left behind
by a crashed run are cleaned up by the next start (only after checking ``/proc/<pid>/cmdline``).
"""

from pulp_devcluster.controlplane.plane import ClusterInfo, ControlPlane
from pulp_devcluster.controlplane.runs import (
    cleanup_stale_runs,
    running_owner,
    stop_from_state_dir,
)
from pulp_devcluster.controlplane.settings import (
    APISERVER_BINARIES,
    CLUSTER_BINARIES,
    K8S_VERSION,
    KWOK_NODE_ANNOTATION,
    KWOK_NODE_ANNOTATION_VALUE,
    KWOK_STAGES_FILE,
    NODE_ALLOCATABLE,
    POD_CIDR,
    SERVICE_CLUSTER_IP_RANGE,
    TIERS,
    Tier,
    cast_tier,
    check_binaries,
    default_runs_dir,
    default_testbin_dir,
    required_files,
)
from pulp_devcluster.errors import DevClusterError, MissingBinaryError
from pulp_devcluster.kubeapi import (
    FIELD_MANAGER,
    install_crds,
    load_crd_documents,
    make_client,
    sanitize_name,
)
from pulp_devcluster.processes import (
    ProcessRecord,
    free_ports,
    pid_alive,
    port_is_free,
    proc_cmdline,
    proc_start_time,
)

__all__ = [
    "APISERVER_BINARIES",
    "CLUSTER_BINARIES",
    "FIELD_MANAGER",
    "K8S_VERSION",
    "KWOK_NODE_ANNOTATION",
    "KWOK_NODE_ANNOTATION_VALUE",
    "KWOK_STAGES_FILE",
    "NODE_ALLOCATABLE",
    "POD_CIDR",
    "SERVICE_CLUSTER_IP_RANGE",
    "TIERS",
    "ClusterInfo",
    "ControlPlane",
    "DevClusterError",
    "MissingBinaryError",
    "ProcessRecord",
    "Tier",
    "cast_tier",
    "check_binaries",
    "cleanup_stale_runs",
    "default_runs_dir",
    "default_testbin_dir",
    "free_ports",
    "install_crds",
    "load_crd_documents",
    "make_client",
    "pid_alive",
    "port_is_free",
    "proc_cmdline",
    "proc_start_time",
    "required_files",
    "running_owner",
    "sanitize_name",
    "stop_from_state_dir",
]
