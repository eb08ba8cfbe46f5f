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
restored to their recorded values.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import ipaddress
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import (
    EndpointAddress,
    EndpointPort,
    EndpointSubset,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.discovery_v1 import Endpoint, EndpointConditions
from lightkube.models.discovery_v1 import EndpointPort as SliceEndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import (
    Endpoints,
    PersistentVolume,
    PersistentVolumeClaim,
    Service,
)
from lightkube.resources.core_v1 import Node as NodeResource
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.storage_v1 import StorageClass

from pulp_operator.devcluster.cli import run as run_cli
from pulp_operator.devcluster.controlplane import (
    SERVICE_CLUSTER_IP_RANGE,
    ClusterInfo,
    DevClusterError,
    MissingBinaryError,
    ProcessRecord,
    _kill_records,
    _make_preexec,
    _owner_alive,
    _probe,
    _read_json,
    _records_from,
    _signal_group,
    _tail,
    _write_json_atomic,
    cast_tier,
    default_runs_dir,
    default_testbin_dir,
    free_ports,
    make_client,
    proc_cmdline,
    proc_start_time,
)

log = logging.getLogger("pulp_operator.devcluster.node")

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
#: small provisioner process of the node (``python -m pulp_operator.devcluster.node provision``).
STORAGE_CLASS = "standard"
PROVISIONER = "pulp-operator.local/hostpath"
#: Busybox test image built by ``hack/node/build.sh busybox``.
TEST_IMAGE = "localhost/pulp-e2e/busybox:1"

#: Host tools the node needs (Debian packages: containerd, runc, iptables, iproute2).
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "ip")

_NODEBIN_ENV = "PULP_OPERATOR_NODEBIN"
_IMAGES_ENV = "PULP_OPERATOR_IMAGES"

