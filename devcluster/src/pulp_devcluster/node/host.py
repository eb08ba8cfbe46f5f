"""What the node changes on the host and undoes: sysctls, mounts, the bridge, the pod CIDR
check, iptables chains, cgroups, the /etc/hosts line; and small /proc helpers."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulp_devcluster.controlplane.settings import SERVICE_CLUSTER_IP_RANGE
from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.node.settings import CGROUP_ROOT, HOSTS_MARKER
from pulp_devcluster.processes import proc_cmdline

log = logging.getLogger("pulp_devcluster.node")

#: Sysctls the node sets (value) or that the kubelet/kube-proxy change (None); all of them are
#: recorded before the start and restored on stop.
SYSCTLS: dict[str, str | None] = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/ipv4/conf/all/route_localnet": None,  # kube-proxy (localhost NodePorts)
    "vm/overcommit_memory": None,  # kubelet (protectKernelDefaults: false)
    "vm/panic_on_oom": None,
    "kernel/panic": None,
    "kernel/panic_on_oops": None,
    "kernel/keys/root_maxkeys": None,
    "kernel/keys/root_maxbytes": None,
}

_IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")
CHAIN_PREFIXES = ("KUBE-", "CNI-")
_BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")


def run_command(
    cmd: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        list(cmd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and res.returncode != 0:
        raise DevClusterError(
            f"`{shlex.join(cmd)}` failed ({res.returncode}): {res.stderr.strip() or res.stdout}"
        )
    return res


def read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> bool:
    try:
        Path("/proc/sys", name).write_text(value + "\n")
    except OSError as exc:
        log.warning("cannot set sysctl %s=%s: %s", name, value, exc)
        return False
    return True


def _mount_points() -> list[Path]:
    out: list[Path] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) > 4:
            # mountinfo escapes space, tab, newline and backslash as octal
            raw = parts[4].encode().decode("unicode_escape").encode("latin-1").decode()
            out.append(Path(raw))
    return out


def mounts_under(*roots: Path) -> list[Path]:
    """Mount points at or below any of ``roots``, deepest first."""
    resolved = [r.absolute() for r in roots]
    found = {m for m in _mount_points() if any(m == r or r in m.parents for r in resolved)}
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


_MNT_DETACH = 2


def unmount_all(*roots: Path) -> list[Path]:
    """Lazily unmount everything at or below ``roots``; returns what stayed mounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(5):
        points = mounts_under(*roots)
        if not points:
            return []
        for point in points:
            if libc.umount2(str(point).encode(), _MNT_DETACH) != 0:
                err = ctypes.get_errno()
                log.debug("umount %s: %s", point, os.strerror(err))
    return mounts_under(*roots)


