"""What the backup and restore controllers share: reading the outcome of their Jobs, conditions
and status writes that happen only on change, Events, and the key they have in the work queue."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from lightkube.core.resource import NamespacedResource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod

from .api.backup import JobStatus
from .api.pulp import Condition
from .desired.backup import STEPS, utc
from .kube import Kube, Obj

log = logging.getLogger(__name__)

Kind = Literal["PulpBackup", "PulpRestore"]


@dataclass(frozen=True, order=True)
class RunKey:
    """Work queue key of a PulpBackup or PulpRestore (a Pulp's key is a (namespace, name) pair)."""

    kind: Kind
    namespace: str
    name: str


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class JobOutcome:
    state: Literal["missing", "running", "succeeded", "failed"]
    containers: tuple[str, ...] = ()
    """Containers of the Job's pods, init containers first: the order they run in."""
    steps_done: tuple[str, ...] = ()
    """Steps (containers) that finished successfully in the newest pod."""
    failed_step: str | None = None
    message: str = ""
    """Termination message of the last container (its report), or of the failed one (the end of
    its log, by FallbackToLogsOnError)."""
    settling: bool = False
    """Running, but its pod has ended: the Job controller is about to record the outcome (Jobs
    are not watched: the next look comes soon)."""

    def poll(self, seconds: float) -> float:
        return SETTLE_SECONDS if self.settling else seconds


def _terminated(status: dict[str, Any]) -> dict[str, Any] | None:
    state = status.get("state") or {}
    terminated: dict[str, Any] | None = state.get("terminated")
    return terminated


async def job_outcome(kube: Kube, namespace: str, name: str) -> JobOutcome:
    job = await kube.get(Job, name, namespace)
    if job is None:
        return JobOutcome("missing")
    conditions = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = tuple(
        c["name"] for c in [*(template.get("initContainers") or []), *template["containers"]]
    )
    pods = await kube.list_labelled(Pod, namespace, {"job-name": name})
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    done: list[str] = []
    failed_step: str | None = None
    message = ""
    for pod in pods[-1:]:
        status = pod.get("status") or {}
        statuses = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        by_name = {s.get("name"): s for s in statuses}
        for container in containers:
            terminated = _terminated(by_name.get(container) or {})
            if terminated is None:
                break
            if terminated.get("exitCode") == 0:
                done.append(STEPS.get(container, container))
                message = terminated.get("message") or ""
            else:
                failed_step = STEPS.get(container, container)
                message = (terminated.get("message") or terminated.get("reason") or "").strip()
                break
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return JobOutcome("succeeded", containers, tuple(done), None, message)
    if "Failed" in conditions or "FailureTarget" in conditions:
        cond = conditions.get("Failed") or conditions.get("FailureTarget") or {}
        detail = message or cond.get("message") or cond.get("reason") or ""
        return JobOutcome("failed", containers, tuple(done), failed_step, detail)
    ended = bool(pods) and (pods[-1].get("status") or {}).get("phase") in ("Succeeded", "Failed")
    return JobOutcome("running", containers, tuple(done), failed_step, message, ended)


def report(message: str) -> dict[str, Any]:
    """A JSON termination message; {} when there is none (or it is not JSON)."""
    try:
        value = json.loads(message)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def condition(
    previous: Sequence[Condition],
    type_: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    generation: int,
    stamp: str,
) -> list[Condition]:
    """The conditions with `type_` set; lastTransitionTime kept unless the status flips."""
    old = next((c for c in previous if c.type == type_), None)
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:2000],
        last_transition_time=old.last_transition_time
        if old is not None and old.status == status
        else stamp,
        observed_generation=generation,
    )
    return [new if c.type == type_ else c for c in previous] if old else [*previous, new]


def merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `old` into `new`: keys gone are null at every depth (a
    new run must not inherit the fields of the previous one), lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_diff(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


async def write_status(
    kube: Kube, cls: type[NamespacedResource], obj: Obj, new: dict[str, Any]
) -> bool:
    """Patch the status when it differs from the live one; returns whether it wrote."""
    old = obj.get("status") or {}
    if new == old:
        return False
    patch = merge_diff(old, new)
    await kube.patch_status(cls, obj["metadata"]["name"], obj["metadata"]["namespace"], patch)
    obj["status"] = new
    return True


async def event(kube: Kube, obj: Obj, reason: str, message: str, warning: bool = False) -> None:
    meta = obj["metadata"]
    log.log(
        logging.WARNING if warning else logging.INFO,
        "%s %s/%s: %s",
        obj["kind"],
        meta["namespace"],
        meta["name"],
        message,
    )
    await kube.event(obj, reason=reason, message=message, warning=warning)


def owner_reference(obj: Obj) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


async def attached_node(
    kube: Kube, namespace: str, claim: str, selector: dict[str, str]
) -> str | None:
    """The node a ReadWriteOnce claim is attached to: that of a running pod (of `selector`)
    mounting it; None when the claim allows other nodes or no pod mounts it."""
    pvc = await kube.get(PersistentVolumeClaim, claim, namespace)
    modes = set(((pvc or {}).get("spec") or {}).get("accessModes") or [])
    if not modes or modes & {"ReadWriteMany", "ReadOnlyMany"}:
        return None
    for pod in await kube.list_labelled(Pod, namespace, selector):
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if status.get("phase") != "Running" or not spec.get("nodeName"):
            continue
        for volume in spec.get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                return str(spec["nodeName"])
    return None


class Failure(Exception):
    """A step of a run that cannot go on: the run's condition becomes False, naming the step."""

    def __init__(self, step: str, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.step, self.detail, self.hint = step, detail, hint


S = TypeVar("S", bound=JobStatus)


class RunPass(Generic[S]):
    """What one pass of a PulpBackup or PulpRestore shares: the object, its status as read, its
    condition, and the Events of its steps, posted after the status that records them."""

    resource: ClassVar[type[NamespacedResource]]
    condition_type: ClassVar[str]
    status_model: ClassVar[type[JobStatus]]

    def __init__(self, kube: Kube, obj: Obj, now: datetime.datetime) -> None:
        self.kube = kube
        self.obj = obj
        self.now = now
        self.name: str = obj["metadata"]["name"]
        self.namespace: str = obj["metadata"]["namespace"]
        self.generation: int = obj["metadata"].get("generation", 1)
        self.status: S = self.status_model.model_validate(obj.get("status") or {})  # type: ignore[assignment]
        self.events: list[tuple[str, str, bool]] = []
        """(reason, message, warning)"""

    def _condition(
        self, status: Literal["True", "False", "Unknown"], reason: str, message: str
    ) -> None:
        self.status.conditions = condition(
            self.status.conditions,
            self.condition_type,
            status,
            reason,
            message,
            self.generation,
            utc(self.now),
        )

    async def _write(self) -> None:
        self.status.observed_generation = self.generation
        new = self.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        await write_status(self.kube, self.resource, self.obj, new)
        for reason, message, warning in self.events:
            await event(self.kube, self.obj, reason, message, warning=warning)
        self.events.clear()
