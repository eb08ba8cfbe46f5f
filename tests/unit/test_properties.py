"""Property-based tests of the spec models and the builders over every spec the CRD admits
(strategies in tests/properties.py): a spec is refused with a message naming its field, or it
renders, deterministically, pods that meet the restricted Pod Security profile."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from pulp_operator.api.crd import API_VERSION
from pulp_operator.render import InputError, render

from ..properties import PULP_NAMES, specs

SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pulp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Pulp",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


def names_a_field(message: str) -> bool:
    return any(where in message for where in (": spec", "by spec.", "metadata.name", "(spec."))


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        return [spec["template"]["spec"]]
    return []


@SETTINGS
@given(PULP_NAMES, specs())
def test_a_spec_is_refused_naming_a_field_or_renders_restricted_pods(
    name: str, spec: dict[str, Any]
) -> None:
    refusal: str | None = None
    try:
        first = render([pulp(name, spec)])
    except InputError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert names_a_field(refusal), refusal
        return
    assert render([pulp(name, spec)]).objects == first.objects, "rendering is not deterministic"
    for obj in first.objects:
        assert len(obj["metadata"]["name"]) <= 253
        for labels in (obj["metadata"].get("labels") or {}).values():
            assert len(labels) <= 63, obj["metadata"]["name"]
        for pod in pod_specs(obj):
            assert pod["securityContext"].get("runAsNonRoot") is True, obj["metadata"]["name"]
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                context = container.get("securityContext") or {}
                for key, value in RESTRICTED.items():
                    assert context.get(key) == value, (obj["metadata"]["name"], container["name"])
                assert context.get("runAsNonRoot", True) is True
