"""Volume expansion for the provisioner's PVs, as Kubernetes' external resizer does it.

A bound claim of :data:`STORAGE_CLASS` that requests more than its PV holds is marked as
resizing (condition ``Resizing``, ``allocatedResources`` and
``allocatedResourceStatuses.storage = ControllerResizeInProgress``), its PV's capacity is raised,
and the claim's ``status.capacity`` is set, the resize conditions dropped and the resource status
cleared. A hostPath directory has no size of its own, so nothing is left for the node to do (no
``FileSystemResizePending``). Shrinking below ``status.capacity`` is refused by the API server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lightkube import Client
from lightkube.models import core_v1 as models
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.types import PatchType
from lightkube.utils.quantity import parse_quantity

from pulp_devcluster.node.settings import PROVISIONER, STORAGE_CLASS

log = logging.getLogger("pulp_devcluster.node")

#: PVC condition types of a resize (k8s.io/api/core/v1), all dropped once it is done.
RESIZE_CONDITIONS = frozenset(
    {"Resizing", "FileSystemResizePending", "ControllerResizeError", "NodeResizeError"}
)
IN_PROGRESS = "ControllerResizeInProgress"


def _storage(resources: Mapping[str, str] | None) -> Decimal | None:
    value = (resources or {}).get("storage")
    return parse_quantity(value) if value else None


def resize_once(client: Client, pvs: Mapping[str, PersistentVolume]) -> int:
    """Expand the PVs (by name in ``pvs``) whose bound claims ask for more; returns how many
    claims were resized."""
    resized = 0
    for pvc in client.list(PersistentVolumeClaim, namespace="*"):
        meta, spec, status = pvc.metadata, pvc.spec, pvc.status
        if meta is None or spec is None or status is None or meta.deletionTimestamp:
            continue
        if spec.storageClassName != STORAGE_CLASS or status.phase != "Bound":
            continue
        pv = pvs.get(spec.volumeName or "")
        if pv is None or pv.metadata is None or pv.spec is None:
            continue
        ann = pv.metadata.annotations or {}
        claim_ref = pv.spec.claimRef
        if ann.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if claim_ref is None or claim_ref.uid != meta.uid:
            continue
        new_size = _resize(client, pvc, pv)
        if new_size is not None:
            log.info(
                "resized %s/%s (%s) to %s", meta.namespace, meta.name, pv.metadata.name, new_size
            )
            resized += 1
    return resized


def _resize(client: Client, pvc: models.PersistentVolumeClaim, pv: PersistentVolume) -> str | None:
    """Grow ``pv`` to what its bound ``pvc`` requests, or finish an earlier growth; returns
    the new size (None: nothing to do)."""
    assert pvc.spec is not None
    assert pvc.status is not None
    assert pv.metadata is not None
    assert pv.spec is not None
    wanted = (pvc.spec.resources.requests if pvc.spec.resources else None) or {}
    want, have = _storage(wanted), _storage(pv.spec.capacity)
    if want is None or have is None:
        return None
    capacity = _storage(pvc.status.capacity)
    in_progress = (pvc.status.allocatedResourceStatuses or {}).get("storage") == IN_PROGRESS
    if want > have:
        new_size = str(wanted["storage"])
        pvc = _mark_in_progress(client, pvc, new_size)
        client.patch(
            PersistentVolume,
            str(pv.metadata.name),
            {"spec": {"capacity": {"storage": new_size}}},
            patch_type=PatchType.MERGE,
        )
    elif in_progress or capacity is None or capacity < have:
        # the PV grew, but the claim's status was not finished (e.g. a restart in between)
        new_size = str((pv.spec.capacity or {})["storage"])
    else:
        return None
    _mark_finished(client, pvc, new_size)
    return new_size


def _conditions_without_resize(pvc: models.PersistentVolumeClaim) -> list[dict[str, Any]]:
    assert pvc.status is not None
    return [c.to_dict() for c in pvc.status.conditions or [] if c.type not in RESIZE_CONDITIONS]


def _patch_status(
    client: Client, pvc: models.PersistentVolumeClaim, status: dict[str, Any]
) -> models.PersistentVolumeClaim:
    """A merge patch of the claim's status, refused when the claim changed meanwhile."""
    assert pvc.metadata is not None
    patched = client.patch(
        PersistentVolumeClaim.Status,
        str(pvc.metadata.name),
        {"metadata": {"resourceVersion": pvc.metadata.resourceVersion}, "status": status},
        namespace=pvc.metadata.namespace,
        patch_type=PatchType.MERGE,
    )
    return patched  # the claim (lightkube's model class), with its status


def _mark_in_progress(
    client: Client, pvc: models.PersistentVolumeClaim, new_size: str
) -> models.PersistentVolumeClaim:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    resizing = {"type": "Resizing", "status": "True", "lastTransitionTime": now}
    return _patch_status(
        client,
        pvc,
        {
            "conditions": [*_conditions_without_resize(pvc), resizing],
            "allocatedResources": {"storage": new_size},
            "allocatedResourceStatuses": {"storage": IN_PROGRESS},
        },
    )


def _mark_finished(client: Client, pvc: models.PersistentVolumeClaim, new_size: str) -> None:
    _patch_status(
        client,
        pvc,
        {
            "capacity": {"storage": new_size},
            "conditions": _conditions_without_resize(pvc) or None,
            "allocatedResourceStatuses": {"storage": None},
        },
    )
