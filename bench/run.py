"""`make bench`: the operator's speed, memory and API traffic, measured against the targets of
issue 13, written to bench/results/ and to the table in README.md.

    python -m bench.run                      # everything (about 15 minutes on 2 cores)
    python -m bench.run --only single,scale  # some scenarios; the README keeps the others' rows
    python -m bench.run --quick              # fewer runs, smaller scales: a smoke test

Each scenario starts a control plane of its own (the API-server tier, or the simulated cluster
where readiness matters) with an audit log, and the operator as a separate process under its own
user: the audit log counts its requests, psutil its memory and CPU. Nothing here asserts a time:
the figures are recorded, compared with the targets in the README, and the misses explained there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim
from lightkube.types import PatchType

from pulp_devcluster import AuditLog, ClusterInfo, ControlPlane, Tier, install_crds
from pulp_operator import names
from pulp_operator.kube import PulpResource

from .harness import (
    OPERATOR_USER,
    REPO,
    WRITE_VERBS,
    NodePorts,
    OperatorProcess,
    PulpMaker,
    PulpWatch,
    Requests,
    client_for,
    converged,
    create,
    create_many,
    machine,
    mb,
    namespaces,
    quantiles,
    reads,
    writes,
)
from .report import update_readme

RESULTS = REPO / "bench" / "results"


@dataclass
class Env:
    """One control plane, its audit log and a client of the benchmark's own."""

    cluster: ClusterInfo
    client: AsyncClient
    requests: Requests
    logs: Path
    quick: bool
    profile: bool = False
    operator_env: dict[str, str] = field(default_factory=dict)
    server_pids: dict[str, int] = field(default_factory=dict)
    ports: NodePorts = field(default_factory=NodePorts)
    operators: list[OperatorProcess] = field(default_factory=list)
    """Every operator process started, stopped at the end of the scenario whatever happens."""

    def server_cpu(self) -> float:
        """CPU seconds of kube-apiserver and etcd so far."""
        total = 0.0
        for pid in self.server_pids.values():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    maker: PulpMaker = field(default_factory=PulpMaker)

    def operator(self, namespaces_: list[str], name: str, *extra: str) -> OperatorProcess:
        profile = self.logs / f"{name}.pyisession" if self.profile else None
        op = OperatorProcess(
            self.cluster,
            namespaces_,
            self.logs / f"{name}.log",
            extra,
            env=dict(self.operator_env),
            profile=profile,
        )
        self.operators.append(op)
        return op


async def started(env: Env, op: OperatorProcess) -> float:
    """Starts the operator and waits until its start-up requests are over (lists, watches);
    returns the seconds that took."""
    since = env.requests.mark()
    op.start()
    while op.health()[0] != 200:
        if not op.alive():
            raise RuntimeError(f"the operator exited; see {op.log_path}")
        await asyncio.sleep(0.05)
    await env.requests.quiet(since, settle=2.0)
    return time.monotonic() - op.started


