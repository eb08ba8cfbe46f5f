"""Helpers for backup/restore tests on the API server tier, where no controller or kubelet runs:
the test plays their part, creating the pod of a Job and reporting its containers' outcome."""

from __future__ import annotations

import datetime
import json
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from pulp_operator.kube import Kube


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(name: str, code: int, message: str = "") -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": _stamp(),
        "finishedAt": _stamp(),
    }
    if message:
        terminated["message"] = message
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "image": "x",
        "imageID": "",
        "state": {"terminated": terminated},
    }


def _running(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "image": "x",
        "imageID": "",
        "state": {"running": {"startedAt": _stamp()}},
    }


async def job_pod(kube: Kube, namespace: str, job: str) -> dict[str, Any]:
    """The pod of a Job (created from its template the first time)."""
    name = f"{job}-pod"
    existing = await kube.get(Pod, name, namespace)
    if existing is not None:
        return existing
    manifest = await kube.get(Job, job, namespace)
    assert manifest is not None, f"Job {job} not found"
    template = manifest["spec"]["template"]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**template["metadata"]["labels"], "job-name": job},
        },
        "spec": template["spec"],
    }
    created = await kube.create(body)
    assert created is not None
    return created


async def report_containers(
    kube: Kube,
    namespace: str,
    job: str,
    outcomes: dict[str, tuple[int, str] | None],
) -> None:
    """Set the pod's container statuses: name -> (exit code, termination message), or None for a
    container still running; containers not named have not started."""
    pod = await job_pod(kube, namespace, job)
    spec = pod["spec"]
    status: dict[str, Any] = {}
    for field, key in (
        ("initContainers", "initContainerStatuses"),
        ("containers", "containerStatuses"),
    ):
        items = []
        for container in spec.get(field) or []:
            name = container["name"]
            if name in outcomes:
                outcome = outcomes[name]
                items.append(_running(name) if outcome is None else _terminated(name, *outcome))
        if items:
            status[key] = items
    main = outcomes.get(spec["containers"][-1]["name"])
    if any(o is not None and o[0] != 0 for o in outcomes.values()):
        status["phase"] = "Failed"
    else:
        status["phase"] = "Succeeded" if main is not None else "Running"
    await kube.client.patch(
        Pod.Status,
        pod["metadata"]["name"],
        {"status": status},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


async def finish_job(kube: Kube, namespace: str, job: str, *, succeeded: bool = True) -> None:
    """Mark the Job Complete (or Failed), as the Job controller does."""
    now = _stamp()
    if succeeded:
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now,
             "lastProbeTime": now, "reason": "CompletionsReached", "message": ""},
            {"type": "Complete", "status": "True", "lastTransitionTime": now,
             "lastProbeTime": now, "reason": "CompletionsReached", "message": ""},
        ]  # fmt: skip
        status = {"startTime": now, "completionTime": now, "succeeded": 1,
                  "conditions": conditions}  # fmt: skip
    else:
        conditions = [
            {"type": "FailureTarget", "status": "True", "lastTransitionTime": now,
             "lastProbeTime": now, "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"},
            {"type": "Failed", "status": "True", "lastTransitionTime": now,
             "lastProbeTime": now, "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"},
        ]  # fmt: skip
        status = {"startTime": now, "failed": 1, "conditions": conditions}
    await kube.client.patch(
        Job.Status, job, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
    )


def backup_report(directory: str, backups: list[str], size: int = 4242) -> str:
    """The termination message of write-objects."""
    return json.dumps(
        {
            "directory": directory,
            "sizes": {"database": 1000, "files": 3000, "total": size},
            "databaseVersion": "15.8",
            "backups": [{"directory": d, "sizeBytes": size} for d in backups],
            "removed": [],
        }
    )
