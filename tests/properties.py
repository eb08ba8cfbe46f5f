"""Hypothesis strategies for what a user could write in a Pulp: derived from the CRD's own schema
(the API server admits nothing else), so that every field the CRD has is generated.

Strings are sometimes plausible values (names, sizes, images, paths) and sometimes any text;
numbers range over what the schema allows. Objects the CRD passes through to Kubernetes as they
are (x-kubernetes-preserve-unknown-fields without properties: affinity, probes, tolerations,
topology spread, strategies, PDB specs, env valueFrom) are left out: their content is the API
server's to judge when the operator applies them (a refusal becomes an ApplyFailed condition
naming the object), not the models'.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pulp_operator.api.crd import KINDS, crd

PULP = next(k for k in KINDS if k.kind == "Pulp")
SPEC_SCHEMA: dict[str, Any] = crd(PULP)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
    "properties"
]["spec"]

PLAUSIBLE = (
    "standard",
    "my-secret",
    "pulp",
    "a",
    "10Gi",
    "500m",
    "1",
    "quay.io/pulp/pulp-minimal",
    "3.123.1",
    "latest",
    "pulp.example.com",
    "/tmp",
    "ReadWriteMany",
    "ReadWriteOnce",
    "sha256",
    "True",
    "10s",
)

DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
PULP_NAMES = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9-]{36,38}[a-z0-9]", fullmatch=True),  # as long as allowed
)
"""Names the CRD admits for a Pulp (DNS-1035 labels of at most 40 characters), short and
long."""


def strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    least = int(schema.get("minLength", 0))
    return st.one_of(
        st.sampled_from(PLAUSIBLE),
        st.from_regex(DNS_LABEL, fullmatch=True),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=least, max_size=30),
    ).filter(lambda s: len(s) >= least)


def _passed_through(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        schema = schema.get("items") or {}
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) and not schema.get("properties")


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid under a structural schema (CEL rules aside: see validity below)."""
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 10_000), strings({}))
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties") or {}
        if not props:
            if schema.get("x-kubernetes-preserve-unknown-fields"):
                return st.just({})
            extra = schema.get("additionalProperties")
            values = from_schema(extra, depth + 1) if isinstance(extra, dict) else strings({})
            return st.dictionaries(strings({}), values, max_size=3)
        required = set(schema.get("required") or ())
        props = {k: v for k, v in props.items() if not _passed_through(v)}
        return st.fixed_dictionaries(
            {k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: from_schema(v, depth + 1) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        items = schema.get("items") or {}
        if items.get("x-kubernetes-preserve-unknown-fields") and not items.get("properties"):
            return st.just([])
        return st.lists(from_schema(items, depth + 1), max_size=3)
    if kind == "string":
        return strings(schema)
    if kind == "integer":
        low = schema.get("minimum", -5)
        return st.integers(int(low), int(schema.get("maximum", max(int(low), 0) + 70_000)))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def specs() -> st.SearchStrategy[dict[str, Any]]:
    """Pulp specs under the CRD's schema, most of them with exactly one storage type (the
    CRD's first rule) so that generation reaches past it."""
    base = from_schema(SPEC_SCHEMA)
    storage = st.sampled_from(
        [
            {"file_storage_storage_class": "standard"},
            {"pvc": "my-claim"},
            {"object_storage_s3_secret": "s3"},
            {"object_storage_azure_secret": "azure"},
            {"object_storage_gcs_secret": "gcs"},
            {},
        ]
    )

    def combine(spec: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
        if not chosen:
            return spec
        out = {
            k: v
            for k, v in spec.items()
            if k
            not in (
                "file_storage_storage_class",
                "pvc",
                "object_storage_s3_secret",
                "object_storage_azure_secret",
                "object_storage_gcs_secret",
            )
        }
        if "file_storage_storage_class" not in chosen:
            out.pop("file_storage_size", None)
            out.pop("file_storage_access_mode", None)
        return {**out, **chosen}

    return st.builds(combine, base, storage)