async def bind_claims(env: Env, namespace: str, pulp: str) -> None:
    """The API-server tier has no volume controller: play its part for the Pulp's claims."""
    for claim in (names.file_storage(pulp), names.redis_data(pulp)):
        await env.client.patch(
            PersistentVolumeClaim.Status,
            claim,
            {"status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )


# --- scenarios ------------------------------------------------------------------------------


async def single(env: Env) -> dict[str, Any]:
    """One Pulp of the simple sample: create -> converged, 20 times; requests of the first pass
    and of a no-op pass; drift repair; requests at start; idle RSS and writes."""
    ns, runs = "bench-single", 5 if env.quick else 20
    await namespaces(env.client, ns)
    await create_many(env.client, env.maker.referenced(ns))
    expected = env.maker.expected_children()
    out: dict[str, Any] = {}
    op = env.operator([ns], "single")
    async with PulpWatch(env.client).running() as watch:
        await started(env, op)
        times, first, noop = [], Counter[str](), Counter[str]()
        for i in range(runs):
            name = f"single-{i}"
            since = env.requests.mark()
            t0 = time.monotonic()
            await create(env.client, env.maker.pulp(ns, name, env.ports.take()))
            done = await converged(env.client, watch, [(ns, name)], expected, within=120)
            times.append(done - t0)
            if i == 0:
                first = env.requests.count(since, await env.requests.quiet(since))
                await bind_claims(env, ns, name)
                await env.requests.quiet(env.requests.mark())
                since = env.requests.mark()
                await env.client.patch(
                    ConfigMap,
                    "settings",
                    {"metadata": {"annotations": {"bench/touched": str(time.time())}}},
                    namespace=ns,
                )
                noop = env.requests.count(since, await env.requests.quiet(since))
            await env.client.delete(PulpResource, name, namespace=ns)
        out["create_to_converged_s"] = quantiles(times)
        out["first_pass_requests"] = dict(sorted(first.items()))
        out["first_pass_requests_total"] = sum(first.values())
        out["noop_pass_requests"] = dict(sorted(noop.items()))
        out["touch_reads_writes"] = [reads(noop), writes(noop)]

        # drift: the api Deployment deleted, restored (a new object of the same name)
        name = "drift"
        await create(env.client, env.maker.pulp(ns, name, env.ports.take()))
        await converged(env.client, watch, [(ns, name)], expected, within=120)
        repairs = []
        for _ in range(runs):
            old = await env.client.get(Deployment, names.api(name), namespace=ns)
            assert old.metadata is not None
            t0 = time.monotonic()
            await env.client.delete(Deployment, names.api(name), namespace=ns)
            repairs.append(await _replaced(env.client, ns, names.api(name), old.metadata.uid, t0))
        out["drift_repair_s"] = quantiles(repairs)
        await env.requests.quiet(env.requests.mark())
        out["idle_rss_mb_1_pulp"] = mb(op.rss())
        op.stop()

        # a fresh operator with one converged Pulp: its start-up requests
        op = env.operator([ns], "single-restart")
        since = env.requests.mark()
        await started(env, op)
        start_counts = env.requests.count(since, env.requests.mark())
        out["start_requests"] = dict(sorted(start_counts.items()))
        out["start_requests_total"] = sum(start_counts.values())
        op.stop()
    return out


async def _replaced(
    client: AsyncClient, namespace: str, name: str, old_uid: str | None, t0: float
) -> float:
    """Seconds from t0 until an object `name` with another uid exists."""
    async for _, obj in client.watch(
        Deployment, namespace=namespace, fields={"metadata.name": name}
    ):
        if obj.metadata is not None and obj.metadata.uid != old_uid:
            return time.monotonic() - t0
    raise AssertionError("watch ended")


async def scale(env: Env, count: int) -> dict[str, Any]:
    """`count` Pulps across 10 namespaces, created at once."""
    spaces = [f"bench-scale{count}-{i}" for i in range(10)]
    await namespaces(env.client, *spaces)
    for ns in spaces:
        await create_many(env.client, env.maker.referenced(ns))
    expected = env.maker.expected_children()
    op = env.operator(spaces, f"scale-{count}")
    out: dict[str, Any] = {"pulps": count, "namespaces": len(spaces)}
    async with PulpWatch(env.client).running() as watch:
        await started(env, op)
        out["rss_before_mb"] = mb(op.rss())
        pulps = [(spaces[i % len(spaces)], f"p{i}") for i in range(count)]
        bodies = [env.maker.pulp(ns, name, env.ports.take()) for ns, name in pulps]
        cpu0, server0 = op.cpu_seconds(), env.server_cpu()
        since = env.requests.mark()
        t0 = time.monotonic()
        await create_many(env.client, bodies, concurrency=32)
        done = await converged(env.client, watch, pulps, expected, within=900)
        out["all_converged_s"] = round(done - t0, 2)
        out["cpu_s"] = round(op.cpu_seconds() - cpu0, 1)
        out["api_server_and_etcd_cpu_s"] = round(env.server_cpu() - server0, 1)
        quiet = await env.requests.quiet(since, settle=2.0, within=600)
        out["requests_to_converge"] = sum(env.requests.count(since, quiet).values())
        out["peak_rss_mb"] = mb(op.peak_rss)
        # converged as on a cluster with a volume provisioner: the claims are Bound
        limit = asyncio.Semaphore(32)

        async def bind(ns: str, name: str) -> None:
            async with limit:
                await bind_claims(env, ns, name)

        await asyncio.gather(*(bind(ns, name) for ns, name in pulps))
        await env.requests.quiet(env.requests.mark(), settle=2.0, within=600)
        # the minute after
        cpu1, idle_since = op.cpu_seconds(), env.requests.mark()
        await asyncio.sleep(60)
        idle = env.requests.count(idle_since, env.requests.mark())
        out["idle_cpu_s_per_min"] = round(op.cpu_seconds() - cpu1, 2)
        out["idle_requests_per_min"] = dict(sorted(idle.items()))
        out["idle_writes_per_min"] = writes(idle)
        out["idle_rss_mb"] = mb(op.rss())
        op.stop()

        # a fresh operator with them all existing: start -> first reconcile, -> all passed
        op = env.operator(spaces, f"scale-{count}-restart")
        op.start()
        first = all_passed = None
        while all_passed is None:
            passes = op.reconciles()
            now = time.monotonic() - op.started
            if passes >= 1 and first is None:
                first = now
            if passes >= count:
                all_passed = now
            if now > 600:
                raise TimeoutError("the restarted operator did not reconcile every Pulp")
            await asyncio.sleep(0.05)
        out["start_to_first_reconcile_s"] = round(first or 0.0, 2)
        out["start_to_all_reconciled_s"] = round(all_passed, 2)
        out["restart_peak_rss_mb"] = mb(op.peak_rss)
        op.stop()
    return out


async def unrelated(env: Env) -> dict[str, Any]:
    """RSS with 2,000 unrelated 50 KB Secrets and ConfigMaps in the watched namespaces, against
    the same operator without them."""
    count = 200 if env.quick else 2000
    spaces = [f"bench-unrelated-{i}" for i in range(10)]
    await namespaces(env.client, *spaces)
    out: dict[str, Any] = {"objects": count, "size_kb": 50}
    base = env.operator(spaces, "unrelated-before")
    await started(env, base)
    await asyncio.sleep(35)  # steady state: the operator gives freed memory back every 30 s
    out["rss_without_mb"] = mb(base.rss())
    base.stop()
    payload = "x" * (50 * 1024 - 200)
    bodies = []
    for i in range(count):
        kind = "Secret" if i % 2 else "ConfigMap"
        data_key = "stringData" if kind == "Secret" else "data"
        bodies.append(
            {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": f"unrelated-{i}", "namespace": spaces[i % len(spaces)]},
                data_key: {"blob": payload},
            }
        )
    await create_many(env.client, bodies, concurrency=16)
    op = env.operator(spaces, "unrelated-after")
    out["start_s"] = round(await started(env, op), 2)
    await asyncio.sleep(35)
    out["rss_with_mb"] = mb(op.rss())
    out["peak_rss_with_mb"] = mb(op.peak_rss)
    out["rss_delta_mb"] = round(out["rss_with_mb"] - out["rss_without_mb"], 1)
    op.stop()
    return out


async def per_namespace(env: Env) -> dict[str, Any]:
    """Idle RSS watching 1 namespace and 51 namespaces: the growth per namespace, with
    cluster-wide watches filtered to the namespaces (the default when allowed) and with one watch
    per kind and namespace."""
    many = 11 if env.quick else 51
    spaces = [f"bench-ns-{i}" for i in range(many)]
    await namespaces(env.client, *spaces)
    out: dict[str, Any] = {"namespaces": many}
    for mode, suffix in (("cluster", ""), ("namespaces", "_namespaced")):
        rss = {}
        for label, watched in (("one", spaces[:1]), ("many", spaces)):
            op = env.operator(watched, f"namespaces-{mode}-{len(watched)}", "--watch-scope", mode)
            await started(env, op)
            rss[label] = op.rss()
            op.stop()
        out[f"rss_one{suffix}_mb"] = mb(rss["one"])
        out[f"rss_many{suffix}_mb"] = mb(rss["many"])
        out[f"rss_per_namespace{suffix}_mb"] = round(
            (rss["many"] - rss["one"]) / (many - 1) / 2**20, 2
        )
    return out


async def ready(env: Env) -> dict[str, Any]:
    """The simulated cluster (pods become ready on kwok nodes): simple sample create -> Ready,
    writes after Ready; 20 Pulps in one namespace and in 20 namespaces until all Ready."""
    from tests.integration.pulps import provide_volumes  # PersistentVolumes to bind to

    from pulp_operator.kube import Kube

    kube = Kube(env.client)
    out: dict[str, Any] = {}
    runs = 2 if env.quick else 5
    times = []
    ns = "bench-ready"
    await namespaces(env.client, ns)
    await create_many(env.client, env.maker.referenced(ns))
    await provide_volumes(kube, ns, count=3 * (runs + 1))
    op = env.operator([ns], "ready")
    async with PulpWatch(env.client).running() as watch:
        await started(env, op)
        for i in range(runs):
            name = f"ready-{i}"
            t0 = time.monotonic()
            await create(env.client, env.maker.pulp(ns, name, env.ports.take()))
            times.append(await watch.until([(ns, name)], ready=True, within=300) - t0)
        out["create_to_ready_s"] = quantiles(times)
        # as upstream's figure: the first 10 s after Ready (the Ready Event is posted right after
        # the status that says Ready), then the minute after them
        since = env.requests.mark()
        await asyncio.sleep(10)
        first = env.requests.mark()
        out["writes_in_10s_after_ready"] = writes(env.requests.count(since, first))
        await asyncio.sleep(60)
        until = env.requests.mark()
        out["writes_in_minute_after_ready"] = writes(env.requests.count(first, until))
        out["writes_after_ready"] = [
            f"{e.verb} {e.resource}{'/' + e.subresource if e.subresource else ''}"
            + (f" {e.name}" if e.name else "")
            for e in env.requests.entries(since, until)
            if e.verb in WRITE_VERBS
        ]
        out["idle_rss_mb"] = mb(op.rss())
        op.stop()

        count = 6 if env.quick else 20
        for label, spaces in (
            ("one_namespace", [f"bench-ready1-{i}" for i in range(1)]),
            ("own_namespaces", [f"bench-ready20-{i}" for i in range(count)]),
        ):
            await namespaces(env.client, *spaces)
            for space in spaces:
                await create_many(env.client, env.maker.referenced(space))
                await provide_volumes(kube, space, count=3 * count // len(spaces))
            op = env.operator(spaces, f"ready-{label}")
            await started(env, op)
            pulps = [(spaces[i % len(spaces)], f"r{i}") for i in range(count)]
            t0 = time.monotonic()
            await create_many(
                env.client, [env.maker.pulp(s, n, env.ports.take()) for s, n in pulps]
            )
            done = await watch.until(pulps, ready=True, within=900)
            out[f"{count}_pulps_{label}_ready_s"] = round(done - t0, 1)
            out[f"{count}_pulps_{label}_peak_rss_mb"] = mb(op.peak_rss)
            op.stop()
    return out


Scenario = Callable[[Env], Awaitable[dict[str, Any]]]


def _scale(count: int) -> Scenario:
    async def run(env: Env) -> dict[str, Any]:
        return await scale(env, 30 if env.quick else count)

    return run


SCENARIOS: dict[str, tuple[Tier, Scenario]] = {
    "single": ("apiserver", single),
    "scale100": ("apiserver", _scale(100)),
    "scale300": ("apiserver", _scale(300)),
    "unrelated": ("apiserver", unrelated),
    "namespaces": ("apiserver", per_namespace),
    "ready": ("cluster", ready),
}


async def run_scenario(
    name: str,
    tier: Tier,
    scenario: Scenario,
    quick: bool,
    profile: bool,
    operator_env: dict[str, str],
    audit: bool = True,
) -> dict[str, Any]:
    logs = RESULTS / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(
        tier=tier,
        state_dir=logs / "cluster",
        audit=audit,
        users=(OPERATOR_USER,),
        # the simulated cluster's kwok nodes take 110 pods each, and the `ready` scenario runs
        # ~45 Pulps of ~7 pods (the API-server tier has no nodes)
        nodes=6,
        service_cidr="10.0.0.0/16",  # 300 Pulps have 1,500 Services
    )
    info = plane.start()
    try:
        install_crds(info.kubeconfig, REPO / "config" / "crd")
        client = client_for(info)
        try:
            requests = Requests(AuditLog.of(info) if audit else None)
            env = Env(info, client, requests, logs, quick, profile, dict(operator_env))
            env.server_pids = {
                k: v for k, v in plane.pids.items() if k in ("etcd", "kube-apiserver")
            }
            t0 = time.monotonic()
            try:
                result = await scenario(env)
            finally:
                for op in env.operators:
                    op.stop()
            result["scenario_s"] = round(time.monotonic() - t0, 1)
            return result
        finally:
            await client.close()
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated scenarios of {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller scales")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    parser.add_argument(
        "--profile", action="store_true", help="profile the operator (pyinstrument, in the logs)"
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the operator process (repeatable), to measure variants",
    )
    parser.add_argument(
        "--no-audit",
        action="store_true",
        help="no audit log in the API server (times without its cost; requests are not counted)",
    )
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [c for c in chosen if c not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}")
    operator_env = dict(item.split("=", 1) for item in args.operator_env)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": args.quick or bool(operator_env) or args.no_audit,
        "audit": not args.no_audit,
        "operator_env": operator_env,
        "scenarios": {},
    }
    for name in chosen:
        tier, scenario = SCENARIOS[name]
        print(f"[bench] {name} ({tier} tier) ...", flush=True)
        t0 = time.monotonic()
        results["scenarios"][name] = asyncio.run(
            run_scenario(
                name, tier, scenario, args.quick, args.profile, operator_env, not args.no_audit
            )
        )
        print(
            f"[bench] {name} done in {time.monotonic() - t0:.0f}s: "
            + json.dumps(results["scenarios"][name]),
            flush=True,
        )
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = results["date"].replace(":", "").replace("+0000", "Z")
    path = RESULTS / f"{stamp}{'-quick' if results['quick'] else ''}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"[bench] results in {path}")
    if not args.no_readme and not results["quick"]:
        update_readme(REPO / "README.md", RESULTS)
        print("[bench] README.md table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
