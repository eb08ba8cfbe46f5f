"""State files and the runs registry (one JSON file per run, read back by stale cleanup)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulp_devcluster.processes import ProcessRecord, proc_start_time


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def records_from(data: Mapping[str, Any]) -> list[ProcessRecord]:
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


def owner_alive(data: Mapping[str, Any]) -> bool:
    try:
        pid, start = int(data["owner_pid"]), int(data["owner_start_time"])
    except (KeyError, TypeError, ValueError):
        return False
    return proc_start_time(pid) == start


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
