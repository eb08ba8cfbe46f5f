"""The README's table of the latest figures against the targets of issue 13 and the upstream Go
operator's figures (given in the issue; not measured here).

The table sits between two markers in README.md and is rewritten by `make bench` from the newest
full (not --quick) result of each scenario in bench/results/; the notes on misses beside it are
written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"

Figures = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    figure: str
    scenario: str
    measured: Callable[[dict[str, Any]], str]
    target: str = ""
    upstream: str = ""
    met: Callable[[dict[str, Any]], bool | None] = lambda _: None
    """True/False against the target; None where there is no numeric target."""


def _q(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda s: f"p50 {s[key]['p50']:.2f} s, p95 {s[key]['p95']:.2f} s"


def _verbs(counts: dict[str, int]) -> str:
    return ", ".join(f"{verb} {n}" for verb, n in sorted(counts.items())) or "none"


def _scale_rows(count: int, limit: float) -> tuple[Row, ...]:
    def converged(s: dict[str, Any]) -> bool:
        return bool(s["all_converged_s"] <= limit)

    def rss_met(s: dict[str, Any]) -> bool | None:
        return bool(s["peak_rss_mb"] <= 150) if count == 300 else None

    return (
        Row(
            f"{count} Pulps in 10 namespaces at once: all converged",
            f"scale{count}",
            lambda s: (
                f"{s['all_converged_s']:.1f} s ({s['cpu_s']:.0f} CPU s,"
                f" {s['requests_to_converge']} requests)"
            ),
            f"≤ {limit:.0f} s",
            "",
            converged,
        ),
        Row(
            f"{count} Pulps: peak RSS / idle RSS",
            f"scale{count}",
            lambda s: f"{s['peak_rss_mb']:.0f} MB / {s['idle_rss_mb']:.0f} MB",
            "≤ 150 MB" if count == 300 else "",
            "",
            rss_met,
        ),
        Row(
            f"{count} Pulps: the 60 s after: CPU, requests, writes",
            f"scale{count}",
            lambda s: (
                f"{s['idle_cpu_s_per_min']:.2f} CPU s, "
                f"{_verbs(s['idle_requests_per_min'])}, {s['idle_writes_per_min']} writes"
            ),
            "0 writes per minute",
            "",
            lambda s: s["idle_writes_per_min"] == 0,
        ),
    )


ROWS = (
    Row(
        "simple sample: create → every child applied, status written (20 runs)",
        "single",
        _q("create_to_converged_s"),
        "p50 ≤ 0.3 s",
        "43-64 s",
        lambda s: s["create_to_converged_s"]["p50"] <= 0.3,
    ),
    Row(
        "simple sample: create → Ready (simulated cluster)",
        "ready",
        _q("create_to_ready_s"),
        "",
        "54-84 s",
    ),
    Row(
        "API requests, first convergence",
        "single",
        lambda s: f"{s['first_pass_requests_total']} ({_verbs(s['first_pass_requests'])})",
        "",
        "~360 (116 dry runs, 40 conflicts)",
    ),
    Row(
        "requests at operator start (1 Pulp)",
        "single",
        lambda s: f"{s['start_requests_total']} ({_verbs(s['start_requests'])})",
        "",
        "16",
    ),
    Row(
        "harmless touch of a referenced ConfigMap: reads / writes (no-op pass)",
        "single",
        lambda s: f"{s['touch_reads_writes'][0]} / {s['touch_reads_writes'][1]}",
        "0 requests",
        "24 / 6",
        lambda s: sum(s["touch_reads_writes"]) == 0,
    ),
    Row(
        "drift repair: api Deployment deleted → restored",
        "single",
        _q("drift_repair_s"),
        "p50 ≤ 1 s",
        "",
        lambda s: s["drift_repair_s"]["p50"] <= 1.0,
    ),
    Row(
        "idle after Ready: writes in the first 10 s / in the minute after them (simulated cluster)",
        "ready",
        lambda s: (
            f"{s['writes_in_10s_after_ready']} / {s['writes_in_minute_after_ready']}"
            f" ({', '.join(s['writes_after_ready']) or 'none'})"
        ),
        "0 per minute",
        "3 writes in the first 10 s, then none",
        lambda s: s["writes_in_minute_after_ready"] == 0,
    ),
    Row(
        "RSS idle, 1 Pulp", "single", lambda s: f"{s['idle_rss_mb_1_pulp']:.0f} MB", "", "62-64 MB"
    ),
    Row(
        "20 Pulps in one namespace: all Ready, peak RSS",
        "ready",
        lambda s: (
            f"{s['20_pulps_one_namespace_ready_s']:.1f} s, "
            f"{s['20_pulps_one_namespace_peak_rss_mb']:.0f} MB"
        ),
        "",
        "116-121 s, 74 MB",
    ),
    Row(
        "20 Pulps in 20 namespaces: all Ready, peak RSS",
        "ready",
        lambda s: (
            f"{s['20_pulps_own_namespaces_ready_s']:.1f} s, "
            f"{s['20_pulps_own_namespaces_peak_rss_mb']:.0f} MB"
        ),
        "",
        "(one namespace only)",
    ),
    *_scale_rows(100, 15.0),
    *_scale_rows(300, 45.0),
    Row(
        "operator start → first reconcile, 300 Pulps existing (→ all reconciled)",
        "scale300",
        lambda s: (
            f"{s['start_to_first_reconcile_s']:.1f} s (→ {s['start_to_all_reconciled_s']:.1f} s)"
        ),
    ),
    Row(
        "RSS with 2,000 unrelated 50 KB Secrets/ConfigMaps in the watched namespaces",
        "unrelated",
        lambda s: (
            f"+{s['rss_delta_mb']:.1f} MB ({s['rss_without_mb']:.0f} → "
            f"{s['rss_with_mb']:.0f} MB, peak {s['peak_rss_with_mb']:.0f} MB)"
        ),
        "< 20 MB more",
        "",
        lambda s: s["rss_delta_mb"] < 20,
    ),
    Row(
        "RSS per watched namespace (cluster-wide watches; per-namespace watches)",
        "namespaces",
        lambda s: (
            f"{s['rss_per_namespace_mb']:.2f} MB; {s['rss_per_namespace_namespaced_mb']:.2f} MB"
        ),
        "< 1 MB",
        "",
        lambda s: s["rss_per_namespace_mb"] < 1.0,
    ),
)


def latest(results: Path) -> tuple[Figures, dict[str, dict[str, Any]]]:
    """The newest full result of each scenario, and the machine and date it was measured on."""
    figures: Figures = {}
    where: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("quick"):
            continue
        for name, scenario in data["scenarios"].items():
            figures[name] = scenario
            where[name] = {"date": data["date"], **data["machine"]}
    return figures, where


def table(figures: Figures, where: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| figure | target | this operator | upstream Go (issue 13) | |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        found = figures.get(row.scenario)
        if found is None:
            measured, verdict = "not measured yet", ""
        else:
            try:
                measured = row.measured(found)
                met = row.met(found)
            except KeyError:
                measured, met = "not measured yet", None
            verdict = {True: "met", False: "**missed**", None: ""}[met]
        lines.append(f"| {row.figure} | {row.target} | {measured} | {row.upstream} | {verdict} |")
    lines.append("")
    for name in sorted(where):
        w = where[name]
        load = w.get("load_average_at_start", [])
        lines.append(
            f"`{name}`: {w['date'][:16].replace('T', ' ')} UTC, {w['cores']} cores, "
            f"{w['ram_gb']} GB, load average {load[0] if load else '?'} at the start.  "
        )
    return "\n".join(lines).rstrip() + "\n"


def update_readme(readme: Path, results: Path) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section for the figures")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table(*latest(results))}{END}{tail}")
