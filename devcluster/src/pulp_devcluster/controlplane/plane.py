"""The control plane: start (etcd, kube-apiserver, and for tier ``cluster`` the controllers and
kwok with fake nodes), wait until each part is ready, stop, and record the run."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node, ServiceAccount

from pulp_devcluster.audit import AUDIT_LOG, AUDIT_POLICY, audit_args, write_audit_policy
from pulp_devcluster.controlplane.components import (
    apiserver_args,
    controller_manager_args,
    etcd_args,
    kwok_args,
    kwok_node,
    scheduler_args,
    write_kubeconfig,
    write_service_account_keys,
    write_tokens,
)
from pulp_devcluster.controlplane.runs import EPHEMERAL_SUBPATHS, cleanup_stale_runs
from pulp_devcluster.controlplane.settings import (
    SERVICE_CLUSTER_IP_RANGE,
    TIERS,
    Tier,
    check_binaries,
    default_runs_dir,
)
from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.kubeapi import make_client
from pulp_devcluster.processes import (
    ProcessRecord,
    free_ports,
    make_preexec,
    probe,
    proc_start_time,
    signal_group,
    tail,
)
from pulp_devcluster.registry import remove_path, write_json_atomic

log = logging.getLogger("pulp_devcluster")


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
    #: JSON lines of every API request (see :mod:`pulp_devcluster.audit`), with ``audit=True``.
    audit_log: Path | None = None
    #: Kubeconfigs of the extra users (``users``; cluster-admins of their own name).
    kubeconfigs: Mapping[str, Path] = field(default_factory=dict, hash=False)

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
    ``audit`` writes the audit log of every request (:class:`pulp_devcluster.audit.AuditLog`);
    ``users`` are extra cluster-admins with kubeconfigs of their own (``info.kubeconfigs``), so
    that the requests of one process can be told from the others' in the audit log.
    """

    tier: Tier = "apiserver"
    state_dir: Path | None = None
    testbin: Path | None = None
    nodes: int = 2
    startup_timeout: float = 180.0
    stop_timeout: float = 15.0
    runs_dir: Path | None = None
    audit: bool = False
    users: Sequence[str] = ()
    #: --service-cluster-ip-range (a /24 holds ~250 Services; benchmarks need more)
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE
    timings: dict[str, float] = field(default_factory=dict)
    info: ClusterInfo | None = field(default=None, init=False)
    _children: list[_Child] = field(default_factory=list, init=False, repr=False)
    _owned_state_dir: bool = field(default=False, init=False, repr=False)
    _run_file: Path | None = field(default=None, init=False, repr=False)
    _ports: _Ports | None = field(default=None, init=False, repr=False)
    _apiserver_args: list[str] = field(default_factory=list, init=False, repr=False)

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

    def stop_apiserver(self, crash: bool = False) -> None:
        """Stop kube-apiserver (SIGTERM, or SIGKILL with `crash`), leaving etcd and everything
        else running: an API outage for the clients of this control plane."""
        child = next((c for c in self._children if c.name == "kube-apiserver"), None)
        if child is None:
            raise DevClusterError("kube-apiserver is not running")
        if crash:
            signal_group(child.popen.pid, signal.SIGKILL)
            child.popen.wait()
        else:
            self._terminate([child])
        self._children.remove(child)
        self._register_run()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again after stop_apiserver(): same arguments, port, certificate
        and etcd, so that clients reconnect to what they knew. Waits for /readyz."""
        if self.info is None or not self._apiserver_args:
            raise DevClusterError("this control plane is not running")
        if any(c.name == "kube-apiserver" for c in self._children):
            raise DevClusterError("kube-apiserver is already running")
        info = self.info
        restarts = sum(1 for _ in (info.state_dir / "logs").glob("kube-apiserver.restart*.log"))
        child = self._spawn(
            "kube-apiserver", self._apiserver_args, log_name=f"kube-apiserver.restart{restarts + 1}"
        )
        self._wait(
            "kube-apiserver /readyz after its restart",
            lambda: probe(f"{info.server}/readyz", info.token)[0] == 200,
            [child],
        )

    @contextlib.contextmanager
    def second_apiserver(self) -> Iterator[Path]:
        """Another kube-apiserver on the same etcd (an HA control plane has several): yields an
        admin kubeconfig for it. Its certificate is its own; stopped when the context ends."""
        if self.info is None or not self._apiserver_args or self.state_dir is None:
            raise DevClusterError("this control plane is not running")
        taken = set(self.ports.values())
        port = next(p for p in free_ports(len(taken) + 1) if p not in taken)
        name = f"kube-apiserver-{port}"
        serving = self.state_dir / "pki" / name
        server = f"https://127.0.0.1:{port}"
        args = [
            f"--cert-dir={serving}" if a.startswith("--cert-dir=") else
            f"--secure-port={port}" if a.startswith("--secure-port=") else a
            for a in self._apiserver_args
            if not a.startswith(("--audit-",))
        ]  # fmt: skip
        child = self._spawn("kube-apiserver", args, log_name=name)
        try:
            self._wait(
                f"the second kube-apiserver /readyz on port {port}",
                lambda: probe(f"{server}/readyz", self.info.token if self.info else "")[0] == 200,
                [child],
            )
            kubeconfig = self.state_dir / f"{name}.kubeconfig"
            write_kubeconfig(kubeconfig, server, serving / "apiserver.crt", self.info.token)
            yield kubeconfig
        finally:
            self._terminate([child])
            if child in self._children:
                self._children.remove(child)
            self._register_run()

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
            for sub in EPHEMERAL_SUBPATHS:
                remove_path(self.state_dir / sub)
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
        etcd = self._spawn("etcd", etcd_args(state_dir / "etcd", etcd_url, peer_url))
        self._wait("etcd to be healthy", lambda: probe(f"{etcd_url}/health")[0] == 200, [etcd])
        self.timings["etcd"] = time.monotonic() - t0

        # kube-apiserver
        t0 = time.monotonic()
        pki = state_dir / "pki"
        sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
        write_service_account_keys(sa_key, sa_pub)
        token = secrets.token_urlsafe(32)
        user_tokens = {user: secrets.token_urlsafe(32) for user in self.users}
        tokens = write_tokens(state_dir / "tokens.csv", {"admin": token, **user_tokens})
        serving = pki / "serving"
        server = f"https://127.0.0.1:{ports.apiserver}"
        args = apiserver_args(
            tier=self.tier,
            etcd_url=etcd_url,
            serving=serving,
            port=ports.apiserver,
            server=server,
            sa_key=sa_key,
            sa_pub=sa_pub,
            tokens=tokens,
            service_cidr=self.service_cidr,
        )
        audit_log = state_dir / AUDIT_LOG if self.audit else None
        if audit_log is not None:
            args += audit_args(write_audit_policy(state_dir / AUDIT_POLICY), audit_log)
        self._apiserver_args = args
        apiserver = self._spawn("kube-apiserver", args)

        def apiserver_ready() -> bool:
            return probe(f"{server}/readyz", token)[0] == 200

        self._wait("kube-apiserver /readyz", apiserver_ready, [etcd, apiserver])
        ca_file = serving / "apiserver.crt"
        if not ca_file.is_file():
            raise DevClusterError(f"kube-apiserver did not write its certificate {ca_file}")
        kubeconfig = state_dir / "kubeconfig"
        write_kubeconfig(kubeconfig, server, ca_file, token)
        kubeconfigs = {}
        for user, user_token in user_tokens.items():
            kubeconfigs[user] = state_dir / "users" / f"{user}.kubeconfig"
            kubeconfigs[user].parent.mkdir(mode=0o700, exist_ok=True)
            write_kubeconfig(kubeconfigs[user], server, ca_file, user_token, user=user)
        self.timings["kube-apiserver"] = time.monotonic() - t0

        info = ClusterInfo(
            tier=self.tier,
            kubeconfig=kubeconfig,
            server=server,
            token=token,
            ca_file=ca_file,
            testbin=self.testbin,
            state_dir=state_dir,
            audit_log=audit_log,
            kubeconfigs=kubeconfigs,
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
        state_dir, kc = info.state_dir, info.kubeconfig
        t0 = time.monotonic()
        self._spawn(
            "kube-controller-manager",
            controller_manager_args(
                kubeconfig=kc,
                port=ports.controller_manager,
                cert_dir=state_dir / "pki" / "kcm",
                sa_key=sa_key,
                ca_file=info.ca_file,
                service_cidr=self.service_cidr,
            ),
        )
        self._spawn(
            "kube-scheduler",
            scheduler_args(
                kubeconfig=kc, port=ports.scheduler, cert_dir=state_dir / "pki" / "scheduler"
            ),
        )
        self._spawn(
            "kwok",
            kwok_args(kubeconfig=kc, testbin=self.testbin),
            env={"HOME": str(state_dir / "kwok")},  # kwok reads/writes ~/.kwok
        )
        watched = list(self._children)
        self._wait(
            "kube-controller-manager /healthz",
            lambda: probe(f"https://127.0.0.1:{ports.controller_manager}/healthz")[0] == 200,
            watched,
        )
        self._wait(
            "kube-scheduler /healthz",
            lambda: probe(f"https://127.0.0.1:{ports.scheduler}/healthz")[0] == 200,
            watched,
        )
        self.timings["controllers"] = time.monotonic() - t0

        t0 = time.monotonic()
        client = make_client(info.kubeconfig)
        names = [f"kwok-node-{i}" for i in range(self.nodes)]
        for name in names:
            client.create(kwok_node(name))

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
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_name: str | None = None,
    ) -> _Child:
        assert self.testbin is not None
        assert self.state_dir is not None
        log_path = self.state_dir / "logs" / f"{log_name or name}.log"
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
                preexec_fn=make_preexec(os.getpid()),
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
                    log_tail = tail(child.log_path)
                    message = (
                        f"{child.name} exited with code {code} while waiting for {what}; "
                        f"log {child.log_path}:\n{log_tail}"
                    )
                    if "address already in use" in log_tail:
                        raise _PortInUse(message)
                    raise DevClusterError(message)
            try:
                if ready():
                    return
            except Exception as exc:  # transient API errors while starting
                last_error = exc
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {c.log_path}:\n{tail(c.log_path, 15)}" for c in self._children
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
            "audit_log": str(info.audit_log) if info and info.audit_log else None,
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
        write_json_atomic(self._run_file, data)
        if self.state_dir.is_dir():
            write_json_atomic(self.state_dir / "state.json", data)

    # -- stop -------------------------------------------------------------------------------

    def _terminate(self, children: Sequence[_Child]) -> None:
        for child in children:
            if child.popen.poll() is None:
                signal_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in children:
            if child.popen.poll() is None:
                log.warning("%s (pid %d) ignored SIGTERM, killing it", child.name, child.popen.pid)
                signal_group(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
            # anything else left in the process group
            signal_group(child.popen.pid, signal.SIGKILL)

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
                for sub in EPHEMERAL_SUBPATHS:
                    remove_path(self.state_dir / sub)
        if self._run_file is not None:
            self._run_file.unlink(missing_ok=True)
            self._run_file = None


class _PortInUse(DevClusterError):
    pass
