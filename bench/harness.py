"""The pieces of the benchmark: the operator as a measured process, Pulps made from the upstream
simple sample, and the moments they converge as seen from outside the operator.

Everything is observed from the outside, the way a user would: the operator runs as its own
process (``pulp-operator run``) under its own user, so that the control plane's audit log counts
its requests and psutil measures its memory and CPU alone; convergence is read from a watch on the
Pulps (the first status write) and checked against a listing of the children it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from prometheus_client.parser import text_string_to_metric_families

from pulp_devcluster import AuditEntry, AuditLog, ClusterInfo
from pulp_operator import names
from pulp_operator.kube import OWNED_KINDS, PulpResource, kind_key, resource_class
from pulp_operator.render import render

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "upstream-samples"
OPERATOR_USER = "operator"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": round(at(0.5), 3),
        "p95": round(at(0.95), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": len(ordered),
    }


# --- the operator as a process --------------------------------------------------------------


@dataclass
class OperatorProcess:
    """`pulp-operator run` under the audited user, with its RSS sampled every 50 ms."""

    cluster: ClusterInfo
    namespaces: Sequence[str]
    log_path: Path
    extra: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    profile: Path | None = None
    """Write a pyinstrument profile of the operator there (text) when it stops."""
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    started: float = 0.0
    peak_rss: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _ps: psutil.Process | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def start(self) -> OperatorProcess:
        args = [sys.executable, "-m", "pulp_operator.cli", "run"]
        if self.profile is not None:
            renderer = "session" if self.profile.suffix == ".pyisession" else "text"
            args[1:1] = ["-m", "pyinstrument", "-r", renderer, "-o", str(self.profile)]
        if self.namespaces:
            for ns in self.namespaces:
                args += ["--namespace", ns]
        else:
            args.append("--all-namespaces")
        args += [
            "--health-address",
            f"http://127.0.0.1:{self.health_port}/healthz",
            "--metrics-port",
            str(self.metrics_port),
            *self.extra,
        ]
        env = self.cluster.env()
        env["KUBECONFIG"] = str(self.cluster.kubeconfigs[OPERATOR_USER])
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started = time.monotonic()
            self._proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._ps = psutil.Process(self._proc.pid)
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.rss())

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def rss(self) -> int:
        assert self._ps is not None
        return int(self._ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def metrics(self) -> dict[str, float]:
        """The operator's Prometheus samples, by name with labels (`name{a="b"}`)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def health(self) -> tuple[int, str]:
        """Status and body of the health endpoint (0 while it does not answer)."""
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def reconciles(self) -> float:
        """Reconcile passes so far (0 until the metrics endpoint answers)."""
        try:
            found = self.metrics()
        except OSError:
            return 0.0
        return sum(v for k, v in found.items() if k.startswith("pulp_operator_reconciles_total"))

    def stop(self, sig: int = 15) -> None:
        self._stop.set()
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._sampler is not None:
            self._sampler.join(5)


# --- Pulps ----------------------------------------------------------------------------------


def simple_sample() -> list[dict[str, Any]]:
    path = SAMPLES / "simple.yaml"
    if not path.is_file():
        raise SystemExit(f"the upstream samples are missing: {path} (expected beside the repo)")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@dataclass(frozen=True)
class PulpMaker:
    """Pulps like the upstream simple sample: its Secret and ConfigMap once per namespace, then
    any number of Pulps (each with a NodePort of its own: NodePorts are cluster-wide)."""

    docs: list[dict[str, Any]] = field(default_factory=simple_sample)

    @property
    def template(self) -> dict[str, Any]:
        return next(d for d in self.docs if d["kind"] == "Pulp")

    def referenced(self, namespace: str) -> list[dict[str, Any]]:
        out = []
        for doc in self.docs:
            if doc["kind"] in ("Secret", "ConfigMap"):
                body = copy.deepcopy(doc)
                body["metadata"]["namespace"] = namespace
                out.append(body)
        return out

    def pulp(self, namespace: str, name: str, nodeport: int) -> dict[str, Any]:
        body = copy.deepcopy(self.template)
        body["metadata"] = {"name": name, "namespace": namespace}
        body["spec"]["nodeport_port"] = nodeport
        return body

    def expected_children(self) -> Counter[str]:
        """Kinds of the objects the operator creates for one such Pulp (from `render`)."""
        rendered = render(self.docs, namespace="bench")
        return Counter(o["kind"] for o in rendered.objects)


class NodePorts:
    """Hands out NodePorts of the 30000-32767 range, each once."""

    def __init__(self) -> None:
        self._next = 30000

    def take(self) -> int:
        port, self._next = self._next, self._next + 1
        if port > 32767:
            raise RuntimeError("out of NodePorts")
        return port


def client_for(cluster: ClusterInfo) -> AsyncClient:
    return AsyncClient(
        config=KubeConfig.from_file(cluster.kubeconfig), field_manager="bench", trust_env=False
    )


async def create(client: AsyncClient, body: dict[str, Any]) -> None:
    await client.create(resource_class(body).from_dict(body))  # type: ignore[attr-defined]


async def create_many(
    client: AsyncClient, bodies: Iterable[dict[str, Any]], concurrency: int = 16
) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with limit:
            await create(client, body)

    await asyncio.gather(*(one(b) for b in bodies))


