"""A time budget for the real-node tier: whole modules run while they fit, in a fixed order.

``make test`` runs every module. Under a deadline (``PULP_OPERATOR_E2E_DEADLINE``, a Unix time;
hack/test.sh sets it from ``TEST_BUDGET_MINUTES``, which ``.ci/run`` sets) a module starts only
when its expected duration still fits before the deadline; a module that does not fit is
skipped as a whole, with the reason, and listed at the end of the run. A module that started
always runs to its end: its tests build on each other (deploy, then back up, then restore).

Expected durations come from the last measured run on this machine
(``~/.cache/pulp-operator/e2e-durations.json``, written at the end of every run of the tier)
and otherwise from ``durations.json`` beside this file (seconds on the 2-core machine of
README.md with a cold containerd store: measured where a run measured them, estimates on the
high side for the others). Modules run in ``MODULE_ORDER``: the node itself,
then what a Pulp's users rely on most.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The order of the modules: test_node.py first (it runs a node of its own before the shared
#: node starts), then install, content, lifecycle, plugins, services, packaging.
MODULE_ORDER = (
    "test_node.py",
    "test_plugin_routes.py",
    "test_pulp.py",
    "test_backup.py",
    "test_upgrade.py",
    "test_plugins.py",
    "test_secrets.py",
    "test_takeover.py",
    "test_rendered_settings.py",
    "test_services.py",
    "test_auth.py",
    "test_install.py",
    "test_resource_manager.py",
)
#: Seconds assumed for a module that no run measured yet.
UNKNOWN_MODULE = 900.0
#: The shared node's start (control plane, kubelet, image import), measured like a module.
NODE_START = "shared node start"
DEADLINE_ENV = "PULP_OPERATOR_E2E_DEADLINE"
MEASURED = Path(
    os.environ.get(
        "PULP_OPERATOR_E2E_DURATIONS",
        Path.home() / ".cache/pulp-operator/e2e-durations.json",
    )
)
CHECKED_IN = Path(__file__).with_name("durations.json")


def order_key(module: str) -> tuple[int, str]:
    """Sort key of a module file name: its place in MODULE_ORDER, unknown modules last."""
    try:
        return (MODULE_ORDER.index(module), module)
    except ValueError:
        return (len(MODULE_ORDER), module)


def read_estimates(*paths: Path) -> dict[str, float]:
    """Durations in seconds by module; later files win. Missing or unreadable files are skipped."""
    estimates: dict[str, float] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            for name, seconds in data.items():
                if isinstance(seconds, int | float) and seconds >= 0:
                    estimates[str(name)] = float(seconds)
    return estimates


def needed(module: str, estimates: dict[str, float], node_started: bool, uses_node: bool) -> float:
    """Seconds a module is expected to take from now, the shared node's start included when the
    module uses the shared node and it has not started yet."""
    seconds = estimates.get(module, UNKNOWN_MODULE)
    if uses_node and not node_started:
        seconds += estimates.get(NODE_START, UNKNOWN_MODULE / 3)
    return seconds


@dataclass
class Budget:
    """What the session decided and measured. `deadline` None: no budget, every module runs."""

    deadline: float | None
    estimates: dict[str, float]
    started: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)
    partial: set[str] = field(default_factory=set)
    node_started: bool = False

    @classmethod
    def from_environment(cls) -> Budget:
        raw = os.environ.get(DEADLINE_ENV, "").strip()
        deadline = float(raw) if raw else None
        return cls(deadline, read_estimates(CHECKED_IN, MEASURED))

    def admit(self, module: str, uses_node: bool, now: float | None = None) -> str | None:
        """None when the module may run (always, once it started); otherwise why it is skipped."""
        if module in self.skipped:
            return self.skipped[module]
        if module in self.started or self.deadline is None:
            self.started.add(module)
            return None
        now = time.time() if now is None else now
        left = self.deadline - now
        need = needed(module, self.estimates, self.node_started, uses_node)
        if need > left:
            reason = (
                f"real-node tier budget: {module} needs about {need / 60:.0f} min, "
                f"{max(left, 0) / 60:.0f} min left before the deadline"
            )
            self.skipped[module] = reason
            return reason
        self.started.add(module)
        return None

    def add(self, name: str, seconds: float) -> None:
        self.measured[name] = self.measured.get(name, 0.0) + seconds

    def unrepresentative(self, module: str) -> None:
        """A module whose duration says nothing of the next run's (some of its tests were
        deselected, failed or errored): its measurement is not kept."""
        self.partial.add(module)

    def kept(self) -> dict[str, float]:
        return {k: v for k, v in self.measured.items() if k not in self.partial}

    def save(self, path: Path = MEASURED) -> None:
        """Keep this run's representative durations (merged into earlier ones) for the next
        run."""
        kept = self.kept()
        if not kept:
            return
        merged = read_estimates(path)
        merged.update({k: round(v, 1) for k, v in kept.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
