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

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lightkube import Client, KubeConfig, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import NodeSpec, NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Node, ServiceAccount

log = logging.getLogger("pulp_operator.devcluster")

#: Kubernetes version built by hack/testbin/build.sh (keep both in sync).
K8S_VERSION = "v1.36.3"

Tier = Literal["apiserver", "cluster"]
TIERS: tuple[Tier, ...] = ("apiserver", "cluster")

APISERVER_BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver")
CLUSTER_BINARIES: tuple[str, ...] = (
    *APISERVER_BINARIES,
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)
KWOK_STAGES_FILE = "kwok-stages.yaml"

#: Annotation that makes kwok manage a Node (and only those: --manage-all-nodes=false).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
NODE_ALLOCATABLE: dict[str, str] = {"cpu": "32", "memory": "256Gi", "pods": "110"}

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
FIELD_MANAGER = "pulp-operator-devcluster"

_TESTBIN_ENV = "PULP_OPERATOR_TESTBIN"
_RUNS_ENV = "PULP_OPERATOR_DEVCLUSTER_RUNS"

# Subpaths of the state dir that a start recreates and a stop removes (logs/ stays when the state
# dir was given by the caller, so that a failed run can be inspected).
_EPHEMERAL_SUBPATHS = ("etcd", "pki", "kwok", "kubeconfig", "state.json", "tokens.csv")


class DevClusterError(RuntimeError):
    """The local control plane could not be started or stopped."""


