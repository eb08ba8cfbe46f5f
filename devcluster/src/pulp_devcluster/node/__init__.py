"""A real single Kubernetes node on this machine, for end-to-end tests (needs root).

Standard parts only, all started as processes of the calling Python process:

* containerd (Debian package, 1.6 or later) with its CRI plugin, the overlayfs snapshotter and
  runc, everything (root, state, socket, runc state, network namespaces) inside the state dir;
* CNI: the Debian ``containernetworking-plugins`` bridge + host-local + portmap + loopback on a
  bridge of its own (default ``pulpbr0``, pod subnet 10.88.0.0/16, gateway 10.88.0.1);
* kubelet and kube-proxy (iptables mode) from hack/testbin (same version as the apiserver);
* CoreDNS built by hack/node/build.sh, on the host (not a pod), listening on the bridge
  gateway; a selectorless Service ``kube-system/kube-dns`` (ClusterIP 10.0.0.10, the kubelet's
  clusterDNS) points at it;
* a small TCP proxy from the bridge gateway to the apiserver on 127.0.0.1, and the
  ``default/kubernetes`` Endpoints/EndpointSlice pointing at that proxy, so that pods reach the
  apiserver at https://kubernetes.default.svc (10.0.0.1:443) although it listens on loopback
  only. The apiserver's own endpoint reconciler cannot write 127.0.0.1 (loopback endpoints are
  invalid), so it never overwrites them.

No image can be pulled: every image a pod uses must be imported first (``images``), including
the sandbox image registry.k8s.io/pause:3.10 (found in the image cache of hack/images/build.sh
when not given), and pods need ``imagePullPolicy: IfNotPresent`` or ``Never``.

What a start changes outside the state dir, and a stop (or :func:`cleanup_stale`, for a run
whose owner process died) undoes: the bridge and veths, iptables chains KUBE-* and CNI-* (and
the rules jumping to them), cgroups ``/<CGROUP_ROOT>`` in every hierarchy, a line in
/etc/hosts (``<node ip> <node name>``, because the apiserver reaches kubelets by their Hostname
address first), and the sysctls the node or the kubelet/kube-proxy set (ip_forward,
bridge-nf-call-iptables, route_localnet, vm.overcommit_memory, kernel.panic, ...), which are

Modules: ``settings`` (names, versions, binaries), ``host`` (sysctls, mounts, bridge, iptables,
cgroups, /etc/hosts), ``containerd`` (config, images, ``ctr``), ``configs`` (CNI, kubelet,
kube-proxy, CoreDNS, apiserver proxy), ``provisioner`` (hostPath PVs), ``services`` (API objects
of the node), ``layout`` (state and runtime dirs), ``supervisor`` (child processes),
``lifecycle`` (:class:`Node`), ``cleanup`` (stop and stale cleanup), ``cli``.
"""

from pulp_devcluster.node.cleanup import cleanup_stale, leftovers
from pulp_devcluster.node.cli import build_parser, cluster_info_from_state_dir, main
from pulp_devcluster.node.configs import (
    PROXY_CODE,
    cni_conflist,
    corefile,
    kube_proxy_config,
    kubelet_config,
)
from pulp_devcluster.node.containerd import (
    Ctr,
    archive_names,
    containerd_config,
    find_sandbox_archive,
    normalise_image,
)
from pulp_devcluster.node.host import (
    add_hosts_entry,
    cgroup_pids,
    check_pod_cidr,
    delete_bridge,
    ensure_bridge,
    ensure_cgroup_root,
    iptables_chains,
    link_exists,
    mounts_under,
    purge_iptables,
    read_sysctl,
    remove_cgroup_root,
    remove_hosts_entry,
    unmount_all,
    write_sysctl,
)
from pulp_devcluster.node.layout import SHORT_DIR_BASE
from pulp_devcluster.node.lifecycle import Node, NodeInfo
from pulp_devcluster.node.provisioner import provision_once, run_provisioner
from pulp_devcluster.node.settings import (
    BRIDGE,
    CGROUP_ROOT,
    CLUSTER_DOMAIN,
    CNI_BIN_DIR,
    CNI_PLUGINS,
    COREDNS_VERSION,
    DNS_SERVICE_IP,
    FIELD_MANAGER,
    HOST_TOOLS,
    HOSTS_MARKER,
    K8S_NAMESPACE,
    NODE_NAME,
    POD_CIDR,
    PROVISIONER,
    SANDBOX_IMAGE,
    STORAGE_CLASS,
    TEST_IMAGE,
    busybox_image_archive,
    check_node_prerequisites,
    coredns_binary,
    default_images_dir,
    default_node_runs_dir,
    default_nodebin_dir,
)
from pulp_devcluster.node.supervisor import (
    MACHINE_LOCK,
    acquire_machine_lock,
    lock_holder_env,
    release_machine_lock,
)

__all__ = [
    "BRIDGE",
    "CGROUP_ROOT",
    "CLUSTER_DOMAIN",
    "CNI_BIN_DIR",
    "CNI_PLUGINS",
    "COREDNS_VERSION",
    "DNS_SERVICE_IP",
    "FIELD_MANAGER",
    "HOSTS_MARKER",
    "HOST_TOOLS",
    "K8S_NAMESPACE",
    "MACHINE_LOCK",
    "NODE_NAME",
    "POD_CIDR",
    "PROVISIONER",
    "PROXY_CODE",
    "SANDBOX_IMAGE",
    "SHORT_DIR_BASE",
    "STORAGE_CLASS",
    "TEST_IMAGE",
    "Ctr",
    "Node",
    "NodeInfo",
    "acquire_machine_lock",
    "add_hosts_entry",
    "archive_names",
    "build_parser",
    "busybox_image_archive",
    "cgroup_pids",
    "check_node_prerequisites",
    "check_pod_cidr",
    "cleanup_stale",
    "cluster_info_from_state_dir",
    "cni_conflist",
    "containerd_config",
    "coredns_binary",
    "corefile",
    "default_images_dir",
    "default_node_runs_dir",
    "default_nodebin_dir",
    "delete_bridge",
    "ensure_bridge",
    "ensure_cgroup_root",
    "find_sandbox_archive",
    "iptables_chains",
    "kube_proxy_config",
    "kubelet_config",
    "leftovers",
    "link_exists",
    "lock_holder_env",
    "main",
    "mounts_under",
    "normalise_image",
    "provision_once",
    "purge_iptables",
    "read_sysctl",
    "release_machine_lock",
    "remove_cgroup_root",
    "remove_hosts_entry",
    "run_provisioner",
    "unmount_all",
    "write_sysctl",
]