def links(master: str | None = None) -> list[dict[str, Any]]:
    cmd = ["ip", "-j", "link", "show"]
    if master:
        cmd += ["master", master]
    res = run_command(cmd, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        return []
    data = json.loads(res.stdout)
    return data if isinstance(data, list) else []


def link_exists(name: str) -> bool:
    return run_command(["ip", "link", "show", "dev", name], check=False).returncode == 0


def delete_bridge(bridge: str) -> None:
    """Delete ``bridge`` and every interface (veth) attached to it."""
    for link in links(bridge):
        name = str(link.get("ifname", ""))
        if name:
            run_command(["ip", "link", "del", "dev", name], check=False)
    if link_exists(bridge):
        run_command(["ip", "link", "del", "dev", bridge], check=False)


def ensure_bridge(bridge: str, gateway: str, prefix_len: int) -> None:
    if not link_exists(bridge):
        run_command(["ip", "link", "add", "name", bridge, "type", "bridge"])
    res = run_command(["ip", "-j", "-4", "addr", "show", "dev", bridge])
    have = {
        str(a.get("local"))
        for link in json.loads(res.stdout or "[]")
        for a in link.get("addr_info", [])
    }
    if gateway not in have:
        run_command(["ip", "addr", "add", f"{gateway}/{prefix_len}", "dev", bridge])
    run_command(["ip", "link", "set", "dev", bridge, "up"])


def check_pod_cidr(pod_cidr: str, bridge: str) -> None:
    """Raise unless ``pod_cidr`` is free on this machine (ignoring our own bridge)."""
    net = ipaddress.ip_network(pod_cidr)
    service_net = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
    if net.overlaps(service_net):
        raise DevClusterError(f"pod CIDR {pod_cidr} overlaps the services {service_net}")
    addrs = json.loads(run_command(["ip", "-j", "-4", "addr"]).stdout or "[]")
    for link in addrs:
        if link.get("ifname") == bridge:
            continue
        for a in link.get("addr_info", []):
            iface = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            if iface.network.overlaps(net) and not iface.ip.is_loopback:
                raise DevClusterError(
                    f"pod CIDR {pod_cidr} clashes with {iface} on {link.get('ifname')}; "
                    "pass another pod_cidr"
                )
    routes = json.loads(run_command(["ip", "-j", "-4", "route"]).stdout or "[]")
    for route in routes:
        dst, dev = str(route.get("dst", "")), route.get("dev")
        if dst in ("default", "") or dev == bridge:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(dst, strict=False).overlaps(net):
                raise DevClusterError(
                    f"pod CIDR {pod_cidr} clashes with the route {dst} dev {dev}; "
                    "pass another pod_cidr"
                )


def purge_iptables(prefixes: Sequence[str] = CHAIN_PREFIXES) -> list[str]:
    """Remove the chains named ``prefixes``* (and rules jumping to them) from iptables and
    ip6tables; returns the chains that could not be removed."""
    left: list[str] = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in _IPTABLES_TABLES:
            res = run_command([tool, "-w", "5", "-t", table, "-S"], check=False)
            if res.returncode != 0:
                continue
            chains: list[str] = []
            jumps: list[list[str]] = []
            for line in res.stdout.splitlines():
                args = shlex.split(line)
                if len(args) >= 2 and args[0] == "-N" and args[1].startswith(tuple(prefixes)):
                    chains.append(args[1])
                elif len(args) >= 2 and args[0] == "-A" and args[1] in _BUILTIN_CHAINS:
                    for opt in ("-j", "-g"):
                        if opt in args:
                            target = args[args.index(opt) + 1]
                            if target.startswith(tuple(prefixes)):
                                jumps.append(args)
            for args in jumps:
                run_command([tool, "-w", "5", "-t", table, "-D", *args[1:]], check=False)
            for chain in chains:
                run_command([tool, "-w", "5", "-t", table, "-F", chain], check=False)
            for chain in chains:
                if run_command([tool, "-w", "5", "-t", table, "-X", chain], check=False).returncode:
                    left.append(f"{tool}/{table}/{chain}")
    return left


def iptables_chains(prefixes: Sequence[str] = CHAIN_PREFIXES) -> list[str]:
    """``tool/table/chain`` of every chain named ``prefixes``* (for checks)."""
    found: list[str] = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in _IPTABLES_TABLES:
            res = run_command([tool, "-w", "5", "-t", table, "-S"], check=False)
            for line in res.stdout.splitlines():
                if line.startswith("-N ") and line[3:].startswith(tuple(prefixes)):
                    found.append(f"{tool}/{table}/{line[3:].strip()}")
    return found


def cgroup_hierarchies() -> list[Path]:
    """cgroup v1 hierarchy mounts (not the empty hybrid 'unified' one), or the v2 root."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and p.name != "unified" and (p / "cgroup.procs").exists()
    )


def ensure_cgroup_root(name: str = CGROUP_ROOT) -> None:
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # an empty cpuset cannot hold tasks
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (path / knob).read_text().strip():
                    (path / knob).write_text((hierarchy / knob).read_text())


def remove_cgroup_root(name: str = CGROUP_ROOT, timeout: float = 10.0) -> list[Path]:
    """rmdir the cgroup trees ``/<name>`` (bottom-up, retrying while they drain); returns the
    directories left (they still hold processes)."""
    deadline = time.monotonic() + timeout
    while True:
        left: list[Path] = []
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / name
            if not root.is_dir():
                continue
            dirs = [Path(d) for d, _, _ in os.walk(root)]
            for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def cgroup_pids(name: str = CGROUP_ROOT) -> list[int]:
    """Processes in the node's cgroups (pids hierarchy, or the v2 tree)."""
    hierarchies = cgroup_hierarchies()
    pids_h = [h for h in hierarchies if h.name == "pids"] or hierarchies[:1]
    out: set[int] = set()
    for hierarchy in pids_h:
        root = hierarchy / name
        if root.is_dir():
            for d, _, files in os.walk(root):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        out.update(int(x) for x in (Path(d) / "cgroup.procs").read_text().split())
    return sorted(out)


def kill_cgroup_processes(name: str = CGROUP_ROOT) -> None:
    for _ in range(3):
        pids = cgroup_pids(name)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)


def add_hosts_entry(ip: str, name: str, state_dir: Path) -> bool:
    """Add ``ip name`` to /etc/hosts unless ``name`` already resolves there; True if added."""
    hosts = Path("/etc/hosts")
    try:
        text = hosts.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name in fields[1:]:
            if fields[0] == ip:
                return False
            log.warning("/etc/hosts maps %s to %s, not %s", name, fields[0], ip)
            return False
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        # in place (not rename): /etc/hosts is often a bind mount
        hosts.write_text(f"{text}{ip} {name} {HOSTS_MARKER} {state_dir}\n")
    except OSError as exc:
        log.warning(
            "cannot add %s to /etc/hosts (%s): `kubectl logs/exec` will not reach the kubelet",
            name,
            exc,
        )
        return False
    return True


def remove_hosts_entry(state_dir: Path | None = None) -> None:
    """Remove the /etc/hosts lines a node added (of ``state_dir``, or all)."""
    hosts = Path("/etc/hosts")
    try:
        lines = hosts.read_text().splitlines(keepends=True)
    except OSError:
        return
    marker = HOSTS_MARKER if state_dir is None else f"{HOSTS_MARKER} {state_dir}"
    kept = [line for line in lines if marker not in line]
    if len(kept) != len(lines):
        with contextlib.suppress(OSError):
            hosts.write_text("".join(kept))


# --------------------------------------------------------------------------------------------
# Images


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def pids_matching(*needles: str) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmdline = proc_cmdline(int(entry.name))
            if cmdline and all(n in cmdline for n in needles):
                out.append(int(entry.name))
    return out


def nat_chain_has(prefix: str, comment: str) -> bool:
    res = run_command(["iptables", "-w", "5", "-t", "nat", "-S"], check=False)
    return any(prefix in line and comment in line for line in res.stdout.splitlines())


def prepare_host(bridge: str, pod_cidr: str, gateway: str) -> None:
    """The bridge with the gateway address (after checking that the pod CIDR is free), the
    sysctls the node needs and its cgroup root."""
    check_pod_cidr(pod_cidr, bridge)
    delete_bridge(bridge)  # leftovers of a run nobody recorded
    ensure_bridge(bridge, gateway, ipaddress.ip_network(pod_cidr).prefixlen)
    for key, value in SYSCTLS.items():
        if value is not None and read_sysctl(key) != value and not write_sysctl(key, value):
            raise DevClusterError(f"cannot set sysctl {key}={value}")
    ensure_cgroup_root()