#: Sysctls the node sets (value) or that the kubelet/kube-proxy change (None); all of them are
#: recorded before the start and restored on stop.
_SYSCTLS: dict[str, str | None] = {
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
#: Longer state dirs get a short runtime dir below SHORT_DIR_BASE (see Node._runtime_dir).
_MAX_STATE_DIR_LEN = 48
SHORT_DIR_BASE = Path("/var/lib/pulp-devcluster-node")
_CHAIN_PREFIXES = ("KUBE-", "CNI-")
_BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")

# Subpaths of a caller-given state dir that a start recreates and a stop removes (logs/ stays).
_EPHEMERAL_SUBPATHS = (
    "containerd",
    "cni",
    "kubelet",
    "kube-proxy",
    "coredns",
    "pod-logs",
    "volumes",
    "node.json",
)


# --------------------------------------------------------------------------------------------
# Locations and prerequisites
# --------------------------------------------------------------------------------------------


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


def find_sandbox_archive(images_dir: Path | None = None) -> Path | None:
    """An archive of the image cache whose .names list :data:`SANDBOX_IMAGE`."""
    directory = images_dir or default_images_dir()
    for path in sorted(directory.glob("*.tar")):
        if SANDBOX_IMAGE in archive_names(path):
            return path
    return None


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


def _run(
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


def _links(master: str | None = None) -> list[dict[str, Any]]:
    cmd = ["ip", "-j", "link", "show"]
    if master:
        cmd += ["master", master]
    res = _run(cmd, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        return []
    data = json.loads(res.stdout)
    return data if isinstance(data, list) else []


def link_exists(name: str) -> bool:
    return _run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def delete_bridge(bridge: str) -> None:
    """Delete ``bridge`` and every interface (veth) attached to it."""
    for link in _links(bridge):
        name = str(link.get("ifname", ""))
        if name:
            _run(["ip", "link", "del", "dev", name], check=False)
    if link_exists(bridge):
        _run(["ip", "link", "del", "dev", bridge], check=False)


def ensure_bridge(bridge: str, gateway: str, prefix_len: int) -> None:
    if not link_exists(bridge):
        _run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    res = _run(["ip", "-j", "-4", "addr", "show", "dev", bridge])
    have = {
        str(a.get("local"))
        for link in json.loads(res.stdout or "[]")
        for a in link.get("addr_info", [])
    }
    if gateway not in have:
        _run(["ip", "addr", "add", f"{gateway}/{prefix_len}", "dev", bridge])
    _run(["ip", "link", "set", "dev", bridge, "up"])


def check_pod_cidr(pod_cidr: str, bridge: str) -> None:
    """Raise unless ``pod_cidr`` is free on this machine (ignoring our own bridge)."""
    net = ipaddress.ip_network(pod_cidr)
    service_net = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
    if net.overlaps(service_net):
        raise DevClusterError(f"pod CIDR {pod_cidr} overlaps the services {service_net}")
    addrs = json.loads(_run(["ip", "-j", "-4", "addr"]).stdout or "[]")
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
    routes = json.loads(_run(["ip", "-j", "-4", "route"]).stdout or "[]")
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


def purge_iptables(prefixes: Sequence[str] = _CHAIN_PREFIXES) -> list[str]:
    """Remove the chains named ``prefixes``* (and rules jumping to them) from iptables and
    ip6tables; returns the chains that could not be removed."""
    left: list[str] = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in _IPTABLES_TABLES:
            res = _run([tool, "-w", "5", "-t", table, "-S"], check=False)
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
                _run([tool, "-w", "5", "-t", table, "-D", *args[1:]], check=False)
            for chain in chains:
                _run([tool, "-w", "5", "-t", table, "-F", chain], check=False)
            for chain in chains:
                if _run([tool, "-w", "5", "-t", table, "-X", chain], check=False).returncode:
                    left.append(f"{tool}/{table}/{chain}")
    return left


def iptables_chains(prefixes: Sequence[str] = _CHAIN_PREFIXES) -> list[str]:
    """``tool/table/chain`` of every chain named ``prefixes``* (for checks)."""
    found: list[str] = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in _IPTABLES_TABLES:
            res = _run([tool, "-w", "5", "-t", table, "-S"], check=False)
            for line in res.stdout.splitlines():
                if line.startswith("-N ") and line[3:].startswith(tuple(prefixes)):
                    found.append(f"{tool}/{table}/{line[3:].strip()}")
    return found


def _cgroup_hierarchies() -> list[Path]:
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
    for hierarchy in _cgroup_hierarchies():
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
        for hierarchy in _cgroup_hierarchies():
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
    hierarchies = _cgroup_hierarchies()
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


def _kill_cgroup_processes(name: str = CGROUP_ROOT) -> None:
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
# --------------------------------------------------------------------------------------------


def normalise_image(ref: str) -> str:
    """The fully qualified name the kubelet asks containerd for (docker.io/library/...)."""
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    return ref


def _read_index(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:") as tar:
        for member in tar:
            if member.name.lstrip("./") == "index.json" and member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    data = json.loads(fh.read())
                    if isinstance(data, dict):
                        return data
    raise DevClusterError(f"{archive} is not an OCI image layout archive (no index.json)")


def archive_names(archive: Path) -> list[str]:
    """Image names of an archive: ``<archive>.names`` (one a line, as hack/images writes them),
    else the full references among its index.json ref names; normalised (docker.io/library/...,
    what the kubelet asks for; short names are left out: containerd 1.6's CRI plugin trips over
    names it cannot resolve), deduplicated."""
    names: list[str] = []
    names_file = archive.with_name(archive.name + ".names")
    if names_file.is_file():
        for line in names_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(normalise_image(line))
    elif archive.is_file():
        with contextlib.suppress(DevClusterError, tarfile.TarError, OSError, ValueError):
            for desc in _read_index(archive).get("manifests", []):
                ann = desc.get("annotations") or {}
                for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
                    ref = str(ann.get(key, ""))
                    if "/" in ref and ":" in ref:
                        names.append(normalise_image(ref))
    return list(dict.fromkeys(names))


def _stream_retagged(archive: Path, name: str, out: IO[bytes]) -> str:
    """Write ``archive`` to ``out`` as a tar whose index.json names one manifest ``name``
    (annotation io.containerd.image.name), so that containerd imports it under exactly that
    name. Returns the digest of that manifest."""
    index = _read_index(archive)
    manifests = list(index.get("manifests", []))
    if not manifests:
        raise DevClusterError(f"{archive} has no manifests")
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else ""
    chosen = next(
        (
            m
            for m in manifests
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") in (tag, name)
        ),
        manifests[0],
    )
    chosen = dict(chosen)
    chosen["annotations"] = {**(chosen.get("annotations") or {}), "io.containerd.image.name": name}
    new_index = json.dumps({**index, "manifests": [chosen]}).encode()
    with tarfile.open(archive, "r:") as tin, tarfile.open(fileobj=out, mode="w|") as tout:
        for member in tin:
            if member.name.lstrip("./") == "index.json":
                member.size = len(new_index)
                tout.addfile(member, io.BytesIO(new_index))
            elif member.isfile():
                tout.addfile(member, tin.extractfile(member))
            else:
                tout.addfile(member)
    return str(chosen["digest"])


class Ctr:
    """``ctr`` against one containerd socket and namespace."""

    def __init__(self, socket_path: Path, namespace: str = K8S_NAMESPACE) -> None:
        self.socket = socket_path
        self.namespace = namespace

    def cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        return _run(self.cmd(*args), check=check, timeout=timeout).stdout

    def images(self) -> dict[str, str]:
        """name -> target digest."""
        out: dict[str, str] = {}
        for line in self.run("images", "ls").splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3:
                out[parts[0]] = parts[2]
        return out

    def import_archive(self, archive: Path, names: Sequence[str] | None = None) -> list[str]:
        """Import ``archive`` under ``names`` (default :func:`archive_names`); skipped when all
        names already exist with the same digest. Returns the names."""
        names = list(names) if names else archive_names(archive)
        if not names:
            raise DevClusterError(
                f"{archive}: no image names (write them one a line into {archive}.names)"
            )
        existing = self.images()
        index = _read_index(archive)
        digests = {str(m.get("digest")) for m in index.get("manifests", [])}
        if all(existing.get(n) in digests for n in names):
            log.debug("%s already imported as %s", archive.name, ", ".join(names))
            return names
        t0 = time.monotonic()
        proc = subprocess.Popen(
            self.cmd("images", "import", "-"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            _stream_retagged(archive, names[0], proc.stdin)
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise DevClusterError(f"ctr images import {archive} failed: {err.strip()}")
        for name in names[1:]:
            self.run("images", "tag", "--force", names[0], name)
        log.info(
            "imported %s as %s in %.1fs", archive.name, ", ".join(names), time.monotonic() - t0
        )
        return names

    def remove_all_containers(self) -> None:
        """Kill and delete every task and container of the namespace (CRI bypassed)."""
        tasks = self.run("tasks", "ls", "-q", check=False).split()
        for task in tasks:
            self.run("tasks", "kill", "--signal", "SIGKILL", "--all", task, check=False)
        for task in tasks:
            self.run("tasks", "delete", "--force", task, check=False, timeout=30)
        containers = self.run("containers", "ls", "-q", check=False).split()
        if containers:
            self.run("containers", "delete", *containers, check=False, timeout=60)


# --------------------------------------------------------------------------------------------
# Config files
# --------------------------------------------------------------------------------------------


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))


def containerd_config(
    *,
    root: Path,
    state: Path,
    socket_path: Path,
    runc_root: Path,
    cni_conf_dir: Path,
    opt_dir: Path,
) -> str:
    """containerd config (version 2: containerd 1.6/1.7; 2.x migrates it on load)."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""\
version = 2
root = {_toml_str(root)}
state = {_toml_str(state)}
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = {_toml_str(socket_path)}

[ttrpc]
  address = {_toml_str(str(socket_path) + ".ttrpc")}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {_toml_str(opt_dir)}

{cri}
  sandbox_image = "{SANDBOX_IMAGE}"
  # we lack CAP_SYS_RESOURCE on some machines: runc could not lower oom_score_adj (-998 for
  # sandboxes) and fails with "can't get final child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {_toml_str(runc_root)}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = {_toml_str(cni_conf_dir)}
    max_conf_num = 1
"""


def cni_conflist(*, bridge: str, pod_cidr: str, gateway: str, ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "pulp-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr, "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "loopback"},
        ],
    }


def kubelet_config(
    *,
    node_ip: str,
    port: int,
    healthz_port: int,
    runtime_endpoint: str,
    cluster_dns: str,
    cluster_domain: str,
    pod_logs_dir: Path,
    cgroup_root: str = CGROUP_ROOT,
) -> dict[str, Any]:
    """The KubeletConfiguration (see the module docs and the report for each choice)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # serving: the apiserver dials <node ip>:port for logs/exec/port-forward; it has no
        # client certificate for kubelets, so anonymous + AlwaysAllow (test machine only)
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # cgroups: v1 hybrid, PID 1 is not systemd
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupRoot": f"/{cgroup_root}",
        "cgroupsPerQOS": True,
        # runtime
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": runtime_endpoint,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,  # never delete the imported images
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": str(pod_logs_dir),
        # DNS
        "clusterDNS": [cluster_dns],
        "clusterDomain": cluster_domain,
        "resolvConf": "/etc/resolv.conf",
        # a test machine: no static pods, swap tolerated, evict only when really short
        "staticPodPath": "",
        "failSwapOn": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "evictionPressureTransitionPeriod": "30s",
        "maxPods": 110,
        "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE
        "protectKernelDefaults": False,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "volumeStatsAggPeriod": "0s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(
    *,
    kubeconfig: Path,
    node_name: str,
    pod_cidr: str,
    healthz_port: int,
    metrics_port: int,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": pod_cidr,
        "detectLocalMode": "ClusterCIDR",
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "oomScoreAdj": 0,
        # NodePorts on every local address, 127.0.0.1 included (route_localnet=1)
        "nodePortAddresses": [],
        "iptables": {"localhostNodePorts": True, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        # leave the host's conntrack sysctls alone
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def corefile(
    *, listen_ip: str, health_port: int, ready_port: int, kubeconfig: Path, cluster_domain: str
) -> str:
    return f"""\
.:53 {{
    bind {listen_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
    loadbalance
}}
"""


# --------------------------------------------------------------------------------------------
# TCP proxy (pods -> apiserver on loopback)
# --------------------------------------------------------------------------------------------


#: The proxy runs as ``python -c PROXY_CODE LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT MARKER``
#: (standard library only: about 10 MB instead of 45 MB for an interpreter with this package).
PROXY_CODE = """
import asyncio, sys
lh, lp, th, tp = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()
async def handle(r, w):
    try:
        tr, tw = await asyncio.open_connection(th, tp)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, tw), pipe(tr, w))
async def main():
    server = await asyncio.start_server(handle, lh, lp, reuse_address=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


# --------------------------------------------------------------------------------------------
# hostPath volume provisioner (PVCs of the default StorageClass)
# --------------------------------------------------------------------------------------------


def _pv_name(claim_uid: str) -> str:
    return f"pvc-{claim_uid}"


def provision_once(client: Client, base_dir: Path, node_name: str = NODE_NAME) -> int:
    """Create PVs for pending claims of :data:`STORAGE_CLASS` and delete released ones (and
    their directories); returns how many PVs were created or deleted."""
    changed = 0
    existing = {str(pv.metadata.name): pv for pv in client.list(PersistentVolume) if pv.metadata}
    for pvc in client.list(PersistentVolumeClaim, namespace="*"):
        meta, spec = pvc.metadata, pvc.spec
        if meta is None or spec is None or meta.uid is None or meta.deletionTimestamp:
            continue
        if spec.storageClassName != STORAGE_CLASS or spec.volumeName:
            continue
        name = _pv_name(meta.uid)
        if name in existing:
            continue
        requests = (spec.resources.requests if spec.resources else None) or {}
        path = base_dir / f"{meta.namespace}-{meta.name}-{meta.uid[:8]}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # any uid of the pod may write (hostPath ignores fsGroup)
        pv = _hostpath_pv(
            name=name,
            path=path,
            capacity=str(requests.get("storage", "1Gi")),
            access_modes=list(spec.accessModes or ["ReadWriteOnce"]),
            claim=(str(meta.namespace), str(meta.name), meta.uid),
            node_name=node_name,
        )
        client.create(pv)
        log.info("provisioned %s for %s/%s at %s", name, meta.namespace, meta.name, path)
        changed += 1
    for name, pv in existing.items():
        ann = (pv.metadata.annotations if pv.metadata else None) or {}
        if ann.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if pv.status is None or pv.status.phase not in ("Released", "Failed"):
            continue
        hostpath = pv.spec.hostPath.path if pv.spec and pv.spec.hostPath else None
        if hostpath and Path(hostpath).parent == base_dir:
            shutil.rmtree(hostpath, ignore_errors=True)
        with contextlib.suppress(ApiError):
            client.delete(PersistentVolume, name)
        log.info("deleted released %s", name)
        changed += 1
    return changed


def _hostpath_pv(
    *,
    name: str,
    path: Path,
    capacity: str,
    access_modes: list[str],
    claim: tuple[str, str, str],
    node_name: str,
) -> PersistentVolume:
    namespace, claim_name, uid = claim
    obj = codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": capacity},
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": "Filesystem",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": claim_name,
                    "uid": uid,
                },
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node_name],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )
    assert isinstance(obj, PersistentVolume)
    return obj


