"""`pulp-operator render`: the objects the operator would create for the Pulp CRs in a file.

It runs the same pure builders as the reconciler, on inputs read from the file instead of the
cluster: Secrets and ConfigMaps in the file are used; objects the Pulp names but the file lacks are
assumed to exist (with placeholder data) and reported; generated secrets get fresh values, which are
redacted unless asked for.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from . import desired, secretgen
from .api.crd import API_VERSION, name_problem
from .api.pulp import PulpSpec
from .api.validation import describe_validation_error
from .desired.inputs import Claim, ClusterFacts, Inputs, Manifest
from .desired.references import placeholder, references

REDACTED = "<redacted: use --show-secrets>"


class InputError(Exception):
    """Input that cannot be rendered; the message is one line naming the field or object."""


@dataclass
class Rendered:
    objects: list[Manifest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{source} is not valid YAML{where}: {problem}") from None
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError(f"{source} holds a YAML document that is not an object")
    return docs


def parse_pulp(doc: dict[str, Any]) -> PulpSpec:
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        raise InputError("Pulp: metadata.name is required")
    problem = name_problem(str(name))
    if problem:
        raise InputError(f"Pulp {name}: {problem}")
    try:
        return PulpSpec.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        raise InputError(f"Pulp {name}: {describe_validation_error(exc, 'spec')}") from None


def _data(doc: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (doc.get("data") or {}).items():
        if doc.get("kind") == "Secret":
            try:
                out[key] = base64.b64decode(str(value), validate=True).decode()
            except ValueError:
                name = doc["metadata"]["name"]
                raise InputError(f"Secret {name}: data.{key} is not valid base64") from None
        else:
            out[key] = str(value)
    out.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return out


def render(
    docs: Iterable[dict[str, Any]], *, namespace: str | None = None, show_secrets: bool = False
) -> Rendered:
    docs = list(docs)
    pulps = [d for d in docs if d.get("kind") == "Pulp"]
    for d in pulps:
        if d.get("apiVersion") != API_VERSION:
            raise InputError(
                f"Pulp {(d.get('metadata') or {}).get('name')}: apiVersion {d.get('apiVersion')}"
                f" is not supported; this operator serves {API_VERSION}"
            )
    if not pulps:
        raise InputError(f"no Pulp ({API_VERSION}) found")
    result = Rendered()
    for doc in pulps:
        meta = doc.get("metadata") or {}
        ns = namespace or meta.get("namespace") or "default"
        spec = parse_pulp(doc)
        objects = _render_one(meta["name"], ns, spec, docs, show_secrets, result)
        if not (namespace or meta.get("namespace")):
            for obj in objects:  # this Pulp's objects only: earlier Pulps keep theirs
                obj["metadata"].pop("namespace", None)
        result.objects.extend(objects)
    return result


def _render_one(
    name: str,
    namespace: str,
    spec: PulpSpec,
    docs: list[dict[str, Any]],
    show_secrets: bool,
    result: Rendered,
) -> list[Manifest]:
    def held(kind: str) -> dict[str, dict[str, str]]:
        return {
            d["metadata"]["name"]: _data(d)
            for d in docs
            if d.get("kind") == kind
            and (d.get("metadata") or {}).get("namespace") in (None, namespace)
        }

    secrets, config_maps = held("Secret"), held("ConfigMap")
    claims = {claim: Claim() for claim in held("PersistentVolumeClaim")}
    for ref in references(spec):
        pool: dict[str, Any] = {"Secret": secrets, "ConfigMap": config_maps}.get(ref.kind, claims)
        if ref.name not in pool:
            result.warnings.append(f"{ref.describe()} is not in the file; assuming it exists")
            pool[ref.name] = Claim() if pool is claims else placeholder(ref)

    generated: list[Manifest] = []
    for gen in desired.generated_secrets(name, namespace, spec):
        if gen.name in secrets:
            continue
        values = secretgen.generate(gen.kind, name=name, namespace=namespace, spec=spec)
        if not show_secrets:
            # The same stand-in on every run: what is derived from the values (the config hash
            # in the pod templates, the admin password Job's name) stays the same too.
            values = dict.fromkeys(values, REDACTED)
        secrets[gen.name] = values
        generated.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": gen.name, "namespace": namespace, "labels": gen.labels},
                "stringData": values,
            }
        )
    routes = spec.ingress_kind == "route"
    if routes:
        result.warnings.append("ingress_type route: assuming the cluster serves route.openshift.io")
    built = desired.build(
        Inputs(
            name=name,
            namespace=namespace,
            spec=spec,
            secrets=secrets,
            config_maps=config_maps,
            claims=claims,
            cluster=ClusterFacts(has_routes=routes),
        )
    )
    if built.problems:
        first = built.problems[0]
        raise InputError(f"Pulp {name}: {first.message}")
    return generated + built.objects


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (settings.py, nginx.conf) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.startswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: Iterable[Manifest]) -> str:
    return "".join(
        "---\n" + yaml.dump(o, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)
        for o in objects
    )
