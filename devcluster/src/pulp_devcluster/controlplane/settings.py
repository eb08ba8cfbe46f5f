"""Versions, tiers, network ranges and where the binaries and the runs registry live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pulp_devcluster.errors import MissingBinaryError

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

_TESTBIN_ENV = "PULP_OPERATOR_TESTBIN"
_RUNS_ENV = "PULP_OPERATOR_DEVCLUSTER_RUNS"


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


def cast_tier(value: str) -> Tier:
    if value not in TIERS:
        raise ValueError(f"unknown devcluster tier {value!r}; expected one of {', '.join(TIERS)}")
    return value
