"""Building blocks of the v1 models: the base model and Kubernetes-native passthrough types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

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
    Field(pattern=r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$"),
]


class Model(BaseModel):
    """Base of every spec model: snake_case field names as in the upstream API; unknown fields are
    rejected so that a typo is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=False)

    def dump(self) -> dict[str, Any]:
        """The fields that were set or have a non-empty value, in API form (by alias)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ResourceRequirements(Model):
    """A subset-compatible copy of core/v1 ResourceRequirements."""

    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None
    claims: KubeObjectList | None = None


class EnvVar(Model):
    """core/v1 EnvVar."""

    name: str = Field(min_length=1)
    value: str | None = None
    value_from: KubeObject | None = Field(default=None, alias="valueFrom")


class PulpContainer(Model):
    """An auxiliary container (init container or job container) of the pulpcore pods."""

    image: str | None = Field(
        default=None,
        description="Image of the container; defaults to the Pulp image (image:image_version).",
    )
    resource_requirements: ResourceRequirements | None = None
    env_vars: list[EnvVar] | None = None


class PulpJob(Model):
    container: PulpContainer | None = None
