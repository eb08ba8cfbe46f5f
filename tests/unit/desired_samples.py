"""Loading the upstream sample CRs into desired.Inputs for the builder tests."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from pulp_operator import desired, secretgen
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired.inputs import Inputs, Manifest

from ..samples import SAMPLES as SAMPLES
from ..samples import load_sample

NAMESPACE = "pulp-ns"


def docs(file: str) -> list[dict[str, Any]]:
    return load_sample(file)


def _data(doc: dict[str, Any]) -> dict[str, str]:
    raw = doc.get("data") or {}
    if doc["kind"] == "ConfigMap":
        data = {k: str(v) for k, v in raw.items()}
    else:
        data = {k: base64.b64decode(v).decode() for k, v in raw.items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return data


def inputs(file: str, **changes: Any) -> Inputs:
    """Inputs of the Pulp in a sample file, with the Secrets/ConfigMaps of the same file and the
    generated Secrets; changes replace Inputs fields (spec may be a dict merged into the CR)."""
    all_docs = docs(file)
    pulp = next(d for d in all_docs if d["kind"] == "Pulp")
    name = pulp["metadata"]["name"]
    raw_spec = dict(pulp["spec"])
    raw_spec.update(changes.pop("spec_update", {}))
    spec = PulpSpec.model_validate(raw_spec)
    secrets = {d["metadata"]["name"]: _data(d) for d in all_docs if d["kind"] == "Secret"}
    config_maps = {d["metadata"]["name"]: _data(d) for d in all_docs if d["kind"] == "ConfigMap"}
    for gen in desired.generated_secrets(name, NAMESPACE, spec):
        secrets.setdefault(
            gen.name, secretgen.generate(gen.kind, name=name, namespace=NAMESPACE, spec=spec)
        )
    base = Inputs(
        name=name, namespace=NAMESPACE, spec=spec, secrets=secrets, config_maps=config_maps
    )
    return replace(base, **changes)


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(
        f"no {kind} {name} in {[(o['kind'], o['metadata']['name']) for o in objects]}"
    )


def kinds_names(objects: list[Manifest]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def dump(objects: list[Manifest]) -> str:
    """The objects as text, in their own key order (stricter than sorted YAML, and fast)."""
    return "\n".join(json.dumps(o) for o in objects)


def container(obj: Manifest, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][index]
    return result
