"""Building blocks of the v1 models: the base model and Kubernetes-native passthrough types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
)

# Kubernetes types that the CR embeds verbatim (Affinity, Probe, ...). Their full OpenAPI schemas
# belong to the API server's own types; the CRD keeps them as free-form objects and the API server
# validates them when the operator applies the objects that carry them.
_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

KubeObject = Annotated[dict[str, Any], WithJsonSchema(_OBJECT_SCHEMA)]
KubeObjectList = Annotated[
    list[dict[str, Any]], WithJsonSchema({"type": "array", "items": _OBJECT_SCHEMA})
]
StringMap = dict[str, str]

# The quantity type of the Kubernetes API: an integer or a string such as "8Gi" or "500m".
Quantity = Annotated[
    str,
    Field(pattern=r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"),
]
PositiveQuantity = Annotated[
    str,
    Field(
        pattern=r"^\+?(0*[1-9][0-9]*(\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"
    ),
]
"""A quantity greater than zero (a volume size)."""

# Names and keys as the Kubernetes API validates them: a value the API would refuse is refused by
# the models already, with the field named, instead of failing when the operator applies it.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
"""The name of a Secret, ConfigMap, PersistentVolumeClaim, StorageClass or IngressClass."""
Hostname = Annotated[str, Field(max_length=253, pattern=rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")]
"""A DNS name (an Ingress host may start with a wildcard label `*.`)."""
ConfigKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
"""A key of a Secret or ConfigMap."""
Image = Annotated[str, Field(min_length=1, pattern=r"^[^\s]+$")]
"""A container image reference (no whitespace)."""
ImageTag = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
ConfigMapKeyRef = Annotated[str, Field(pattern=rf"^{_LABEL}(\.{_LABEL})*(:[-._a-zA-Z0-9]+)?$")]
"""A ConfigMap, optionally with one of its keys: configmap-name[:key]."""
NginxSize = Annotated[str, Field(pattern=r"^[0-9]+[kKmMgG]?$")]
"""An nginx size: a number of bytes, optionally with k, m or g."""
Duration = Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h|d)?$")]
"""An nginx/haproxy time: a number, optionally with ms, s, m, h or d."""

NAMED_PATTERNS: dict[str, str] = {
    pattern: name
    for kind, name in (
        (Quantity, "quantity (e.g. 8Gi, 500m)"),
        (PositiveQuantity, "quantity greater than 0 (e.g. 8Gi)"),
        (ObjectName, "object name (a DNS subdomain: lowercase letters, digits, '-', '.')"),
        (Hostname, "DNS name (an Ingress host may start with *.)"),
        (ConfigKey, "Secret or ConfigMap key (letters, digits, '-', '_', '.')"),
        (Image, "image reference (no whitespace)"),
        (ImageTag, "image tag"),
        (ConfigMapKeyRef, "configmap-name[:key]"),
        (NginxSize, "nginx size (a number, optionally with k, m or g)"),
        (Duration, "time (a number, optionally with ms, s, m, h or d)"),
    )
    for pattern in [TypeAdapter(kind).json_schema()["pattern"]]
}
"""How the reference docs name the constrained string types, by their pattern."""

_QUALIFIED = re.compile(
    rf"^({_LABEL}(\.{_LABEL})*/)?(?P<name>[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_RESOURCE_NAME = re.compile(
    r"^(cpu|memory|ephemeral-storage|storage|hugepages-[A-Za-z0-9.]+|"
    rf"{_LABEL}(\.{_LABEL})+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$"
)


def _qualified_name(key: str) -> str:
    match = _QUALIFIED.match(key)
    prefix = key.rsplit("/", 1)[0] if "/" in key else ""
    if match is None or len(match["name"]) > 63 or len(prefix) > 253:
        raise ValueError(
            f"key {key!r} is not a qualified name (an optional DNS prefix and '/', then at most 63"
            " letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    return key


def _label_map(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        _qualified_name(key)
        if len(item) > 63 or not _LABEL_VALUE.match(item):
            raise ValueError(
                f"value {item!r} of {key!r} is not a label value (at most 63 letters, digits,"
                " '-', '_' or '.', starting and ending with a letter or digit)"
            )
    return value


def _annotation_map(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        _qualified_name(key)
    return value


def _resource_names(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _RESOURCE_NAME.match(key):
            raise ValueError(
                f"{key!r} is not a resource name (cpu, memory, ephemeral-storage, hugepages-<size>"
                " or a domain-qualified extended resource)"
            )
    return value


LabelMap = Annotated[dict[str, str], AfterValidator(_label_map)]
"""Kubernetes labels (or a node selector): qualified-name keys, label values."""
AnnotationMap = Annotated[dict[str, str], AfterValidator(_annotation_map)]
"""Kubernetes annotations: qualified-name keys."""
Resources = Annotated[dict[str, Quantity], AfterValidator(_resource_names)]

# Characters the API server's YAML decoding of server-side apply refuses, and control characters
# (no setting, name or annotation needs one): refused in every string of the spec.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def _printable(value: Any) -> None:
    if isinstance(value, str):
        found = _UNPRINTABLE.search(value)
        if found is not None:
            raise ValueError(f"must not contain the control character {found.group()!r}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _printable(key)
            _printable(item)
    elif isinstance(value, list):
        for item in value:
            _printable(item)
    # nested models checked their own fields


class Model(BaseModel):
    """Base of every spec model: snake_case field names as in the upstream API; unknown fields are
    rejected so that a typo is reported instead of silently ignored."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, validate_default=False, use_attribute_docstrings=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        _printable(value)
        return value

    def dump(self) -> dict[str, Any]:
        """The fields that were set or have a non-empty value, in API form (by alias)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ResourceRequirements(Model):
    """A subset-compatible copy of core/v1 ResourceRequirements."""

    limits: Resources | None = None
    """Upper limits per resource (cpu, memory, ...)."""
    requests: Resources | None = None
    """Requests per resource (cpu, memory, ...)."""
    claims: KubeObjectList | None = None
    """Dynamic resource claims (core/v1 ResourceClaim)."""


class EnvVar(Model):
    """core/v1 EnvVar."""

    name: str = Field(min_length=1, pattern=r"^[ -<>-~]+$")
    """Name of the variable (printable ASCII without '=')."""
    value: str | None = None
    """Its value."""
    value_from: KubeObject | None = Field(default=None, alias="valueFrom")
    """core/v1 EnvVarSource (a Secret or ConfigMap key, a field) instead of value."""


class PulpContainer(Model):
    """An auxiliary container (init container or job container) of the pulpcore pods."""

    image: Image | None = Field(
        default=None,
        description="Image of the container; defaults to the Pulp image (image:image_version).",
    )
    resource_requirements: ResourceRequirements | None = None
    env_vars: list[EnvVar] | None = None
    """Extra environment variables of the container."""


class PulpJob(Model):
    container: PulpContainer | None = None
