"""Runs of the control plane recorded in the runs registry and in state.json: stopping a run of
another process, and cleaning up after runs whose owner died."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulp_devcluster.controlplane.settings import default_runs_dir
from pulp_devcluster.processes import kill_records
from pulp_devcluster.registry import owner_alive, read_json, records_from, remove_path

log = logging.getLogger("pulp_devcluster")

# Subpaths of the state dir that a start recreates and a stop removes (logs/ stays when the state
# dir was given by the caller, so that a failed run can be inspected).
EPHEMERAL_SUBPATHS = (
    "etcd",
    "pki",
    "kwok",
    "kubeconfig",
    "state.json",
    "tokens.csv",
    "users",
    "audit.log",
    "audit-policy.yaml",
)


def _cleanup_run(data: Mapping[str, Any], timeout: float) -> None:
    survivors = kill_records(records_from(data), timeout)
    for rec in survivors:
        log.warning("could not kill leftover %s (pid %d)", rec.name, rec.pid)
    state_dir = data.get("state_dir")
    if state_dir and not survivors:
        path = Path(state_dir)
        if data.get("owned_state_dir"):
            shutil.rmtree(path, ignore_errors=True)
        else:
            for sub in EPHEMERAL_SUBPATHS:
                remove_path(path / sub)


def cleanup_stale_runs(runs_dir: Path | None = None, timeout: float = 10.0) -> int:
    """Kill processes of recorded runs whose owner process is gone; returns how many runs."""
    runs_dir = runs_dir or default_runs_dir()
    if not runs_dir.is_dir():
        return 0
    cleaned = 0
    for path in sorted(runs_dir.glob("*.json")):
        data = read_json(path)
        if data is not None and owner_alive(data):
            continue
        if data is not None:
            leftovers = [r for r in records_from(data) if r.matches()]
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


def running_owner(state_dir: Path) -> int | None:
    """Pid of the live process that runs the control plane recorded in ``state_dir``, if any."""
    data = read_json(state_dir / "state.json")
    if data is None or not owner_alive(data):
        return None
    return int(data["owner_pid"])


def stop_from_state_dir(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the control plane recorded in ``state_dir/state.json`` (``devcluster down``).

    Asks the owning process (``devcluster up``) to stop with SIGTERM; if it does not finish in
    time or is gone, kills the recorded processes directly. Returns False if nothing was running.
    """
    data = read_json(state_dir / "state.json")
    if data is None:
        return False
    if owner_alive(data) and int(data["owner_pid"]) != os.getpid():
        owner = int(data["owner_pid"])
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and owner_alive(data):
            time.sleep(0.1)
    _cleanup_run(data, timeout=10.0)
    run_file = data.get("run_file")
    if run_file:
        Path(run_file).unlink(missing_ok=True)
    return True
