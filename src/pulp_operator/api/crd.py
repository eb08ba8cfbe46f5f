"""CustomResourceDefinitions generated from the models.

The pydantic JSON schema is turned into a structural OpenAPI v3 schema: references inlined, optional
fields without null unions, model defaults kept, CEL rules carried over. `pulp-operator crds`
prints the result; config/crd/ holds it checked in, and a test fails when it is stale.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from .backup import PulpBackupSpec, PulpBackupStatus, PulpRestoreSpec, PulpRestoreStatus
from .pulp import PulpSpec, PulpStatus

GROUP = "repo-manager.pulpproject.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, Any], ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _condition_column(name: str, condition: str, **extra: Any) -> dict[str, Any]:
    path = f'.status.conditions[?(@.type=="{condition}")].status'
    return {"name": name, "type": "string", "jsonPath": path, **extra}


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

PULP = Kind(
    kind="Pulp",
    plural="pulps",
    short_names=("pl",),
    spec=PulpSpec,
    status=PulpStatus,
    columns=(
        _condition_column("Ready", "Ready"),
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Upgrading-To", "type": "string", "jsonPath": ".status.target_version"},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
        {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
        _AGE,
    ),
)
PULP_BACKUP = Kind(
    kind="PulpBackup",
    plural="pulpbackups",
    short_names=("pbk",),
    spec=PulpBackupSpec,
    status=PulpBackupStatus,
    columns=(
        _condition_column("Complete", "BackupComplete"),
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Step", "type": "string", "jsonPath": ".status.step"},
        {"name": "Pulp", "type": "string", "jsonPath": ".spec.deployment_name"},
        {"name": "Directory", "type": "string", "jsonPath": ".status.backupDirectory"},
        {"name": "Size", "type": "integer", "jsonPath": ".status.run.sizeBytes", "priority": 1},
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule", "priority": 1},
        {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime", "priority": 1},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="BackupComplete")].reason',
            "priority": 1,
        },
        _AGE,
    ),
)
PULP_RESTORE = Kind(
    kind="PulpRestore",
    plural="pulprestores",
    short_names=("prs",),
    spec=PulpRestoreSpec,
    status=PulpRestoreStatus,
    columns=(
        _condition_column("Complete", "RestoreComplete"),
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Step", "type": "string", "jsonPath": ".status.step"},
        {"name": "Pulp", "type": "string", "jsonPath": ".status.deploymentName"},
        {"name": "Backup", "type": "string", "jsonPath": ".status.backupDirectory"},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="RestoreComplete")].reason',
            "priority": 1,
        },
        _AGE,
    ),
)
KINDS = (PULP, PULP_BACKUP, PULP_RESTORE)

# Derived names such as pulp-resource-manager-<name> must stay valid label values (63 characters).
MAX_NAME_LENGTH = 40
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_LENGTH_MESSAGE = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the names of the objects"
    " created for it derive from it"
)
NAME_FORM_MESSAGE = (
    "metadata.name must start with a letter and contain only lowercase letters, digits and '-':"
    " Service names derive from it"
)


def name_problem(name: str) -> str | None:
    """Why a Pulp cannot have this name, or None: the CRD's rules on metadata.name, for a CR
    stored before the CRD had them."""
    if len(name) > MAX_NAME_LENGTH:
        return NAME_LENGTH_MESSAGE
    if not _NAME.match(name):
        return NAME_FORM_MESSAGE
    return None


_DROP = {"title", "additionalProperties"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 schema of a model, in the structural form CRDs require."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _convert(raw, defs)
    return schema


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    while "$ref" in node or "anyOf" in node:
        if "$ref" in node:
            target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
            node = {**target, **node}
        variants = node.pop("anyOf", None)
        if variants is not None:
            non_null = [v for v in variants if v.get("type") != "null"]
            if len(non_null) != 1:
                raise ValueError(f"cannot express a union in a structural schema: {variants}")
            node = {**non_null[0], **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("default", 0) is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    if out.get("type") == "array" and _is_condition_list(out):
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = ["type"]
    return out


def _is_condition_list(schema: dict[str, Any]) -> bool:
    item = schema.get("items", {})
    return {"type", "status", "reason"} <= set(item.get("properties", {}))


def crd(kind: Kind) -> dict[str, Any]:
    description = (kind.spec.__doc__ or "").strip().splitlines()[0]
    schema = {
        "type": "object",
        "description": description.replace("Desired state of a", "A"),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(kind.spec),
            "status": structural_schema(kind.status),
        },
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                "message": NAME_LENGTH_MESSAGE,
            },
            {
                "rule": f"self.metadata.name.matches('{_NAME.pattern}')",
                "message": NAME_FORM_MESSAGE,
            },
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "pulp-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    return [crd(kind) for kind in KINDS]


def crd_filename(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=100)


def render_crds() -> str:
    return "".join("---\n" + to_yaml(c) for c in all_crds())
