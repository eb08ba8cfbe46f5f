"""The hostPath volume provisioner of the node: PVCs of the default StorageClass ``standard``
get PVs with a directory in <state dir>/volumes, made by a small process of the node
(``python -m pulp_devcluster.node provision``), which also expands them (``resizer``)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from pathlib import Path

from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass

from pulp_devcluster.kubeapi import make_client
from pulp_devcluster.node.resizer import resize_once
from pulp_devcluster.node.settings import FIELD_MANAGER, NODE_NAME, PROVISIONER, STORAGE_CLASS

log = logging.getLogger("pulp_devcluster.node")


def apply_storage_class(client: Client) -> None:
    """The default StorageClass, served by this provisioner (which also expands volumes)."""
    client.apply(
        StorageClass(
            metadata=ObjectMeta(
                name=STORAGE_CLASS,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            provisioner=PROVISIONER,
            reclaimPolicy="Delete",
            volumeBindingMode="Immediate",
            allowVolumeExpansion=True,  # the provisioner resizes too (node/resizer.py)
        ),
        force=True,
    )


def provisioner_command(
    *, kubeconfig: Path, volumes_dir: Path, node_name: str, marker: Path
) -> list[str]:
    """The provisioner process (``marker``, the state dir, is for stale cleanup)."""
    return [
        sys.executable,
        "-m",
        "pulp_devcluster.node",
        "provision",
        f"--kubeconfig={kubeconfig}",
        f"--dir={volumes_dir}",
        f"--node-name={node_name}",
        f"--marker={marker}",
    ]


def _pv_name(claim_uid: str) -> str:
    return f"pvc-{claim_uid}"


def provision_once(client: Client, base_dir: Path, node_name: str = NODE_NAME) -> int:
    """Create PVs for pending claims of :data:`STORAGE_CLASS`, delete released ones (and
    their directories) and expand those whose claims ask for more; returns how many PVs were
    created, deleted or expanded."""
    changed = 0
    existing = {str(pv.metadata.name): pv for pv in client.list(PersistentVolume) if pv.metadata}
    for pvc in client.list(PersistentVolumeClaim, namespace="*"):
        meta, spec = pvc.metadata, pvc.spec
        if meta is None or spec is None or meta.uid is None or meta.deletionTimestamp:
            continue
        if spec.storageClassName != STORAGE_CLASS or spec.volumeName:
            continue
        name = _pv_name(meta.uid)
        if name in existing:
            continue
        requests = (spec.resources.requests if spec.resources else None) or {}
        path = base_dir / f"{meta.namespace}-{meta.name}-{meta.uid[:8]}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # any uid of the pod may write (hostPath ignores fsGroup)
        pv = _hostpath_pv(
            name=name,
            path=path,
            capacity=str(requests.get("storage", "1Gi")),
            access_modes=list(spec.accessModes or ["ReadWriteOnce"]),
            claim=(str(meta.namespace), str(meta.name), meta.uid),
            node_name=node_name,
        )
        client.create(pv)
        log.info("provisioned %s for %s/%s at %s", name, meta.namespace, meta.name, path)
        changed += 1
    for name, pv in existing.items():
        ann = (pv.metadata.annotations if pv.metadata else None) or {}
        if ann.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if pv.status is None or pv.status.phase not in ("Released", "Failed"):
            continue
        hostpath = pv.spec.hostPath.path if pv.spec and pv.spec.hostPath else None
        if hostpath and Path(hostpath).parent == base_dir:
            shutil.rmtree(hostpath, ignore_errors=True)
        with contextlib.suppress(ApiError):
            client.delete(PersistentVolume, name)
        log.info("deleted released %s", name)
        changed += 1
    changed += resize_once(client, existing)
    return changed


def _hostpath_pv(
    *,
    name: str,
    path: Path,
    capacity: str,
    access_modes: list[str],
    claim: tuple[str, str, str],
    node_name: str,
) -> PersistentVolume:
    namespace, claim_name, uid = claim
    obj = codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": capacity},
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": "Filesystem",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": claim_name,
                    "uid": uid,
                },
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node_name],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )
    assert isinstance(obj, PersistentVolume)
    return obj


def run_provisioner(kubeconfig: Path, base_dir: Path, node_name: str, period: float = 1.0) -> None:
    """Poll and provision until killed (the node runs this as a child process)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    client = make_client(kubeconfig, FIELD_MANAGER)
    while True:
        try:
            provision_once(client, base_dir, node_name)
        except Exception as exc:  # the apiserver may be briefly unavailable
            log.warning("provisioner: %r", exc)
        time.sleep(period)
