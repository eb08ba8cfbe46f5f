"""The file storage PersistentVolumeClaim N-file-storage (with file_storage_storage_class)."""

from __future__ import annotations

from .. import names
from .common import meta
from .context import Ctx
from .inputs import Manifest

DEFAULT_SIZE = "10Gi"


def pvc(
    ctx: Ctx, component: str, name: str, size: str, storage_class: str | None, access_mode: str
) -> Manifest:
    obj = meta(
        "PersistentVolumeClaim", "v1", name, ctx.namespace, names.labels(ctx.name, component)
    )
    spec: dict[str, object] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    obj["spec"] = spec
    return obj


def storage_objects(ctx: Ctx) -> list[Manifest]:
    spec = ctx.spec
    if not spec.file_storage_storage_class:
        return []
    return [
        pvc(
            ctx,
            "storage",
            names.file_storage(ctx.name),
            spec.file_storage_size or DEFAULT_SIZE,
            spec.file_storage_storage_class,
            spec.file_storage_access_mode or "ReadWriteMany",
        )
    ]
