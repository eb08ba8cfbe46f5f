"""What the desired state of a Pulp is computed from: the CR and what the operator observed.

Everything here is plain data. The reconciler fills it from the cluster; `pulp-operator render`
fills it from a file. The builders read it and never do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..api.pulp import PulpSpec, PulpStatus

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ClusterFacts:
    """Capabilities of the cluster that change what is built."""

    has_routes: bool = False
    """The route.openshift.io API exists."""


@dataclass(frozen=True)
class JobState:
    """Outcome of a Job the operator started (migrations, admin password reset)."""

    name: str
    state: Literal["running", "succeeded", "failed"]
    message: str = ""


@dataclass(frozen=True)
class Inputs:
    name: str
    namespace: str
    spec: PulpSpec
    generation: int = 1
    status: PulpStatus = field(default_factory=PulpStatus)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Data (decoded to text) of the Secrets the Pulp references or the operator generated, by
    name. A name missing here does not exist."""
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Data of the ConfigMaps the Pulp references, by name."""
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    """Jobs the operator started for this Pulp, by name."""
    cluster: ClusterFacts = field(default_factory=ClusterFacts)


@dataclass(frozen=True)
class Problem:
    """Input the operator cannot act on: becomes Ready=False with this reason and message."""

    reason: str
    message: str
    condition: str = "Ready"
    """The component condition it belongs to as well (e.g. StorageReady)."""
