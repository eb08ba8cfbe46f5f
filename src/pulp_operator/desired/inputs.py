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
    claims: Mapping[str, Claim] = field(default_factory=dict)
    """PersistentVolumeClaims the Pulp names (spec.pvc, database.pvc, cache.pvc), by name. A name
    missing here does not exist."""
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    """Jobs the operator started for this Pulp, by name."""
    cluster: ClusterFacts = field(default_factory=ClusterFacts)


ProblemKind = Literal["reference", "setting", "migration", "platform", "spec", "apply"]
"""What a problem is about. Only "reference" problems (a named object or key is missing) stop the
operator from applying anything: the other kinds leave out or keep the one object at fault."""


@dataclass(frozen=True)
class Problem:
    """Input the operator cannot act on: becomes Ready=False with this reason and message."""

    field: str
    """The spec field (or object) at fault, e.g. spec.custom_pulp_settings; problems are keyed by
    it: one problem per field."""
    kind: ProblemKind
    reason: str
    message: str
    condition: str = "Ready"
    """The component condition it belongs to as well (e.g. StorageReady)."""

    @property
    def blocks_apply(self) -> bool:
        return self.kind == "reference"


@dataclass(frozen=True)
class Claim:
    """What the operator knows of a PersistentVolumeClaim: enough to say whether it is usable."""

    phase: str = "Bound"
    """Pending, Bound or Lost."""
    storage_class: str | None = None
    capacity: str | None = None
    """status.capacity.storage once bound."""
    requested: str | None = None
    """spec.resources.requests.storage."""
    waiting: str = ""
    """Why a Pending claim waits (the latest event on it), when known."""