def run_provisioner(kubeconfig: Path, base_dir: Path, node_name: str, period: float = 1.0) -> None:
    """Poll and provision until killed (the node runs this as a child process)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    client = make_client(kubeconfig, FIELD_MANAGER)
    while True:
        try:
            provision_once(client, base_dir, node_name)
        except Exception as exc:  # the apiserver may be briefly unavailable
            log.warning("provisioner: %s", exc)
        time.sleep(period)


# --------------------------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------------------------


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
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    log_path: Path


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
    _procs: list[_Proc] = field(default_factory=list, init=False, repr=False)
    _owned_state_dir: bool = field(default=False, init=False, repr=False)
    _run_file: Path | None = field(default=None, init=False, repr=False)
    _record: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

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
        cleanup_stale(self.runs_dir)
        try:
            return self._start()
        except BaseException:
            self._teardown()
            raise

    def stop(self) -> None:
        """Stop and remove everything (processes, containers, mounts, bridge, iptables chains,
        cgroups, /etc/hosts line, sysctls, state)."""
        t0 = time.monotonic()
        was_running = self.info is not None or bool(self._procs) or bool(self._record)
        self._teardown()
        if was_running:
            self.timings["stop"] = time.monotonic() - t0
            log.info("node %s stopped in %.1fs", self.name, self.timings["stop"])

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
                out[p.name] = _rss(p.popen.pid)
        if self.info is not None:
            sock = str(self.info.containerd_socket)
            out["containerd-shims"] = sum(
                _rss(pid) for pid in _pids_matching("containerd-shim", sock)
            )
        return out

    def logs_dir(self) -> Path | None:
        return self.state_dir / "logs" if self.state_dir else None

    # -- start ------------------------------------------------------------------------------

    def _prepare_state_dir(self) -> Path:
        if self.state_dir is None or self._owned_state_dir:
            if self.state_dir is not None:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = Path(tempfile.mkdtemp(prefix="pulp-node-"))
            self._owned_state_dir = True
        else:
            self.state_dir = self.state_dir.absolute()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if mounts_under(self.state_dir):
                raise DevClusterError(
                    f"{self.state_dir} still has mounts (a node running there?); stop it first"
                )
            for sub in _EPHEMERAL_SUBPATHS:
                _remove(self.state_dir / sub)
        self.state_dir.chmod(0o755)
        for sub in ("logs", "containerd", "cni/net.d", "cni/ipam", "kubelet", "kube-proxy",
                    "coredns", "pod-logs"):  # fmt: skip
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        return self.state_dir

    def _runtime_dir(self, state_dir: Path) -> Path:
        """Where the containerd socket and the kubelet root-dir go: the state dir, or a short
        directory when its path is too long for the unix sockets created there (108 bytes:
        the kubelet's pod-resources/<n> socket, containerd.sock.ttrpc)."""
        if len(str(state_dir)) <= _MAX_STATE_DIR_LEN:
            return state_dir
        digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
        short = SHORT_DIR_BASE / digest
        short.mkdir(parents=True, exist_ok=True)
        return short

    def _start(self) -> NodeInfo:
        t_start = time.monotonic()
        self.timings.clear()
        state_dir = self._prepare_state_dir()
        assert self.testbin is not None
        gateway = self.gateway
        net = ipaddress.ip_network(self.pod_cidr)
        api = urllib.parse.urlsplit(self.cluster.server)
        api_host, api_port = api.hostname or "127.0.0.1", api.port or 443
        port_names = ("kubelet", "kubelet_healthz", "proxy_healthz", "proxy_metrics", "dns_health")
        ports = dict(zip((*port_names, "dns_ready"), free_ports(6), strict=True))
        runtime_dir = self._runtime_dir(state_dir)
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
            "sysctls": {k: read_sysctl(k) for k in _SYSCTLS},
            "hosts_entry": False,
            "ports": ports,
            "cluster_kubeconfig": str(self.cluster.kubeconfig),
        }
        self._register()

        # host network and cgroups
        t0 = time.monotonic()
        if _owner_alive_of_bridge(self.runs_dir, self.bridge, self._run_file):
            raise DevClusterError(f"another node runs on bridge {self.bridge}")
        check_pod_cidr(self.pod_cidr, self.bridge)
        delete_bridge(self.bridge)  # leftovers of a run nobody recorded
        ensure_bridge(self.bridge, gateway, net.prefixlen)
        for key, value in _SYSCTLS.items():
            if value is not None and read_sysctl(key) != value and not write_sysctl(key, value):
                raise DevClusterError(f"cannot set sysctl {key}={value}")
        ensure_cgroup_root()
        if self.hosts_entry:
            self._record["hosts_entry"] = add_hosts_entry(gateway, self.name, state_dir)
        self._register()
        self.timings["host-setup"] = time.monotonic() - t0

        # containerd, coredns, apiserver proxy
        t0 = time.monotonic()
        conf = state_dir / "containerd" / "config.toml"
        conf.write_text(
            containerd_config(
                root=containerd_root,
                state=state_dir / "containerd" / "state",
                socket_path=sock,
                runc_root=state_dir / "containerd" / "runc",
                cni_conf_dir=state_dir / "cni" / "net.d",
                opt_dir=state_dir / "containerd" / "opt",
            )
        )
        (state_dir / "cni" / "net.d" / "10-pulp-node.conflist").write_text(
            json.dumps(
                cni_conflist(
                    bridge=self.bridge,
                    pod_cidr=self.pod_cidr,
                    gateway=gateway,
                    ipam_dir=state_dir / "cni" / "ipam",
                ),
                indent=2,
            )
        )
        if self.containerd_root is not None:
            # a persistent image store: drop the CRI's per-container files of earlier runs
            # (their containers are deleted on stop, or right below after a crash)
            for sub in ("sandboxes", "containers"):
                shutil.rmtree(
                    containerd_root / "io.containerd.grpc.v1.cri" / sub, ignore_errors=True
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
            [
                sys.executable,
                "-I",
                "-c",
                PROXY_CODE,
                gateway,
                str(api_port),
                api_host,
                str(api_port),
                str(state_dir),  # marker for stale cleanup
            ],
        )
        ctr = Ctr(sock)
        self._wait(
            "containerd",
            lambda: sock.is_socket() and _run(ctr.cmd("version"), check=False).returncode == 0,
            [containerd],
        )
        self.timings["containerd"] = time.monotonic() - t0

        t0 = time.monotonic()
        if self.containerd_root is not None:  # a persistent store: no containers of old runs
            ctr.remove_all_containers()
        archives = [Path(a) for a in self.images]
        if not any(SANDBOX_IMAGE in archive_names(a) for a in archives):
            found = find_sandbox_archive()
            if found is not None:
                archives.insert(0, found)
        for archive in archives:
            ctr.import_archive(archive)
        if SANDBOX_IMAGE not in ctr.images():
            raise DevClusterError(
                f"the sandbox image {SANDBOX_IMAGE} is not available: build it with "
                "`hack/images/build.sh pause` or pass its archive in `images`"
            )
        self.timings["images"] = time.monotonic() - t0

        # Services the node provides (kubernetes endpoints via the proxy, kube-dns)
        t0 = time.monotonic()
        client = make_client(self.cluster.kubeconfig, FIELD_MANAGER)
        try:
            self._apply_service_endpoints(client, gateway, api_port)
            if self.storage:
                self._start_storage(client, state_dir)
            self.timings["services"] = time.monotonic() - t0

            # kubelet (a Node object of an earlier run would look Ready until it expires)
            t0 = time.monotonic()
            with contextlib.suppress(ApiError):
                client.delete(NodeResource, self.name)
            kubelet_conf = state_dir / "kubelet" / "config.yaml"
            kubelet_conf.write_text(
                yaml.safe_dump(
                    kubelet_config(
                        node_ip=gateway,
                        port=ports["kubelet"],
                        healthz_port=ports["kubelet_healthz"],
                        runtime_endpoint=f"unix://{sock}",
                        cluster_dns=self.dns_service_ip,
                        cluster_domain=self.cluster_domain,
                        pod_logs_dir=state_dir / "pod-logs",
                    ),
                    sort_keys=False,
                )
            )
            kubelet = self._spawn(
                "kubelet",
                [
                    str(self.testbin / "kubelet"),
                    f"--config={kubelet_conf}",
                    f"--kubeconfig={self.cluster.kubeconfig}",
                    f"--root-dir={kubelet_root}",
                    f"--hostname-override={self.name}",
                    f"--node-ip={gateway}",
                    f"--v={self.kubelet_verbosity}",
                ],
            )
            self._wait("the Node to be Ready", lambda: _node_ready(client, self.name), [kubelet])
            self.timings["kubelet"] = time.monotonic() - t0

            # kube-proxy
            t0 = time.monotonic()
            proxy_conf = state_dir / "kube-proxy" / "config.yaml"
            proxy_conf.write_text(
                yaml.safe_dump(
                    kube_proxy_config(
                        kubeconfig=self.cluster.kubeconfig,
                        node_name=self.name,
                        pod_cidr=self.pod_cidr,
                        healthz_port=ports["proxy_healthz"],
                        metrics_port=ports["proxy_metrics"],
                    ),
                    sort_keys=False,
                )
            )
            kube_proxy = self._spawn(
                "kube-proxy",
                [str(self.testbin / "kube-proxy"), f"--config={proxy_conf}", "--v=2"],
            )
            self._wait(
                "kube-proxy to sync",
                lambda: (
                    _probe(f"http://127.0.0.1:{ports['proxy_healthz']}/healthz")[0] == 200
                    and _nat_chain_has("KUBE-SVC-", "default/kubernetes:https")
                ),
                [kube_proxy, kubelet],
            )
            self.timings["kube-proxy"] = time.monotonic() - t0

            t0 = time.monotonic()
            self._wait(
                "CoreDNS to be ready",
                lambda: _probe(f"http://127.0.0.1:{ports['dns_ready']}/ready")[0] == 200,
                [coredns, proxy],
            )
            if self.cluster.tier == "cluster":  # the node-lifecycle controller removes it
                self._wait(
                    "the not-ready taint to go",
                    lambda: _node_ready(client, self.name, untainted=True),
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

    def _start_storage(self, client: Client, state_dir: Path) -> None:
        """The default StorageClass and the hostPath provisioner process."""
        client.apply(
            StorageClass(
                metadata=ObjectMeta(
                    name=STORAGE_CLASS,
                    annotations={"storageclass.kubernetes.io/is-default-class": "true"},
                ),
                provisioner=PROVISIONER,
                reclaimPolicy="Delete",
                volumeBindingMode="Immediate",
            ),
            force=True,
        )
        self._spawn(
            "provisioner",
            [
                sys.executable,
                "-m",
                "pulp_operator.devcluster.node",
                "provision",
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--dir={state_dir / 'volumes'}",
                f"--node-name={self.name}",
                f"--marker={state_dir}",
            ],
        )

    def _apply_service_endpoints(self, client: Client, gateway: str, api_port: int) -> None:
        labels_ep = {"endpointslice.kubernetes.io/skip-mirror": "true"}

        def slice_labels(service: str) -> dict[str, str]:
            return {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": f"{FIELD_MANAGER}.local",
            }

        # default/kubernetes -> proxy on the gateway (the apiserver listens on loopback only)
        client.apply(
            Endpoints(
                metadata=ObjectMeta(name="kubernetes", namespace="default", labels=labels_ep),
                subsets=[
                    EndpointSubset(
                        addresses=[EndpointAddress(ip=gateway)],
                        ports=[EndpointPort(name="https", port=api_port, protocol="TCP")],
                    )
                ],
            ),
            force=True,
        )
        client.apply(
            EndpointSlice(
                metadata=ObjectMeta(
                    name="kubernetes", namespace="default", labels=slice_labels("kubernetes")
                ),
                addressType="IPv4",
                endpoints=[
                    Endpoint(addresses=[gateway], conditions=EndpointConditions(ready=True))
                ],
                ports=[SliceEndpointPort(name="https", port=api_port, protocol="TCP")],
            ),
            force=True,
        )
        # kube-system/kube-dns -> CoreDNS on the gateway
        client.apply(
            Service(
                metadata=ObjectMeta(
                    name="kube-dns",
                    namespace="kube-system",
                    labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                ),
                spec=ServiceSpec(
                    clusterIP=self.dns_service_ip,
                    ports=[
                        ServicePort(name="dns", port=53, protocol="UDP", targetPort=53),
                        ServicePort(name="dns-tcp", port=53, protocol="TCP", targetPort=53),
                    ],
                ),
            ),
            force=True,
        )
        client.apply(
            Endpoints(
                metadata=ObjectMeta(name="kube-dns", namespace="kube-system", labels=labels_ep),
                subsets=[
                    EndpointSubset(
                        addresses=[EndpointAddress(ip=gateway)],
                        ports=[
                            EndpointPort(name="dns", port=53, protocol="UDP"),
                            EndpointPort(name="dns-tcp", port=53, protocol="TCP"),
                        ],
                    )
                ],
            ),
            force=True,
        )
        client.apply(
            EndpointSlice(
                metadata=ObjectMeta(
                    name="kube-dns", namespace="kube-system", labels=slice_labels("kube-dns")
                ),
                addressType="IPv4",
                endpoints=[
                    Endpoint(addresses=[gateway], conditions=EndpointConditions(ready=True))
                ],
                ports=[
                    SliceEndpointPort(name="dns", port=53, protocol="UDP"),
                    SliceEndpointPort(name="dns-tcp", port=53, protocol="TCP"),
                ],
            ),
            force=True,
        )

    def _spawn(self, name: str, cmd: Sequence[str]) -> _Proc:
        assert self.state_dir is not None
        log_path = self.state_dir / "logs" / f"{name}.log"
        env = dict(os.environ)
        for var in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                    "NO_PROXY", "no_proxy"):  # fmt: skip
            env.pop(var, None)
        env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        with log_path.open("wb") as out:
            out.write(("$ " + shlex.join(cmd) + "\n").encode())
            out.flush()
            popen = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=env,
                process_group=0,
                preexec_fn=_make_preexec(os.getpid()),
                close_fds=True,
            )
        record = ProcessRecord(
            name=name,
            pid=popen.pid,
            start_time=proc_start_time(popen.pid) or 0,
            marker=str(self.state_dir),
            log=str(log_path),
        )
        proc = _Proc(name=name, popen=popen, record=record, log_path=log_path)
        self._procs.append(proc)
        self._register()
        log.debug("started %s (pid %d), log %s", name, popen.pid, log_path)
        return proc

    def _wait(self, what: str, ready: Callable[[], bool], watched: Iterable[_Proc]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        last_error: BaseException | None = None
        watched = list(watched)
        while True:
            for proc in watched:
                code = proc.popen.poll()
                if code is not None:
                    raise DevClusterError(
                        f"{proc.name} exited with code {code} while waiting for {what}; "
                        f"log {proc.log_path}:\n{_tail(proc.log_path)}"
                    )
            try:
                if ready():
                    return
            except Exception as exc:  # transient errors while starting
                last_error = exc
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.log_path}:\n{_tail(p.log_path, 15)}" for p in self._procs)
                raise DevClusterError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}"
                    f" (last error: {last_error!r})\n{logs}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

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
        _write_json_atomic(self._run_file, data)
        if self.state_dir is not None and self.state_dir.is_dir():
            _write_json_atomic(self.state_dir / "node.json", data)

    # -- stop -------------------------------------------------------------------------------

    def _teardown(self) -> None:
        procs = {p.name: p for p in self._procs}
        step = _StepTimer(self.timings, "stop:")
        # the kubelet first, so that it does not restart containers
        with step("kubelet"):
            if "kubelet" in procs:
                self._stop_proc(procs["kubelet"])
        with step("services"):
            for name in ("kube-proxy", "coredns", "apiserver-proxy", "provisioner"):
                if name in procs:
                    self._stop_proc(procs[name])
        if self._record:
            with step("api-objects"):
                _delete_api_objects(self._record, self.name)
            sock = Path(self._record["containerd_socket"])
            with step("containers"):
                if "containerd" in procs and procs["containerd"].popen.poll() is None:
                    Ctr(sock).remove_all_containers()
        with step("containerd"):
            if "containerd" in procs:
                self._stop_proc(procs["containerd"])
            for proc in self._procs:  # anything else
                self._stop_proc(proc)
        self._procs.clear()
        self.info = None
        if self._record:
            with step("host"):
                problems = _cleanup_host(self._record)
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
                    for sub in _EPHEMERAL_SUBPATHS:
                        _remove(self.state_dir / sub)
            else:
                log.warning("not removing %s: it still has mounts", self.state_dir)

    def _stop_proc(self, proc: _Proc) -> None:
        if proc.popen.poll() is None:
            _signal_group(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM, killing it", proc.name, proc.popen.pid)
        _signal_group(proc.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# Helpers of start/stop
# --------------------------------------------------------------------------------------------


class _StepTimer:
    """``with step("x"):`` records the duration in ``timings[prefix + "x"]`` (debug-logged)."""

    def __init__(self, timings: dict[str, float], prefix: str) -> None:
        self.timings = timings
        self.prefix = prefix

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[self.prefix + name] = elapsed = time.monotonic() - t0
            log.debug("%s%s took %.2fs", self.prefix, name, elapsed)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _pids_matching(*needles: str) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmdline = proc_cmdline(int(entry.name))
            if cmdline and all(n in cmdline for n in needles):
                out.append(int(entry.name))
    return out


def _node_ready(client: Client, name: str, untainted: bool = False) -> bool:
    try:
        node = client.get(NodeResource, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    conds = (node.status.conditions if node.status else None) or []
    if not any(c.type == "Ready" and c.status == "True" for c in conds):
        return False
    if untainted and node.spec is not None and node.spec.taints:
        return not any(t.key == "node.kubernetes.io/not-ready" for t in node.spec.taints)
    return True


def _nat_chain_has(prefix: str, comment: str) -> bool:
    res = _run(["iptables", "-w", "5", "-t", "nat", "-S"], check=False)
    return any(prefix in line and comment in line for line in res.stdout.splitlines())


def _owner_alive_of_bridge(runs_dir: Path | None, bridge: str, own: Path | None) -> bool:
    if runs_dir is None or not runs_dir.is_dir():
        return False
    for path in runs_dir.glob("*.json"):
        if own is not None and path == own:
            continue
        data = _read_json(path)
        if data and data.get("bridge") == bridge and _owner_alive(data):
            return True
    return False


def _delete_api_objects(record: Mapping[str, Any], node_name: str) -> None:
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


def _cleanup_host(record: Mapping[str, Any]) -> list[str]:
    """Undo everything a node changed on the host (processes must be stopped already, or are
    killed here). Returns what could not be cleaned."""
    problems: list[str] = []
    state_dir = Path(record["state_dir"])
    sock = str(record.get("containerd_socket", ""))
    runc_root = Path(record.get("runc_root", state_dir / "containerd" / "runc"))
    # containers left behind (containerd gone): runc directly, then shims, then the cgroups
    for ns_dir in runc_root.glob("*") if runc_root.is_dir() else []:
        res = _run(["runc", "--root", str(ns_dir), "list", "-q"], check=False)
        for cid in res.stdout.split():
            _run(["runc", "--root", str(ns_dir), "delete", "--force", cid], check=False)
    if sock:
        for pid in _pids_matching("containerd-shim", sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    cgroup_root = str(record.get("cgroup_root", CGROUP_ROOT))
    _kill_cgroup_processes(cgroup_root)
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
        data = _read_json(path)
        if data is not None and _owner_alive(data):
            continue
        if data is not None:
            log.warning("cleaning up a stale node run (%s)", data.get("state_dir"))
            _cleanup_record(data, timeout)
            cleaned += 1
        path.unlink(missing_ok=True)
    return cleaned


def _cleanup_record(data: Mapping[str, Any], timeout: float = 10.0) -> list[str]:
    records = _records_from(data)
    order = ["kubelet", "kube-proxy", "coredns", "apiserver-proxy", "provisioner", "containerd"]
    records.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    for rec in records:
        for survivor in _kill_records([rec], timeout):
            log.warning("could not kill leftover %s (pid %d)", survivor.name, survivor.pid)
    _delete_api_objects(data, str(data.get("name", NODE_NAME)))
    problems = _cleanup_host(data)
    state_dir = Path(data["state_dir"])
    if not mounts_under(state_dir):
        if data.get("owned_state_dir"):
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            for sub in _EPHEMERAL_SUBPATHS:
                _remove(state_dir / sub)
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
    for pid in _pids_matching(str(state_dir)):
        if pid != me:
            found.append(f"process {pid}: {proc_cmdline(pid)[:120]}")
    found += [f"mount {m}" for m in mounts_under(state_dir, SHORT_DIR_BASE)]
    if SHORT_DIR_BASE.is_dir() and any(SHORT_DIR_BASE.iterdir()):
        found.append(f"runtime dirs in {SHORT_DIR_BASE}")
    if link_exists(bridge):
        found.append(f"bridge {bridge}")
    found += [f"veth {link.get('ifname')}" for link in _links(bridge)]
    found += [f"iptables {c}" for c in iptables_chains()]
    for hierarchy in _cgroup_hierarchies():
        if (hierarchy / CGROUP_ROOT).exists():
            found.append(f"cgroup {hierarchy / CGROUP_ROOT}")
    return found


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def cluster_info_from_state_dir(state_dir: Path) -> ClusterInfo:
    """The :class:`ClusterInfo` of a control plane run by ``devcluster up`` in ``state_dir``."""
    data = _read_json(state_dir / "state.json")
    if not data or not data.get("ready"):
        raise DevClusterError(f"no running control plane recorded in {state_dir}/state.json")
    kubeconfig = Path(data["kubeconfig"])
    config = yaml.safe_load(kubeconfig.read_text())
    token = str(config["users"][0]["user"]["token"])
    return ClusterInfo(
        tier=cast_tier(str(data["tier"])),
        kubeconfig=kubeconfig,
        server=str(data["server"]),
        token=token,
        ca_file=Path(data["ca_file"]),
        testbin=Path(data["testbin"]),
        state_dir=state_dir,
    )


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def cmd_up(args: argparse.Namespace) -> int:
    from pulp_operator.devcluster.controlplane import ControlPlane, install_crds

    state_dir = Path(args.state_dir).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    data = _read_json(state_dir / "up.json")
    if data is not None and _owner_alive(data):
        log.error("a node already runs in %s (pid %s)", state_dir, data.get("owner_pid"))
        return 1
    images = [Path(p) for p in args.image]
    if args.test_image:
        images.append(busybox_image_archive())
    cp: ControlPlane | None = None
    node: Node | None = None
    with _stop_signals():
        try:
            if args.cluster_state_dir:
                cluster = cluster_info_from_state_dir(Path(args.cluster_state_dir).absolute())
            else:
                cp = ControlPlane(tier="cluster", nodes=0, state_dir=state_dir / "cluster")
                cluster = cp.start()
                if args.crds:
                    install_crds(cluster.kubeconfig, Path(args.crds))
            node = Node(
                cluster=cluster,
                state_dir=state_dir / "node",
                images=images,
                containerd_root=Path(args.containerd_root) if args.containerd_root else None,
            )
            _write_json_atomic(
                state_dir / "up.json",
                {
                    "owner_pid": os.getpid(),
                    "owner_start_time": proc_start_time(os.getpid()),
                    "node_state_dir": str(state_dir / "node"),
                },
            )
            info = node.start()
            print(f"node {info.name} ready in {node.timings['total']:.1f}s (IP {info.node_ip})")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"containerd: ctr -a {info.containerd_socket} -n {K8S_NAMESPACE} ...")
            print(f"logs: {state_dir / 'node' / 'logs'}")
            print("running until SIGINT/SIGTERM (Ctrl-C or `node down`)", flush=True)
            while True:
                dead = [n for n, ok in node.alive().items() if not ok]
                if dead:
                    log.error("%s exited unexpectedly", ", ".join(dead))
                    return 1
                time.sleep(1)
        except _Stop as exc:
            log.info("received %s, stopping", exc)
            return 0
        except DevClusterError as exc:
            log.error("%s", exc)
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            if node is not None:
                node.stop()
                stops = {k: round(v, 2) for k, v in node.timings.items() if k.startswith("stop")}
                log.info("stop timings: %s", stops)
            if cp is not None:
                cp.stop()
            (state_dir / "up.json").unlink(missing_ok=True)


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()
    data = _read_json(state_dir / "up.json")
    if data is not None and _owner_alive(data) and int(data["owner_pid"]) != os.getpid():
        os.kill(int(data["owner_pid"]), signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and _owner_alive(data):
            time.sleep(0.2)
    cleaned = cleanup_stale()
    print(f"node in {state_dir} stopped ({cleaned} stale run(s) cleaned)")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from pulp_operator.devcluster.controlplane import cleanup_stale_runs

    print(f"{cleanup_stale()} stale node run(s) cleaned")
    print(f"{cleanup_stale_runs()} stale control plane run(s) cleaned")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    run_provisioner(Path(args.kubeconfig), Path(args.dir), args.node_name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pulp_operator.devcluster.node",
        description="A real single Kubernetes node (containerd, kubelet, kube-proxy, CoreDNS) on"
        " this machine, against a local control plane. Needs root.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="start a node (and, unless --cluster-state-dir, a control plane) in the foreground",
    )
    up.add_argument("--state-dir", required=True)
    up.add_argument(
        "--cluster-state-dir",
        help="use the control plane of `devcluster up --state-dir DIR` (default: start a"
        " 'cluster' tier control plane without fake nodes in STATE_DIR/cluster)",
    )
    up.add_argument("--crds", metavar="DIR", help="install the CRDs of DIR (own control plane)")
    up.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="ARCHIVE",
        help="OCI archive to import (names from ARCHIVE.names); repeatable",
    )
    up.add_argument("--test-image", action="store_true", help=f"import {TEST_IMAGE}")
    up.add_argument("--containerd-root", help="persistent containerd root (image store)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the node of `up --state-dir DIR`")
    down.add_argument("--state-dir", required=True)
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)
    cleanup = sub.add_parser("cleanup", help="clean up nodes of crashed runs")
    cleanup.set_defaults(func=cmd_cleanup)
    provision = sub.add_parser("provision", help=argparse.SUPPRESS)
    provision.add_argument("--kubeconfig", required=True)
    provision.add_argument("--dir", required=True)
    provision.add_argument("--node-name", default=NODE_NAME)
    provision.add_argument("--marker", default="")
    provision.set_defaults(func=cmd_provision)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
