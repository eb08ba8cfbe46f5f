"""Undoing a node: the API objects it wrote, what it changed on the host, runs whose owner died
(stale cleanup), and the check of what a stopped node left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightkube.resources.core_v1 import Endpoints, PersistentVolume, Service
from lightkube.resources.core_v1 import Node as NodeResource
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.storage_v1 import StorageClass

from pulp_devcluster.kubeapi import make_client
from pulp_devcluster.node.containerd import Ctr
from pulp_devcluster.node.host import (
    cgroup_hierarchies,
    delete_bridge,
    iptables_chains,
    kill_cgroup_processes,
    link_exists,
    links,
    mounts_under,
    pids_matching,
    purge_iptables,
    read_sysctl,
    remove_cgroup_root,
    remove_hosts_entry,
    run_command,
    unmount_all,
    write_sysctl,
)
from pulp_devcluster.node.layout import SHORT_DIR_BASE, remove_ephemeral
from pulp_devcluster.node.settings import (
    BRIDGE,
    CGROUP_ROOT,
    FIELD_MANAGER,
    NODE_NAME,
    PROVISIONER,
    STORAGE_CLASS,
    default_node_runs_dir,
)
from pulp_devcluster.node.supervisor import Proc, StepTimer, stop_process
from pulp_devcluster.processes import kill_records, proc_cmdline
from pulp_devcluster.registry import owner_alive, read_json, records_from

log = logging.getLogger("pulp_devcluster.node")


def owner_alive_of_bridge(runs_dir: Path | None, bridge: str, own: Path | None) -> bool:
    if runs_dir is None or not runs_dir.is_dir():
        return False
    for path in runs_dir.glob("*.json"):
        if own is not None and path == own:
            continue
        data = read_json(path)
        if data and data.get("bridge") == bridge and owner_alive(data):
            return True
    return False


def delete_api_objects(record: Mapping[str, Any], node_name: str) -> None:
    """Best effort: the Node object and the endpoints the node wrote (the control plane may
    outlive the node)."""
    kubeconfig = record.get("cluster_kubeconfig")
    if not kubeconfig or not Path(kubeconfig).is_file():
        return
    try:
        client = make_client(Path(kubeconfig), FIELD_MANAGER)
    except Exception:  # the control plane is gone
        return
    try:
        targets: list[tuple[Any, str, str | None]] = [
            (NodeResource, node_name, None),
            (EndpointSlice, "kubernetes", "default"),
            (Endpoints, "kubernetes", "default"),
            (EndpointSlice, "kube-dns", "kube-system"),
            (Endpoints, "kube-dns", "kube-system"),
            (Service, "kube-dns", "kube-system"),
            (StorageClass, STORAGE_CLASS, None),
        ]
        with contextlib.suppress(Exception):
            for pv in client.list(PersistentVolume):
                ann = (pv.metadata.annotations if pv.metadata else None) or {}
                if ann.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and pv.metadata:
                    targets.append((PersistentVolume, str(pv.metadata.name), None))
        for kind, name, namespace in targets:
            with contextlib.suppress(Exception):
                if namespace is None:
                    client.delete(kind, name)
                else:
                    client.delete(kind, name, namespace=namespace)
    finally:
        with contextlib.suppress(Exception):
            client.close()


def stop_processes(
    procs: Sequence[Proc],
    record: Mapping[str, Any],
    node_name: str,
    stop_timeout: float,
    step: StepTimer,
) -> None:
    """Stop the node's processes in order (the kubelet first, so that it does not restart
    containers; containerd after its containers) and delete the API objects it wrote."""
    by_name = {p.name: p for p in procs}
    # the kubelet first, so that it does not restart containers
    with step("kubelet"):
        if "kubelet" in by_name:
            stop_process(by_name["kubelet"], stop_timeout)
    with step("services"):
        for name in ("kube-proxy", "coredns", "apiserver-proxy", "provisioner"):
            if name in by_name:
                stop_process(by_name[name], stop_timeout)
    if record:
        with step("api-objects"):
            delete_api_objects(record, node_name)
        sock = Path(record["containerd_socket"])
        with step("containers"):
            if "containerd" in by_name and by_name["containerd"].popen.poll() is None:
                Ctr(sock).remove_all_containers()
    with step("containerd"):
        if "containerd" in by_name:
            stop_process(by_name["containerd"], stop_timeout)
        for proc in procs:  # anything else
            stop_process(proc, stop_timeout)


def cleanup_host(record: Mapping[str, Any]) -> list[str]:
    """Undo everything a node changed on the host (processes must be stopped already, or are
    killed here). Returns what could not be cleaned."""
    problems: list[str] = []
    state_dir = Path(record["state_dir"])
    sock = str(record.get("containerd_socket", ""))
    runc_root = Path(record.get("runc_root", state_dir / "containerd" / "runc"))
    # containers left behind (containerd gone): runc directly, then shims, then the cgroups
    for ns_dir in runc_root.glob("*") if runc_root.is_dir() else []:
        res = run_command(["runc", "--root", str(ns_dir), "list", "-q"], check=False)
        for cid in res.stdout.split():
            run_command(["runc", "--root", str(ns_dir), "delete", "--force", cid], check=False)
    if sock:
        for pid in pids_matching("containerd-shim", sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    cgroup_root = str(record.get("cgroup_root", CGROUP_ROOT))
    kill_cgroup_processes(cgroup_root)
    # mounts (kubelet root-dir, volumes, netns, shm, rootfs)
    roots = [state_dir, Path(record.get("runtime_dir") or state_dir)]
    containerd_root = record.get("containerd_root")
    if containerd_root:
        roots.append(Path(containerd_root))
    left = unmount_all(*roots)
    if left:
        problems.append(f"mounts {', '.join(map(str, left))}")
    # network
    bridge = str(record.get("bridge", BRIDGE))
    delete_bridge(bridge)
    if link_exists(bridge):
        problems.append(f"bridge {bridge}")
    chains = purge_iptables()
    if chains:
        problems.append(f"iptables chains {', '.join(chains)}")
    # cgroups, /etc/hosts, sysctls
    cg_left = remove_cgroup_root(cgroup_root)
    if cg_left:
        problems.append(f"cgroups {', '.join(map(str, cg_left[:5]))}")
    if record.get("hosts_entry"):
        remove_hosts_entry(state_dir)
    for key, value in (record.get("sysctls") or {}).items():
        if value is not None and read_sysctl(key) != value:
            write_sysctl(key, str(value))
    runtime_dir = Path(record.get("runtime_dir") or state_dir)
    if runtime_dir != state_dir and SHORT_DIR_BASE in runtime_dir.parents:
        if mounts_under(runtime_dir):
            problems.append(f"mounts below {runtime_dir}")
        else:
            shutil.rmtree(runtime_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                SHORT_DIR_BASE.rmdir()
    return problems


def cleanup_stale(runs_dir: Path | None = None, timeout: float = 10.0) -> int:
    """Clean up nodes whose owner process died (crash, SIGKILL): kill their processes and
    containers, unmount, delete bridge/iptables chains/cgroups, restore sysctls and
    /etc/hosts, remove the state. Returns how many runs were cleaned."""
    runs_dir = runs_dir or default_node_runs_dir()
    if not runs_dir.is_dir():
        return 0
    cleaned = 0
    for path in sorted(runs_dir.glob("*.json")):
        data = read_json(path)
        if data is not None and owner_alive(data):
            continue
        if data is not None:
            log.warning("cleaning up a stale node run (%s)", data.get("state_dir"))
            _cleanup_record(data, timeout)
            cleaned += 1
        path.unlink(missing_ok=True)
    return cleaned


def _cleanup_record(data: Mapping[str, Any], timeout: float = 10.0) -> list[str]:
    records = records_from(data)
    order = ["kubelet", "kube-proxy", "coredns", "apiserver-proxy", "provisioner", "containerd"]
    records.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    for rec in records:
        for survivor in kill_records([rec], timeout):
            log.warning("could not kill leftover %s (pid %d)", survivor.name, survivor.pid)
    delete_api_objects(data, str(data.get("name", NODE_NAME)))
    problems = cleanup_host(data)
    state_dir = Path(data["state_dir"])
    if not mounts_under(state_dir):
        if data.get("owned_state_dir"):
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            remove_ephemeral(state_dir)
    run_file = data.get("run_file")
    if run_file:
        Path(run_file).unlink(missing_ok=True)
    if problems:
        log.warning("stale node cleanup left: %s", "; ".join(problems))
    return problems


def leftovers(state_dir: Path, bridge: str = BRIDGE) -> list[str]:
    """What a stopped node left on the host (empty when clean): processes whose command line
    names ``state_dir``, mounts below it, the bridge, veths on it, KUBE-*/CNI-* chains and
    the node's cgroups."""
    found: list[str] = []
    me = os.getpid()
    for pid in pids_matching(str(state_dir)):
        if pid != me:
            found.append(f"process {pid}: {proc_cmdline(pid)[:120]}")
    found += [f"mount {m}" for m in mounts_under(state_dir, SHORT_DIR_BASE)]
    if SHORT_DIR_BASE.is_dir() and any(SHORT_DIR_BASE.iterdir()):
        found.append(f"runtime dirs in {SHORT_DIR_BASE}")
    if link_exists(bridge):
        found.append(f"bridge {bridge}")
    found += [f"veth {link.get('ifname')}" for link in links(bridge)]
    found += [f"iptables {c}" for c in iptables_chains()]
    for hierarchy in cgroup_hierarchies():
        if (hierarchy / CGROUP_ROOT).exists():
            found.append(f"cgroup {hierarchy / CGROUP_ROOT}")
    return found


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
