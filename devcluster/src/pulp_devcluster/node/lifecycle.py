"""The node's lifecycle: start every part in order and wait until each is ready, stop and
remove everything, and record the run for stale cleanup."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node as NodeResource

from pulp_devcluster.controlplane.plane import ClusterInfo
from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.kubeapi import make_client
from pulp_devcluster.node.cleanup import (
    cleanup_host,
    cleanup_stale,
    owner_alive_of_bridge,
    stop_processes,
)
from pulp_devcluster.node.configs import (
    cni_conflist,
    corefile,
    kube_proxy_config,
    kubelet_command,
    kubelet_config,
    proxy_command,
    write_yaml,
)
from pulp_devcluster.node.containerd import Ctr, import_node_images, write_containerd_files
from pulp_devcluster.node.host import (
    SYSCTLS,
    add_hosts_entry,
    mounts_under,
    nat_chain_has,
    pids_matching,
    prepare_host,
    read_sysctl,
    rss,
    run_command,
)
from pulp_devcluster.node.layout import prepare_state_dir, remove_ephemeral, runtime_dir_for
from pulp_devcluster.node.provisioner import apply_storage_class, provisioner_command
from pulp_devcluster.node.services import apply_service_endpoints, node_ready
from pulp_devcluster.node.settings import (
    BRIDGE,
    CGROUP_ROOT,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    FIELD_MANAGER,
    NODE_NAME,
    POD_CIDR,
    check_node_prerequisites,
    coredns_binary,
    default_node_runs_dir,
)
from pulp_devcluster.node.supervisor import (
    Proc,
    StepTimer,
    acquire_machine_lock,
    release_machine_lock,
    spawn_process,
    wait_until,
)
from pulp_devcluster.processes import free_ports, probe, proc_start_time
from pulp_devcluster.registry import write_json_atomic

log = logging.getLogger("pulp_devcluster.node")


@dataclass(frozen=True)
class NodeInfo:
    """How to use a running node."""

    name: str
    #: The node's InternalIP: the bridge gateway (host side), where CoreDNS, the apiserver proxy
    #: and the kubelet listen; NodePorts answer here and on 127.0.0.1.
    node_ip: str
    pod_cidr: str
    bridge: str
    containerd_socket: Path
    #: ClusterIP of kube-system/kube-dns (what pods have in /etc/resolv.conf).
    dns_service_ip: str
    cluster_domain: str
    #: host:port of the proxy to the apiserver (endpoint of the `kubernetes` Service).
    apiserver_proxy: str
    state_dir: Path
    cluster: ClusterInfo

    def ctr(self) -> Ctr:
        return Ctr(self.containerd_socket)


@dataclass
class Node:
    """Start/stop a real node against a running control plane; a context manager too.

    ``state_dir`` None means a fresh temporary directory that ``stop()`` removes; a given
    directory is kept with its ``logs/``. ``containerd_root`` keeps containerd's image store
    elsewhere (e.g. a cache directory) so that a later start skips importing unchanged images.
    """

    cluster: ClusterInfo
    state_dir: Path | None = None
    images: Sequence[Path] = ()
    name: str = NODE_NAME
    bridge: str = BRIDGE
    pod_cidr: str = POD_CIDR
    dns_service_ip: str = DNS_SERVICE_IP
    cluster_domain: str = CLUSTER_DOMAIN
    testbin: Path | None = None
    nodebin: Path | None = None
    containerd_root: Path | None = None
    hosts_entry: bool = True
    storage: bool = True
    startup_timeout: float = 180.0
    stop_timeout: float = 20.0
    runs_dir: Path | None = None
    kubelet_verbosity: int = 2
    timings: dict[str, float] = field(default_factory=dict)
    info: NodeInfo | None = field(default=None, init=False)
    _procs: list[Proc] = field(default_factory=list, init=False, repr=False)
    _owned_state_dir: bool = field(default=False, init=False, repr=False)
    _run_file: Path | None = field(default=None, init=False, repr=False)
    _record: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _locked: bool = field(default=False, init=False, repr=False)

    # -- public API -------------------------------------------------------------------------

    def __enter__(self) -> NodeInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._procs}

    def start(self) -> NodeInfo:
        """Start everything and wait until the Node is Ready (and untainted when a
        controller-manager runs), kube-proxy has synced and CoreDNS serves the cluster."""
        if self.info is not None:
            raise DevClusterError("this node is already running")
        self.testbin = self.testbin or self.cluster.testbin
        check_node_prerequisites(self.testbin, self.nodebin)
        self.runs_dir = self.runs_dir or default_node_runs_dir()
        acquire_machine_lock()
        self._locked = True
        cleanup_stale(self.runs_dir)
        try:
            return self._start()
        except BaseException:
            self._teardown()
            self._release()
            raise

    def stop(self) -> None:
        """Stop and remove everything (processes, containers, mounts, bridge, iptables chains,
        cgroups, /etc/hosts line, sysctls, state)."""
        t0 = time.monotonic()
        was_running = self.info is not None or bool(self._procs) or bool(self._record)
        self._teardown()
        self._release()
        if was_running:
            self.timings["stop"] = time.monotonic() - t0
            log.info("node %s stopped in %.1fs", self.name, self.timings["stop"])

    def _release(self) -> None:
        if self._locked:
            release_machine_lock()
            self._locked = False

    def alive(self) -> dict[str, bool]:
        return {p.name: p.popen.poll() is None for p in self._procs}

    def import_images(self, archives: Iterable[Path]) -> list[str]:
        """Import OCI archives into the node's containerd (names from ``<archive>.names``)."""
        if self.info is None:
            raise DevClusterError("the node is not running")
        ctr = self.info.ctr()
        names: list[str] = []
        for archive in archives:
            names += ctr.import_archive(Path(archive))
        return names

    def memory(self) -> dict[str, int]:
        """Resident memory (bytes) of each node process, plus all containerd shims together."""
        out: dict[str, int] = {}
        for p in self._procs:
            if p.popen.poll() is None:
                out[p.name] = rss(p.popen.pid)
        if self.info is not None:
            sock = str(self.info.containerd_socket)
            out["containerd-shims"] = sum(
                rss(pid) for pid in pids_matching("containerd-shim", sock)
            )
        return out

    def logs_dir(self) -> Path | None:
        return self.state_dir / "logs" if self.state_dir else None

    # -- start ------------------------------------------------------------------------------

    def _start(self) -> NodeInfo:
        t_start = time.monotonic()
        self.timings.clear()
        self.state_dir, self._owned_state_dir = prepare_state_dir(
            self.state_dir, self._owned_state_dir
        )
        state_dir = self.state_dir
        assert self.testbin is not None
        gateway = self.gateway
        api = urllib.parse.urlsplit(self.cluster.server)
        api_host, api_port = api.hostname or "127.0.0.1", api.port or 443
        port_names = ("kubelet", "kubelet_healthz", "proxy_healthz", "proxy_metrics", "dns_health")
        ports = dict(zip((*port_names, "dns_ready"), free_ports(6), strict=True))
        runtime_dir = runtime_dir_for(state_dir)
        sock = runtime_dir / "containerd" / "containerd.sock"
        sock.parent.mkdir(parents=True, exist_ok=True)
        kubelet_root = runtime_dir / "kubelet" / "root"
        containerd_root = (self.containerd_root or state_dir / "containerd" / "root").absolute()
        self._record = {
            "name": self.name,
            "bridge": self.bridge,
            "pod_cidr": self.pod_cidr,
            "gateway": gateway,
            "state_dir": str(state_dir),
            "owned_state_dir": self._owned_state_dir,
            "containerd_socket": str(sock),
            "runtime_dir": str(runtime_dir),
            "containerd_root": str(containerd_root),
            "runc_root": str(state_dir / "containerd" / "runc"),
            "cgroup_root": CGROUP_ROOT,
            "sysctls": {k: read_sysctl(k) for k in SYSCTLS},
            "hosts_entry": False,
            "ports": ports,
            "cluster_kubeconfig": str(self.cluster.kubeconfig),
        }
        self._register()
        self._setup_host(state_dir, gateway)
        ctr, coredns, proxy = self._start_runtime(
            state_dir, sock, containerd_root, ports, api_host, api_port
        )

        t0 = time.monotonic()
        if self.containerd_root is not None:  # a persistent store: no containers of old runs
            ctr.remove_all_containers()
        import_node_images(ctr, self.images)
        self.timings["images"] = time.monotonic() - t0

        # Services the node provides (kubernetes endpoints via the proxy, kube-dns)
        t0 = time.monotonic()
        client = make_client(self.cluster.kubeconfig, FIELD_MANAGER)
        try:
            apply_service_endpoints(client, gateway, api_port, self.dns_service_ip)
            if self.storage:
                apply_storage_class(client)
                self._spawn(
                    "provisioner",
                    provisioner_command(
                        kubeconfig=self.cluster.kubeconfig,
                        volumes_dir=state_dir / "volumes",
                        node_name=self.name,
                        marker=state_dir,
                    ),
                )
            self.timings["services"] = time.monotonic() - t0
            kubelet = self._start_kubelet(client, state_dir, sock, kubelet_root, ports)
            self._start_kube_proxy(state_dir, ports, kubelet)

            t0 = time.monotonic()
            self._wait(
                "CoreDNS to be ready",
                lambda: probe(f"http://127.0.0.1:{ports['dns_ready']}/ready")[0] == 200,
                [coredns, proxy],
            )
            if self.cluster.tier == "cluster":  # the node-lifecycle controller removes it
                self._wait(
                    "the not-ready taint to go",
                    lambda: node_ready(client, self.name, untainted=True),
                    [kubelet],
                )
            self.timings["dns+taints"] = time.monotonic() - t0
        finally:
            client.close()

        self.info = NodeInfo(
            name=self.name,
            node_ip=gateway,
            pod_cidr=self.pod_cidr,
            bridge=self.bridge,
            containerd_socket=sock,
            dns_service_ip=self.dns_service_ip,
            cluster_domain=self.cluster_domain,
            apiserver_proxy=f"{gateway}:{api_port}",
            state_dir=state_dir,
            cluster=self.cluster,
        )
        self.timings["total"] = time.monotonic() - t_start
        self._record["ready"] = True
        self._register()
        log.info(
            "node %s ready in %.1fs (%s)",
            self.name,
            self.timings["total"],
            ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total"),
        )
        return self.info

    def _setup_host(self, state_dir: Path, gateway: str) -> None:
        """Host network and cgroups."""
        t0 = time.monotonic()
        if owner_alive_of_bridge(self.runs_dir, self.bridge, self._run_file):
            raise DevClusterError(f"another node runs on bridge {self.bridge}")
        prepare_host(self.bridge, self.pod_cidr, gateway)
        if self.hosts_entry:
            self._record["hosts_entry"] = add_hosts_entry(gateway, self.name, state_dir)
        self._register()
        self.timings["host-setup"] = time.monotonic() - t0

    def _start_runtime(
        self,
        state_dir: Path,
        sock: Path,
        containerd_root: Path,
        ports: dict[str, int],
        api_host: str,
        api_port: int,
    ) -> tuple[Ctr, Proc, Proc]:
        """containerd (waited for), CoreDNS and the apiserver proxy; returns ``ctr`` and the
        CoreDNS and proxy processes."""
        t0 = time.monotonic()
        gateway = self.gateway
        conf = write_containerd_files(
            state_dir,
            containerd_root=containerd_root,
            socket_path=sock,
            cni=cni_conflist(
                bridge=self.bridge,
                pod_cidr=self.pod_cidr,
                gateway=gateway,
                ipam_dir=state_dir / "cni" / "ipam",
            ),
            persistent_store=self.containerd_root is not None,
        )
        containerd = self._spawn("containerd", ["containerd", "--config", str(conf)])
        corefile_path = state_dir / "coredns" / "Corefile"
        corefile_path.write_text(
            corefile(
                listen_ip=gateway,
                health_port=ports["dns_health"],
                ready_port=ports["dns_ready"],
                kubeconfig=self.cluster.kubeconfig,
                cluster_domain=self.cluster_domain,
            )
        )
        coredns = self._spawn(
            "coredns", [str(coredns_binary(self.nodebin)), "-conf", str(corefile_path)]
        )
        proxy = self._spawn(
            "apiserver-proxy",
            proxy_command(
                listen_host=gateway, port=api_port, target_host=api_host, marker=state_dir
            ),
        )
        ctr = Ctr(sock)
        self._wait(
            "containerd",
            lambda: (
                sock.is_socket() and run_command(ctr.cmd("version"), check=False).returncode == 0
            ),
            [containerd],
        )
        self.timings["containerd"] = time.monotonic() - t0
        return ctr, coredns, proxy

    def _start_kubelet(
        self,
        client: Client,
        state_dir: Path,
        sock: Path,
        kubelet_root: Path,
        ports: dict[str, int],
    ) -> Proc:
        """The kubelet, waited for until the Node is Ready (a Node object of an earlier run
        would look Ready until it expires: deleted first)."""
        assert self.testbin is not None
        t0 = time.monotonic()
        with contextlib.suppress(ApiError):
            client.delete(NodeResource, self.name)
        kubelet_conf = write_yaml(
            state_dir / "kubelet" / "config.yaml",
            kubelet_config(
                node_ip=self.gateway,
                port=ports["kubelet"],
                healthz_port=ports["kubelet_healthz"],
                runtime_endpoint=f"unix://{sock}",
                cluster_dns=self.dns_service_ip,
                cluster_domain=self.cluster_domain,
                pod_logs_dir=state_dir / "pod-logs",
            ),
        )
        kubelet = self._spawn(
            "kubelet",
            kubelet_command(
                self.testbin / "kubelet",
                config=kubelet_conf,
                kubeconfig=self.cluster.kubeconfig,
                root_dir=kubelet_root,
                node_name=self.name,
                node_ip=self.gateway,
                verbosity=self.kubelet_verbosity,
            ),
        )
        self._wait("the Node to be Ready", lambda: node_ready(client, self.name), [kubelet])
        self.timings["kubelet"] = time.monotonic() - t0
        return kubelet

    def _start_kube_proxy(self, state_dir: Path, ports: dict[str, int], kubelet: Proc) -> None:
        """kube-proxy, waited for until its rules for default/kubernetes exist."""
        assert self.testbin is not None
        t0 = time.monotonic()
        proxy_conf = write_yaml(
            state_dir / "kube-proxy" / "config.yaml",
            kube_proxy_config(
                kubeconfig=self.cluster.kubeconfig,
                node_name=self.name,
                pod_cidr=self.pod_cidr,
                healthz_port=ports["proxy_healthz"],
                metrics_port=ports["proxy_metrics"],
            ),
        )
        kube_proxy = self._spawn(
            "kube-proxy",
            [str(self.testbin / "kube-proxy"), f"--config={proxy_conf}", "--v=2"],
        )
        self._wait(
            "kube-proxy to sync",
            lambda: (
                probe(f"http://127.0.0.1:{ports['proxy_healthz']}/healthz")[0] == 200
                and nat_chain_has("KUBE-SVC-", "default/kubernetes:https")
            ),
            [kube_proxy, kubelet],
        )
        self.timings["kube-proxy"] = time.monotonic() - t0

    def _spawn(self, name: str, cmd: Sequence[str]) -> Proc:
        assert self.state_dir is not None
        proc = spawn_process(name, cmd, self.state_dir)
        self._procs.append(proc)
        self._register()
        return proc

    def _wait(self, what: str, ready: Callable[[], bool], watched: Iterable[Proc]) -> None:
        wait_until(what, ready, watched, timeout=self.startup_timeout, logs_of=self._procs)

    # -- registry ---------------------------------------------------------------------------

    def _register(self) -> None:
        assert self.runs_dir is not None
        if self._run_file is None:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self._run_file = self.runs_dir / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        owner = os.getpid()
        data = {
            **self._record,
            "owner_pid": owner,
            "owner_start_time": proc_start_time(owner),
            "run_file": str(self._run_file),
            "processes": [vars(p.record) for p in self._procs],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
        write_json_atomic(self._run_file, data)
        if self.state_dir is not None and self.state_dir.is_dir():
            write_json_atomic(self.state_dir / "node.json", data)

    # -- stop -------------------------------------------------------------------------------

    def _teardown(self) -> None:
        step = StepTimer(self.timings, "stop:")
        stop_processes(self._procs, self._record, self.name, self.stop_timeout, step)
        self._procs.clear()
        self.info = None
        if self._record:
            with step("host"):
                problems = cleanup_host(self._record)
            if problems:
                log.warning("node cleanup left: %s", "; ".join(problems))
        self._record = {}
        if self.state_dir is not None:
            with step("state-dir"):
                self._remove_state_dir()
        if self._run_file is not None:
            self._run_file.unlink(missing_ok=True)
            self._run_file = None

    def _remove_state_dir(self) -> None:
        if self.state_dir is not None:
            if not mounts_under(self.state_dir):
                if self._owned_state_dir:
                    shutil.rmtree(self.state_dir, ignore_errors=True)
                else:
                    remove_ephemeral(self.state_dir)
            else:
                log.warning("not removing %s: it still has mounts", self.state_dir)
