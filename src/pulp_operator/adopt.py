"""Objects that exist before the operator applies them: their immutable fields win, and objects
another manager created are taken over whole.

Pure functions of a desired manifest and the live object. Three cases meet here:

- a StatefulSet's ``selector``, ``serviceName`` and ``volumeClaimTemplates`` (and a Deployment's
  selector) cannot change: the manifest takes them from the live object, whatever created it (the
  upstream operator names the database claim template ``<name>-postgres`` and sets no
  serviceName; earlier releases of this operator named it ``postgres`` and set
  ``<name>-database-svc``). The database claim is resized on the PVC itself (storage_growth.py);
- an object without this operator's label was created by someone else (the upstream operator):
  server-side apply would merge our fields into theirs (their container args and exec probes
  would stay beside ours), so the object is replaced once, its field ownership reset, and applied
  from then on like any other;
- data the operator keeps when its Pulp is deleted must not carry an ownerReference to the Pulp
  (the upstream operator owns the file storage and Redis PVCs and the database credentials).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import names
from .api.pulp import PulpSpec
from .desired.inputs import Manifest, Problem
from .diff import contains

Obj = Mapping[str, Any]

# Top-level keys that are not the object's content.
_FRAME = ("apiVersion", "kind", "metadata", "status")


@dataclass(frozen=True)
class Carried:
    manifest: Manifest | None
    """What to apply (None: leave the live object as it is)."""
    problems: tuple[Problem, ...] = ()


def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _template_labels(manifest: Manifest) -> dict[str, Any]:
    labels: dict[str, Any] = (
        manifest["spec"]
        .setdefault("template", {})
        .setdefault("metadata", {})
        .setdefault("labels", {})
    )
    return labels


def _keep_selector(manifest: Manifest, live: Obj) -> None:
    """The live selector (immutable); the pod labels must still match it."""
    selector = _spec(live).get("selector")
    if not isinstance(selector, Mapping) or selector == manifest["spec"].get("selector"):
        return
    manifest["spec"]["selector"] = copy.deepcopy(dict(selector))
    _template_labels(manifest).update(selector.get("matchLabels") or {})


def claim_template_name(sts: Obj) -> str | None:
    templates = _spec(sts).get("volumeClaimTemplates") or []
    return templates[0]["metadata"]["name"] if templates else None


def rename_claim_template(manifest: Manifest, new: str) -> Manifest:
    """The StatefulSet manifest with its (single) volumeClaimTemplate and the mounts and volumes
    of that name renamed to `new`."""
    out = copy.deepcopy(manifest)
    old = claim_template_name(out)
    if old is None or old == new:
        return out
    out["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = new
    pod = out["spec"]["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for mount in container.get("volumeMounts", []):
            if mount.get("name") == old:
                mount["name"] = new
    for volume in pod.get("volumes", []):
        if volume.get("name") == old:
            volume["name"] = new
    return out


def _statefulset(manifest: Manifest, live: Obj) -> Carried:
    name = manifest["metadata"]["name"]
    live_spec = _spec(live)
    live_templates = list(live_spec.get("volumeClaimTemplates") or [])
    wanted_templates = manifest["spec"].get("volumeClaimTemplates") or []
    if bool(live_templates) != bool(wanted_templates):
        field = "spec.database.pvc"
        problem = Problem(
            field,
            "spec",
            "ImmutableField",
            f"{field} cannot take effect on StatefulSet {name}: its volumeClaimTemplates are"
            " immutable; it is left as it is (delete the StatefulSet to switch: its PVCs stay)",
            "DatabaseReady",
        )
        return Carried(None, (problem,))
    out = copy.deepcopy(manifest)
    if live_templates:
        out = rename_claim_template(out, live_templates[0]["metadata"]["name"])
        # A template the live one already holds stays as built (the manifest, and so its hash,
        # stays the same from pass to pass); any other change is not possible: the templates
        # stay as they are (a bigger size is grown on the PVC itself).
        if not contains(live_templates, out["spec"]["volumeClaimTemplates"]):
            out["spec"]["volumeClaimTemplates"] = copy.deepcopy(live_templates)
    if live_spec.get("serviceName"):
        out["spec"]["serviceName"] = live_spec["serviceName"]
    else:
        out["spec"].pop("serviceName", None)
    _keep_selector(out, live)
    return Carried(out)


def carry_immutable(manifest: Manifest, live: Obj | None) -> Carried:
    """The manifest with the immutable fields of the live object (None: create as built)."""
    if live is None:
        return Carried(manifest)
    if manifest["kind"] == "StatefulSet":
        return _statefulset(manifest, live)
    if manifest["kind"] == "Deployment":
        out = copy.deepcopy(manifest)
        _keep_selector(out, live)
        return Carried(out)
    if manifest["kind"] == "PersistentVolumeClaim":
        return Carried(_claim(manifest, live))
    return Carried(manifest)


def _claim(manifest: Manifest, live: Obj) -> Manifest:
    """A PVC's spec cannot change but for its size: what was bound stays (storage_growth.py
    decides the size and reports a class or access mode the spec cannot get any more)."""
    out = copy.deepcopy(manifest)
    live_spec = _spec(live)
    for key in ("accessModes", "storageClassName"):
        if key in out["spec"] and key in live_spec and live_spec[key] != out["spec"][key]:
            out["spec"][key] = copy.deepcopy(live_spec[key])
    return out


def database_claim_template(pulp: str, live_sts: Obj | None, existing_claims: set[str]) -> str:
    """The volumeClaimTemplate name for the database StatefulSet: the live one's; without a live
    StatefulSet, the one whose PVC exists already (a Pulp created again finds its database,
    whichever release named it); upstream's name for a new one."""
    if live_sts is not None:
        live_name = claim_template_name(live_sts)
        if live_name:
            return live_name
    upstream = names.database_volume_claim_template(pulp)
    legacy = names.LEGACY_DATABASE_VOLUME_CLAIM_TEMPLATE
    if names.database_claim(pulp, upstream) not in existing_claims and (
        names.database_claim(pulp, legacy) in existing_claims
    ):
        return legacy
    return upstream


