"""The packaging tools for tests: Helm, the OLM bundle validator, the monitoring checker, kubectl.

Paths come from hack/tools/build.sh --check (which builds nothing); a missing tool fails the test
with what to run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulp_devcluster.controlplane import default_testbin_dir
from pulp_generate import helm as chart
from pulp_generate import kustomize
from pulp_generate.settings import Install

REPO = Path(__file__).resolve().parents[1]
KUBE_VERSION = "1.36.3"


def tool(name: str) -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack/tools/build.sh"), "--check", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(out.stderr.strip() or f"{name} missing: run `make tools`", pytrace=False)
    return Path(out.stdout.strip())


def kubectl() -> Path:
    path = default_testbin_dir() / "kubectl"
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make testbin`", pytrace=False)
    return path


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=300
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(install: Install, tmp: Path, *extra: str) -> list[dict[str, Any]]:
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump(chart.values_for(install)))
    out = run(
        tool("helm"),
        "template",
        "pulp-operator",
        REPO / chart.CHART,
        "--namespace",
        install.namespace,
        "--include-crds",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        values,
        *extra,
    )
    return documents(out.stdout)


def kustomize_build(install: Install, tmp: Path) -> list[dict[str, Any]]:
    overlay = tmp / "overlay"
    kustomize.write_overlay(install, REPO / "config" / "default", overlay)
    return documents(run(kubectl(), "kustomize", overlay).stdout)


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])
