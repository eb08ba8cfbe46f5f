"""The upstream sample CRs: their location (``../shared/upstream-samples`` beside the repository,
in CI too), defined once for every tier, and the lists tests are parametrized with.

Importing this module fails when the directory or its samples are missing, so that the tests
using them are collection errors, never skips or empty parameter lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pulp_operator.api.crd import API_VERSION

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples"
#: Samples whose Pulp the upstream CRD itself rejects (an HPA without its required fields).
INVALID_AS_WRITTEN = frozenset({"pulp-with-hpa.yaml"})
#: Kinds of the repo-manager.pulpproject.org/v1 API.
KINDS = ("Pulp", "PulpBackup", "PulpRestore")


def _sample_paths() -> list[Path]:
    paths = sorted(SAMPLES.glob("*.yaml"))
    if not paths:
        raise RuntimeError(
            f"the upstream samples are missing: no *.yaml in {SAMPLES} (expected beside the "
            "repository, as ../shared/upstream-samples)"
        )
    return paths


SAMPLE_PATHS = _sample_paths()


def load_sample(name: str) -> list[dict[str, Any]]:
    """The documents of a sample file (``name`` relative to :data:`SAMPLES`)."""
    return [d for d in yaml.safe_load_all((SAMPLES / name).read_text()) if d]


def _nonempty(what: str, found: list[Any]) -> list[Any]:
    if not found:
        raise RuntimeError(f"no {what} among the upstream samples in {SAMPLES}")
    return found


def pulp_sample_files() -> list[str]:
    """Sample files holding a valid v1 Pulp (never empty)."""
    return _nonempty(
        "valid v1 Pulp",
        [
            path.name
            for path in SAMPLE_PATHS
            if path.name not in INVALID_AS_WRITTEN
            and any(
                d.get("kind") == "Pulp" and d.get("apiVersion") == API_VERSION
                for d in load_sample(path.name)
            )
        ],
    )


def sample_crs() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every v1 Pulp, PulpBackup and PulpRestore (never empty)."""
    return _nonempty(
        "v1 custom resource",
        [
            (path.name, doc)
            for path in SAMPLE_PATHS
            for doc in load_sample(path.name)
            if doc.get("kind") in KINDS and doc.get("apiVersion") == API_VERSION
        ],
    )