async def namespaces(client: AsyncClient, *names_: str) -> None:
    for name in names_:
        with contextlib.suppress(ApiError):
            await client.create(Namespace(metadata=ObjectMeta(name=name)))


# --- convergence, as seen from outside ------------------------------------------------------


@dataclass
class PulpWatch:
    """Watches every Pulp of the cluster; records when each first had a status written
    (conditions for its current generation) and when it first was Ready."""

    client: AsyncClient
    status_at: dict[tuple[str, str], float] = field(default_factory=dict)
    ready_at: dict[tuple[str, str], float] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PulpWatch]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async for _, obj in self.client.watch(PulpResource, namespace="*"):
                    self._see(obj.to_dict())  # type: ignore[no-untyped-call]
            except Exception as exc:  # a stream cut short: watch again (events are replayed)
                print(f"pulp watch: {exc!r}; watching again", file=sys.stderr)
                await asyncio.sleep(0.1)

    def _see(self, pulp: dict[str, Any]) -> None:
        now = time.monotonic()
        meta = pulp.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        conditions = (pulp.get("status") or {}).get("conditions") or []
        generation = meta.get("generation", 1)
        if conditions and all(c.get("observedGeneration") == generation for c in conditions):
            self.status_at.setdefault(key, now)
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            self.ready_at.setdefault(key, now)
        self._changed.set()

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            self.status_at.pop(key, None)
            self.ready_at.pop(key, None)

    async def until(self, keys: Iterable[tuple[str, str]], ready: bool, within: float) -> float:
        """Until every key has a status (or is Ready); returns the time the last one did."""
        wanted = set(keys)
        seen = self.ready_at if ready else self.status_at
        deadline = time.monotonic() + within
        while not wanted <= set(seen):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(wanted - set(seen))
                raise TimeoutError(f"{len(missing)} Pulps not converged, e.g. {missing[:3]}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
        return max(seen[k] for k in wanted)


async def children(client: AsyncClient, namespace: str) -> dict[str, Counter[str]]:
    """Kinds of the objects owned by each Pulp of a namespace (by the owned-by label)."""
    out: dict[str, Counter[str]] = {}
    for cls in OWNED_KINDS:
        async for obj in client.list(
            cls, namespace=namespace, labels={names.OWNED_LABEL: None}, chunk_size=500
        ):
            meta = obj.metadata  # type: ignore[attr-defined]
            owner = (meta.labels or {})[names.OWNED_LABEL]
            out.setdefault(owner, Counter())[kind_key(cls)] += 1
    return out


async def check_children(
    client: AsyncClient, pulps: Iterable[tuple[str, str]], expected: Counter[str]
) -> list[str]:
    """Pulps whose owned objects are not what the sample renders (empty: all complete)."""
    by_ns: dict[str, list[str]] = {}
    for ns, name in pulps:
        by_ns.setdefault(ns, []).append(name)
    wrong = []
    for ns, pulp_names in by_ns.items():
        found = await children(client, ns)
        for name in pulp_names:
            if found.get(name, Counter()) != expected:
                wrong.append(f"{ns}/{name}: {dict(found.get(name, Counter()))}")
    return wrong


async def converged(
    client: AsyncClient,
    watch: PulpWatch,
    pulps: Sequence[tuple[str, str]],
    expected: Counter[str],
    within: float,
) -> float:
    """The moment every Pulp had its status written with all its children applied."""
    last = await watch.until(pulps, ready=False, within=within)
    deadline = time.monotonic() + within
    while True:
        wrong = await check_children(client, pulps, expected)
        if not wrong:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"children incomplete: {wrong[:3]}")
        await asyncio.sleep(0.1)
        last = time.monotonic()


# --- requests, as the API server saw them ---------------------------------------------------


@dataclass
class Requests:
    """The operator's requests by verb between two marks of the audit log (None: a control
    plane without one, to time without its cost; nothing is counted then)."""

    audit: AuditLog | None

    def mark(self) -> int:
        return self.audit.mark() if self.audit is not None else 0

    def count(self, since: int, until: int | None = None) -> Counter[str]:
        if self.audit is None:
            return Counter()
        return self.audit.count(since, until, username=OPERATOR_USER)

    def entries(self, since: int, until: int | None = None) -> list[AuditEntry]:
        if self.audit is None:
            return []
        return self.audit.requests(since, until, username=OPERATOR_USER)

    async def quiet(self, since: int, settle: float = 2.0, within: float = 120.0) -> int:
        """Waits until the operator made no request for `settle` seconds; returns a mark."""
        if self.audit is None:
            await asyncio.sleep(settle)
            return 0
        deadline = time.monotonic() + within
        last = sum(self.count(since).values())
        calm_since = time.monotonic()
        while time.monotonic() - calm_since < settle:
            if time.monotonic() > deadline:
                raise TimeoutError("the operator kept making requests")
            await asyncio.sleep(0.25)
            now = sum(self.count(since).values())
            if now != last:
                last, calm_since = now, time.monotonic()
        return self.mark()


def writes(counts: Counter[str]) -> int:
    return sum(n for verb, n in counts.items() if verb in WRITE_VERBS)


def reads(counts: Counter[str]) -> int:
    return sum(n for verb, n in counts.items() if verb not in WRITE_VERBS)


def mb(value: float) -> float:
    return round(value / 2**20, 1)
