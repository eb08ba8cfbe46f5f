"""The checked-in CRDs are the ones generated from the models, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pulp_operator.api.crd import KINDS, crd, crd_filename

CRD_DIR = Path(__file__).resolve().parents[2] / "config" / "crd"


def test_checked_in_crds_are_current() -> None:
    for kind in KINDS:
        path = CRD_DIR / crd_filename(kind)
        assert path.exists(), f"{path} missing: run `make crds`"
        assert yaml.safe_load(path.read_text()) == crd(kind), f"{path} is stale: run `make crds`"


def _walk(schema: dict[str, Any], path: str = "") -> list[str]:
    """Violations of the structural-schema rules this generator could plausibly break."""
    bad = []
    for key in ("$ref", "anyOf", "oneOf", "allOf", "const", "title"):
        if key in schema:
            bad.append(f"{path}: {key}")
    if "properties" in schema:
        if schema.get("type") != "object":
            bad.append(f"{path}: properties without type object")
        if "additionalProperties" in schema:
            bad.append(f"{path}: properties with additionalProperties")
        for name, sub in schema["properties"].items():
            bad += _walk(sub, f"{path}.{name}")
    elif "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        bad.append(f"{path}: no type")
    if "items" in schema:
        bad += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        bad += _walk(schema["additionalProperties"], f"{path}{{}}")
    if "default" in schema and schema["default"] is None:
        bad.append(f"{path}: null default")
    return bad


def test_schemas_are_structural() -> None:
    for kind in KINDS:
        schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema) == []


def test_printer_columns_status_and_short_names() -> None:
    pulp = crd(KINDS[0])
    version = pulp["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Ready", "Version"]
    assert "Age" in columns
    assert version["subresources"] == {"status": {}}
    assert pulp["spec"]["names"]["shortNames"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["image_version"]["default"] == "stable"
    assert spec["properties"]["api"]["properties"]["replicas"]["minimum"] == 0
    rules = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert any("exactly one storage type" in m for m in rules)
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"
    ]
    assert conditions["x-kubernetes-list-type"] == "map"