class MissingBinaryError(DevClusterError):
    """A binary of the local control plane is not built; the message says which and where."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def default_testbin_dir() -> Path:
    """Where hack/testbin/build.sh puts the binaries: $PULP_OPERATOR_TESTBIN or the user cache."""
    env = os.environ.get(_TESTBIN_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pulp-operator" / "testbin" / K8S_VERSION


def default_runs_dir() -> Path:
    """Registry of running control planes (one JSON file per run), used to clean up leftovers."""
    env = os.environ.get(_RUNS_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pulp-operator" / "devcluster" / "runs"


def required_files(tier: Tier) -> tuple[str, ...]:
    if tier == "apiserver":
        return APISERVER_BINARIES
    return (*CLUSTER_BINARIES, KWOK_STAGES_FILE)


def check_binaries(tier: Tier, testbin: Path | None = None) -> Path:
    """Raise :class:`MissingBinaryError` unless every file the tier needs is in ``testbin``."""
    if tier not in TIERS:
        raise ValueError(f"unknown devcluster tier {tier!r}; expected one of {', '.join(TIERS)}")
    testbin = (testbin or default_testbin_dir()).absolute()
    missing: list[str] = []
    for name in required_files(tier):
        path = testbin / name
        if name.endswith(".yaml"):
            ok = path.is_file() and path.stat().st_size > 0
        else:
            ok = path.is_file() and os.access(path, os.X_OK)
        if not ok:
            missing.append(name)
    if missing:
        source = (
            f"${_TESTBIN_ENV}" if os.environ.get(_TESTBIN_ENV) else f"default; set ${_TESTBIN_ENV}"
        )
        raise MissingBinaryError(
            f"devcluster tier {tier!r}: missing {', '.join(missing)} in {testbin} ({source} to "
            f"use another directory). Build the binaries with `make testbin` "
            f"(runs hack/testbin/build.sh; the first build takes 20-40 minutes)."
        )
    return testbin


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _make_preexec(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent (SIGKILL on its death).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is only set when
    spawning from the main thread; otherwise the runs registry still cleans up after a crash.
    """
    libc = _load_libc() if threading.current_thread() is threading.main_thread() else None

    def preexec() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def proc_start_time(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def proc_cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    return proc_start_time(pid) is not None


@dataclass
class ProcessRecord:
    """A child process as recorded in state.json and in the runs registry."""

    name: str
    pid: int
    start_time: int
    marker: str  # must appear in /proc/<pid>/cmdline before we ever signal the pid
    log: str

    def matches(self) -> bool:
        """Whether ``pid`` is still this very process (not a reused pid)."""
        return proc_start_time(self.pid) == self.start_time and self.marker in proc_cmdline(
            self.pid
        )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_records(records: Sequence[ProcessRecord], timeout: float) -> list[ProcessRecord]:
    """SIGTERM (then SIGKILL) processes we do not own as children; returns those still alive."""
    targets = [r for r in records if r.matches()]
    for rec in targets:
        _signal_group(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(r.matches() for r in targets):
        time.sleep(0.1)
    for rec in targets:
        if rec.matches():
            _signal_group(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(r.matches() for r in targets):
        time.sleep(0.05)
    return [r for r in targets if r.matches()]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """``count`` distinct currently free TCP ports on 127.0.0.1."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (TIME_WAIT connections do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Runs registry (stale cleanup)
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _records_from(data: Mapping[str, Any]) -> list[ProcessRecord]:
    out: list[ProcessRecord] = []
    for item in data.get("processes", []):
        with contextlib.suppress(TypeError, KeyError, ValueError):
            out.append(
                ProcessRecord(
                    name=str(item["name"]),
                    pid=int(item["pid"]),
                    start_time=int(item["start_time"]),
                    marker=str(item["marker"]),
                    log=str(item.get("log", "")),
                )
            )
    return out


def _owner_alive(data: Mapping[str, Any]) -> bool:
    try:
        pid, start = int(data["owner_pid"]), int(data["owner_start_time"])
    except (KeyError, TypeError, ValueError):
        return False
    return proc_start_time(pid) == start


def _cleanup_run(data: Mapping[str, Any], timeout: float) -> None:
    survivors = _kill_records(_records_from(data), timeout)
    for rec in survivors:
        log.warning("could not kill leftover %s (pid %d)", rec.name, rec.pid)
    state_dir = data.get("state_dir")
    if state_dir and not survivors:
        path = Path(state_dir)
        if data.get("owned_state_dir"):
            shutil.rmtree(path, ignore_errors=True)
        else:
            for sub in _EPHEMERAL_SUBPATHS:
                _remove(path / sub)


def cleanup_stale_runs(runs_dir: Path | None = None, timeout: float = 10.0) -> int:
    """Kill processes of recorded runs whose owner process is gone; returns how many runs."""
    runs_dir = runs_dir or default_runs_dir()
    if not runs_dir.is_dir():
        return 0
    cleaned = 0
    for path in sorted(runs_dir.glob("*.json")):
        data = _read_json(path)
        if data is not None and _owner_alive(data):
            continue
        if data is not None:
            leftovers = [r for r in _records_from(data) if r.matches()]
            if leftovers:
                log.warning(
                    "cleaning up a stale devcluster run (%s): killing %s",
                    data.get("state_dir"),
                    ", ".join(f"{r.name}[{r.pid}]" for r in leftovers),
                )
            _cleanup_run(data, timeout)
            cleaned += 1
        path.unlink(missing_ok=True)
    return cleaned


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# HTTP probes
# --------------------------------------------------------------------------------------------


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _probe(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, str]:
    """GET ``url``; returns (status, body), status 0 when nothing answered."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    handler = urllib.request.HTTPSHandler(context=_insecure_context())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""


# --------------------------------------------------------------------------------------------
# The control plane
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterInfo:
    """How to reach a running control plane."""

    tier: Tier
    kubeconfig: Path
    server: str
    token: str
    ca_file: Path
    testbin: Path
    state_dir: Path

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A copy of ``base`` (default os.environ) with KUBECONFIG pointing at this cluster."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    log_path: Path


@dataclass
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass
class ControlPlane:
    """Start/stop a local control plane; usable as a context manager.

    ``state_dir`` None means a fresh temporary directory that ``stop()`` removes; a given
    directory is kept (its ``logs/`` too) but what a start writes there is removed on stop.
    """

    tier: Tier = "apiserver"
    state_dir: Path | None = None
    testbin: Path | None = None
    nodes: int = 2
    startup_timeout: float = 180.0
    stop_timeout: float = 15.0
    runs_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: ClusterInfo | None = field(default=None, init=False)
    _children: list[_Child] = field(default_factory=list, init=False, repr=False)
    _owned_state_dir: bool = field(default=False, init=False, repr=False)
    _run_file: Path | None = field(default=None, init=False, repr=False)
    _ports: _Ports | None = field(default=None, init=False, repr=False)

    # -- public API -------------------------------------------------------------------------

    def __enter__(self) -> ClusterInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.popen.pid for c in self._children}

    @property
    def ports(self) -> dict[str, int]:
        return dict(vars(self._ports)) if self._ports else {}

    def start(self) -> ClusterInfo:
        if self.info is not None:
            raise DevClusterError("this control plane is already running")
        if self.tier not in TIERS:
            raise ValueError(f"unknown devcluster tier {self.tier!r}")
        self.testbin = check_binaries(self.tier, self.testbin)
        self.runs_dir = self.runs_dir or default_runs_dir()
        cleanup_stale_runs(self.runs_dir)
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except _PortInUse as exc:
                self._teardown()
                if attempt == attempts:
                    raise DevClusterError(str(exc)) from None
                log.warning("port collision (%s), retrying with other ports", exc)
            except BaseException:
                self._teardown()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop all processes (SIGTERM, then SIGKILL after ``stop_timeout``), remove state."""
        t0 = time.monotonic()
        was_running = self.info is not None or bool(self._children)
        self._teardown()
        if was_running:
            self.timings["stop"] = time.monotonic() - t0
            log.info("devcluster %s stopped in %.1fs", self.tier, self.timings["stop"])

    def alive(self) -> dict[str, bool]:
        return {c.name: c.popen.poll() is None for c in self._children}

    # -- start ------------------------------------------------------------------------------

    def _prepare_state_dir(self) -> Path:
        if self.state_dir is None or self._owned_state_dir:
            if self.state_dir is not None:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = Path(tempfile.mkdtemp(prefix=f"pulp-devcluster-{self.tier}-"))
            self._owned_state_dir = True
        else:
            self.state_dir = self.state_dir.absolute()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            for sub in _EPHEMERAL_SUBPATHS:
                _remove(self.state_dir / sub)
        state_dir = self.state_dir
        for sub in ("etcd", "pki", "kwok", "logs"):
            (state_dir / sub).mkdir(mode=0o700, exist_ok=True)
        return state_dir

    def _start_once(self) -> ClusterInfo:
        t_start = time.monotonic()
        self.timings.clear()
        state_dir = self._prepare_state_dir()
        assert self.testbin is not None
        assert self.runs_dir is not None
        p = free_ports(5)
        self._ports = ports = _Ports(*p)
        self._register_run()

        # etcd
        t0 = time.monotonic()
        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        etcd = self._spawn(
            "etcd",
            [
                "--name=devcluster",
                f"--data-dir={state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=devcluster={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd to be healthy", lambda: _probe(f"{etcd_url}/health")[0] == 200, [etcd])
        self.timings["etcd"] = time.monotonic() - t0

        # kube-apiserver
        t0 = time.monotonic()
        pki = state_dir / "pki"
        sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
        _write_service_account_keys(sa_key, sa_pub)
        token = secrets.token_urlsafe(32)
        tokens = state_dir / "tokens.csv"
        tokens.write_text(f'{token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)
        serving = pki / "serving"
        server = f"https://127.0.0.1:{ports.apiserver}"
        args = [
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={serving}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            "--advertise-address=127.0.0.1",
            # a real node registers by name; reach its kubelet by IP (no DNS for node names here)
            "--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={tokens}",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ]
        if self.tier == "apiserver":
            args.append("--disable-admission-plugins=ServiceAccount")
        apiserver = self._spawn("kube-apiserver", args)

        def apiserver_ready() -> bool:
            return _probe(f"{server}/readyz", token)[0] == 200

        self._wait("kube-apiserver /readyz", apiserver_ready, [etcd, apiserver])
        ca_file = serving / "apiserver.crt"
        if not ca_file.is_file():
            raise DevClusterError(f"kube-apiserver did not write its certificate {ca_file}")
        kubeconfig = state_dir / "kubeconfig"
        _write_kubeconfig(kubeconfig, server, ca_file, token)
        self.timings["kube-apiserver"] = time.monotonic() - t0

        info = ClusterInfo(
            tier=self.tier,
            kubeconfig=kubeconfig,
            server=server,
            token=token,
            ca_file=ca_file,
            testbin=self.testbin,
            state_dir=state_dir,
        )
        if self.tier == "cluster":
            self._start_cluster_components(info, ports, sa_key)
        self.timings["total"] = time.monotonic() - t_start
        self.info = info
        self._register_run()
        log.info(
            "devcluster %s ready in %.1fs (%s) at %s, kubeconfig %s",
            self.tier,
            self.timings["total"],
            ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total"),
            server,
            kubeconfig,
        )
        return info

    def _start_cluster_components(self, info: ClusterInfo, ports: _Ports, sa_key: Path) -> None:
        assert self.testbin is not None
        state_dir, kc = info.state_dir, str(info.kubeconfig)
        common = [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--kube-api-qps=200",  # client-side throttling slows the start-up otherwise
            "--kube-api-burst=400",
        ]
        t0 = time.monotonic()
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={ports.controller_manager}",
                f"--cert-dir={state_dir / 'pki' / 'kcm'}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={info.ca_file}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                "--cluster-name=devcluster",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                *common,
                f"--secure-port={ports.scheduler}",
                f"--cert-dir={state_dir / 'pki' / 'scheduler'}",
            ],
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kc}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector="
                f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
                f"--config={self.testbin / KWOK_STAGES_FILE}",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
            ],
            env={"HOME": str(state_dir / "kwok")},  # kwok reads/writes ~/.kwok
        )
        watched = list(self._children)
        self._wait(
            "kube-controller-manager /healthz",
            lambda: _probe(f"https://127.0.0.1:{ports.controller_manager}/healthz")[0] == 200,
            watched,
        )
        self._wait(
            "kube-scheduler /healthz",
            lambda: _probe(f"https://127.0.0.1:{ports.scheduler}/healthz")[0] == 200,
            watched,
        )
        self.timings["controllers"] = time.monotonic() - t0

        t0 = time.monotonic()
        client = make_client(info.kubeconfig)
        names = [f"kwok-node-{i}" for i in range(self.nodes)]
        for name in names:
            node = Node(
                metadata=ObjectMeta(
                    name=name,
                    annotations={
                        KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    labels={
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node-role.kubernetes.io/agent": "",
                    },
                ),
                spec=NodeSpec(),
                status=NodeStatus(
                    allocatable=dict(NODE_ALLOCATABLE), capacity=dict(NODE_ALLOCATABLE)
                ),
            )
            client.create(node)

        def nodes_ready() -> bool:
            for name in names:
                node = client.get(Node, name)
                if node.spec is not None and node.spec.taints:
                    return False
                conds = (node.status.conditions if node.status else None) or []
                if not any(c.type == "Ready" and c.status == "True" for c in conds):
                    return False
            return True

        def default_service_account() -> bool:
            try:
                client.get(ServiceAccount, "default", namespace="default")
            except ApiError as exc:
                if exc.status.code == 404:
                    return False
                raise
            return True

        self._wait(f"{self.nodes} kwok nodes to be Ready and untainted", nodes_ready, watched)
        self.timings["nodes"] = time.monotonic() - t0
        t0 = time.monotonic()
        self._wait(
            "the default ServiceAccount (controller-manager)", default_service_account, watched
        )
        self.timings["serviceaccount"] = time.monotonic() - t0
        client.close()

    def _spawn(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> _Child:
        assert self.testbin is not None
        assert self.state_dir is not None
        log_path = self.state_dir / "logs" / f"{name}.log"
        cmd = [str(self.testbin / name), *args]
        child_env = dict(os.environ)
        for var in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            child_env.pop(var, None)
        if env:
            child_env.update(env)
        with log_path.open("wb") as out:
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=child_env,
                process_group=0,
                preexec_fn=_make_preexec(os.getpid()),
                close_fds=True,
            )
        start_time = proc_start_time(popen.pid) or 0
        record = ProcessRecord(
            name=name, pid=popen.pid, start_time=start_time, marker=str(self.state_dir),
            log=str(log_path),
        )  # fmt: skip
        child = _Child(name=name, popen=popen, record=record, log_path=log_path)
        self._children.append(child)
        self._register_run()
        log.debug("started %s (pid %d), log %s", name, popen.pid, log_path)
        return child

    def _wait(self, what: str, ready: Callable[[], bool], watched: Iterable[_Child]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        last_error: BaseException | None = None
        while True:
            for child in watched:
                code = child.popen.poll()
                if code is not None:
                    tail = _tail(child.log_path)
                    message = (
                        f"{child.name} exited with code {code} while waiting for {what}; "
                        f"log {child.log_path}:\n{tail}"
                    )
                    if "address already in use" in tail:
                        raise _PortInUse(message)
                    raise DevClusterError(message)
            try:
                if ready():
                    return
            except Exception as exc:  # transient API errors while starting
                last_error = exc
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {c.log_path}:\n{_tail(c.log_path, 15)}" for c in self._children
                )
                raise DevClusterError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}"
                    f" (last error: {last_error!r})\n{logs}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    # -- registry ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What state.json holds (also the runs registry entry)."""
        owner = os.getpid()
        info = self.info
        return {
            "tier": self.tier,
            "owner_pid": owner,
            "owner_start_time": proc_start_time(owner),
            "state_dir": str(self.state_dir),
            "owned_state_dir": self._owned_state_dir,
            "run_file": str(self._run_file) if self._run_file else None,
            "processes": [vars(c.record) for c in self._children],
            "ports": self.ports,
            "kubeconfig": str(info.kubeconfig) if info else None,
            "server": info.server if info else None,
            "ca_file": str(info.ca_file) if info else None,
            "testbin": str(self.testbin),
            "ready": info is not None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def _register_run(self) -> None:
        assert self.runs_dir is not None
        assert self.state_dir is not None
        if self._run_file is None:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self._run_file = self.runs_dir / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        data = self.state()
        _write_json_atomic(self._run_file, data)
        if self.state_dir.is_dir():
            _write_json_atomic(self.state_dir / "state.json", data)

    # -- stop -------------------------------------------------------------------------------

    def _terminate(self, children: Sequence[_Child]) -> None:
        for child in children:
            if child.popen.poll() is None:
                _signal_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in children:
            if child.popen.poll() is None:
                log.warning("%s (pid %d) ignored SIGTERM, killing it", child.name, child.popen.pid)
                _signal_group(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
            # anything else left in the process group
            _signal_group(child.popen.pid, signal.SIGKILL)

    def _teardown(self) -> None:
        # etcd last: kube-apiserver hangs in its shutdown while etcd is gone.
        children = list(reversed(self._children))
        self._terminate([c for c in children if c.name != "etcd"])
        self._terminate([c for c in children if c.name == "etcd"])
        self._children.clear()
        self.info = None
        if self.state_dir is not None:
            if self._owned_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            else:
                for sub in _EPHEMERAL_SUBPATHS:
                    _remove(self.state_dir / sub)
        if self._run_file is not None:
            self._run_file.unlink(missing_ok=True)
            self._run_file = None


class _PortInUse(DevClusterError):
    pass


def running_owner(state_dir: Path) -> int | None:
    """Pid of the live process that runs the control plane recorded in ``state_dir``, if any."""
    data = _read_json(state_dir / "state.json")
    if data is None or not _owner_alive(data):
        return None
    return int(data["owner_pid"])


def stop_from_state_dir(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the control plane recorded in ``state_dir/state.json`` (``devcluster down``).

    Asks the owning process (``devcluster up``) to stop with SIGTERM; if it does not finish in
    time or is gone, kills the recorded processes directly. Returns False if nothing was running.
    """
    data = _read_json(state_dir / "state.json")
    if data is None:
        return False
    if _owner_alive(data) and int(data["owner_pid"]) != os.getpid():
        owner = int(data["owner_pid"])
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _owner_alive(data):
            time.sleep(0.1)
    _cleanup_run(data, timeout=10.0)
    run_file = data.get("run_file")
    if run_file:
        Path(run_file).unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _write_service_account_keys(key_path: Path, pub_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "devcluster",
                "context": {"cluster": "devcluster", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "devcluster",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)


# --------------------------------------------------------------------------------------------
# API helpers (lightkube)
# --------------------------------------------------------------------------------------------


def make_client(kubeconfig: Path, field_manager: str = FIELD_MANAGER) -> Client:
    """A synchronous lightkube client for ``kubeconfig`` that ignores proxy settings."""
    return Client(
        config=KubeConfig.from_file(kubeconfig), field_manager=field_manager, trust_env=False
    )


def load_crd_documents(directory: Path) -> list[dict[str, Any]]:
    """CustomResourceDefinition documents of the *.yaml/*.yml files in ``directory``.

    A missing or empty directory gives an empty list; other kinds of documents (e.g. a
    kustomization.yaml) are skipped.
    """
    if not directory.is_dir():
        return []
    docs: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        with path.open() as fh:
            for doc in yaml.safe_load_all(fh):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
                elif doc:
                    log.debug("skipping a non-CRD document in %s", path)
    return docs


def install_crds(
    kubeconfig: Path,
    directory: Path,
    *,
    timeout: float = 60.0,
    field_manager: str = FIELD_MANAGER,
) -> list[str]:
    """Server-side apply the CRDs found in ``directory`` and wait until they are Established.

    Returns the names of the CRDs (empty when the directory is missing or holds none).
    """
    docs = load_crd_documents(directory)
    if not docs:
        log.info("no CRDs found in %s", directory)
        return []
    names: list[str] = []
    client = make_client(kubeconfig, field_manager)
    try:
        for doc in docs:
            obj = codecs.from_dict(doc)
            client.apply(obj, force=True)
            names.append(str(doc["metadata"]["name"]))

        def established(name: str) -> bool:
            crd = client.get(CustomResourceDefinition, name)
            conds = (crd.status.conditions if crd.status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conds)

        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pending = [n for n in pending if not established(n)]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise DevClusterError(f"CRDs not Established after {timeout:.0f}s: {pending}")
            time.sleep(0.1)
    finally:
        client.close()
    log.info("installed %d CRD(s) from %s: %s", len(names), directory, ", ".join(names))
    return names


def sanitize_name(text: str, max_len: int = 50) -> str:
    """A DNS-1123 label fragment made of ``text`` (lowercase, [a-z0-9-])."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:max_len].rstrip("-") or "x"


def cast_tier(value: str) -> Tier:
    if value not in TIERS:
        raise ValueError(f"unknown devcluster tier {value!r}; expected one of {', '.join(TIERS)}")
    return value
