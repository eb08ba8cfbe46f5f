"""Names, addresses and versions of the node, where its binaries come from, and the check that
they are all there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pulp_devcluster.controlplane.settings import default_runs_dir, default_testbin_dir
from pulp_devcluster.errors import MissingBinaryError

NODE_NAME = "pulp-node"
BRIDGE = "pulpbr0"
POD_CIDR = "10.88.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
#: ClusterIP of kube-system/kube-dns (the kubelet's clusterDNS), in SERVICE_CLUSTER_IP_RANGE.
DNS_SERVICE_IP = "10.0.0.10"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
COREDNS_VERSION = "v1.15.0"  # keep in sync with hack/node/build.sh
#: Every cgroup of the node (kubepods, pods, containers) lives below /<CGROUP_ROOT>.
CGROUP_ROOT = "pulp-devcluster-node"
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
K8S_NAMESPACE = "k8s.io"  # containerd namespace of the CRI plugin
FIELD_MANAGER = "pulp-operator-devcluster-node"
#: Marks the /etc/hosts line the node adds (followed by the state dir).
HOSTS_MARKER = "# pulp-operator devcluster node"
#: Default StorageClass of the node: PVCs get hostPath PVs in <state dir>/volumes, made by a
#: small provisioner process of the node (``python -m pulp_devcluster.node provision``).
STORAGE_CLASS = "standard"
PROVISIONER = "pulp-operator.local/hostpath"
#: Busybox test image built by ``hack/node/build.sh busybox``.
TEST_IMAGE = "localhost/pulp-e2e/busybox:1"

#: Host tools the node needs (Debian packages: containerd, runc, iptables, iproute2).
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "ip")

_NODEBIN_ENV = "PULP_OPERATOR_NODEBIN"
_IMAGES_ENV = "PULP_OPERATOR_IMAGES"


def default_nodebin_dir() -> Path:
    """Where hack/node/build.sh puts CoreDNS and the test image: $PULP_OPERATOR_NODEBIN."""
    env = os.environ.get(_NODEBIN_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pulp-operator" / "node"


def default_images_dir() -> Path:
    """The image cache of hack/images/build.sh: $PULP_OPERATOR_IMAGES."""
    env = os.environ.get(_IMAGES_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pulp-operator" / "images"


def default_node_runs_dir() -> Path:
    """Registry of running nodes (one JSON file each), used by :func:`cleanup_stale`."""
    return default_runs_dir().parent / "nodes"


def coredns_binary(nodebin: Path | None = None) -> Path:
    return (nodebin or default_nodebin_dir()) / f"coredns-{COREDNS_VERSION}" / "coredns"


def busybox_image_archive(nodebin: Path | None = None) -> Path:
    """The busybox OCI archive (image :data:`TEST_IMAGE`) of ``hack/node/build.sh busybox``."""
    return (nodebin or default_nodebin_dir()) / "images" / "busybox.oci.tar"


def check_node_prerequisites(testbin: Path | None = None, nodebin: Path | None = None) -> None:
    """Raise :class:`MissingBinaryError` naming everything the node lacks (and how to get it)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("the node must run as root (network, mounts, cgroups)")
    testbin = testbin or default_testbin_dir()
    missing_k8s = [b for b in ("kubelet", "kube-proxy") if not os.access(testbin / b, os.X_OK)]
    if missing_k8s:
        problems.append(
            f"{', '.join(missing_k8s)} missing in {testbin}: run `make testbin` "
            "(hack/testbin/build.sh)"
        )
    coredns = coredns_binary(nodebin)
    if not os.access(coredns, os.X_OK):
        problems.append(f"{coredns} missing: run `hack/node/build.sh coredns`")
    tools = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if tools:
        problems.append(
            f"host tools missing: {', '.join(tools)} (apt-get install containerd runc iptables "
            "iproute2)"
        )
    plugins = [p for p in CNI_PLUGINS if not os.access(CNI_BIN_DIR / p, os.X_OK)]
    if plugins:
        problems.append(
            f"CNI plugins missing in {CNI_BIN_DIR}: {', '.join(plugins)} "
            "(apt-get install containernetworking-plugins)"
        )
    if problems:
        raise MissingBinaryError("cannot start the test node: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------
# Small host helpers
# --------------------------------------------------------------------------------------------