def foreign(live: Obj | None, pulp: str) -> bool:
    """Whether the object exists but was not created by this operator for this Pulp."""
    if live is None:
        return False
    labels = (live.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(names.OWNED_LABEL) != pulp)


def takeover_patch(manifest: Manifest, live: Obj, pulp_uid: str) -> list[dict[str, Any]]:
    """A JSON patch that makes the live object's content exactly the manifest's (every top-level
    field replaced: nothing of the other manager's spec stays beside ours), its field ownership
    reset, only if nobody changed it since it was read. Labels and annotations are merged (other
    controllers keep theirs, e.g. the PV binder's on a claim); the Pulp's ownerReference follows
    the manifest. Server-side apply takes over from there."""
    meta = live.get("metadata") or {}
    wanted = manifest.get("metadata") or {}
    refs = [*without_owner(meta.get("ownerReferences") or [], pulp_uid)]
    refs += [dict(r) for r in wanted.get("ownerReferences") or []]
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
        {"op": "add", "path": "/metadata/managedFields", "value": [{}]},
        {"op": "add", "path": "/metadata/ownerReferences", "value": refs},
    ]
    for key in ("labels", "annotations"):
        merged = {**(meta.get(key) or {}), **(wanted.get(key) or {})}
        ops.append({"op": "add", "path": f"/metadata/{key}", "value": merged})
    if manifest["kind"] == "PersistentVolumeClaim":
        return ops  # its spec is immutable but for the size: applied as it is (see _claim)
    for key, value in manifest.items():
        if key not in _FRAME:
            ops.append({"op": "add", "path": f"/{key}", "value": value})
    for key in live:
        if key not in _FRAME and key not in manifest:
            ops.append({"op": "remove", "path": f"/{key}"})
    return ops


def without_owner(refs: Sequence[Mapping[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [dict(r) for r in refs if r.get("uid") != uid]


def secret_adoption(
    live: Obj, labels: Mapping[str, str], owner: Mapping[str, Any], keep: bool
) -> dict[str, Any] | None:
    """The merge patch that makes an existing generated Secret ours: our labels, and an
    ownerReference to the Pulp only when it is not kept on delete; None when nothing changes."""
    meta = live.get("metadata") or {}
    patch: dict[str, Any] = {}
    have = meta.get("labels") or {}
    if any(have.get(k) != v for k, v in labels.items()):
        patch["labels"] = dict(labels)
    refs = list(meta.get("ownerReferences") or [])
    owned = any(r.get("uid") == owner["uid"] for r in refs)
    if owned == keep:
        others = without_owner(refs, owner["uid"])
        patch["ownerReferences"] = others if keep else [*others, dict(owner)]
    return {"metadata": patch} if patch else None


_SECRET_FIELDS: dict[str, Callable[[str], str]] = {
    "admin_password_secret": names.admin_password,
    "pulp_secret_key": names.secret_key,
    "db_fields_encryption_secret": names.db_fields_encryption,
    "container_token_secret": names.container_auth,
}


def defaulted_secret_fields(pulp: str, spec: PulpSpec) -> dict[str, str]:
    """Secret fields of the spec naming the Secret the operator would generate (the upstream
    operator writes those names into the spec when it generates the Secrets)."""
    return {
        field: getattr(spec, field)
        for field, default in _SECRET_FIELDS.items()
        if getattr(spec, field) == default(pulp)
    }


def operator_generated(labels: Mapping[str, str], pulp: str) -> bool:
    """Labels an operator (upstream's or this one) puts on a Secret it generated for the Pulp."""
    return (
        labels.get(names.PULP_CR_LABEL) == pulp
        and labels.get("app.kubernetes.io/managed-by") == names.MANAGER
    )


def generated_secret_spec(
    pulp: str, spec: PulpSpec, labels: Mapping[str, Mapping[str, str]]
) -> PulpSpec:
    """The spec with the defaulted Secret fields whose Secret an operator generated (labels by
    field) unset: those Secrets are generated ones (kept, never regenerated, ours to label)."""
    update = {field: None for field, have in labels.items() if operator_generated(have, pulp)}
    return spec.model_copy(update=update) if update else spec
