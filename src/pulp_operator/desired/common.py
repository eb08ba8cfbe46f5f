"""Small helpers shared by the builders: metadata, hashes, images, security contexts."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..api.types import EnvVar, ResourceRequirements
from .inputs import Manifest

Version = tuple[int, int]

PULP_UID = 700
POSTGRES_UID = 999
REDIS_UID = 999
WEB_UID = 1001

API_PORT = 24817
CONTENT_PORT = 24816
WEB_PORT = 24880
WEB_CONTAINER_PORT = 8080


def digest(value: Any, length: int = 64) -> str:
    """sha256 of a JSON-serialisable value (keys sorted), as hex, cut to length."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def meta(
    kind: str,
    api_version: str,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def env_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def merge_env(base: Iterable[dict[str, Any]], *extra: list[EnvVar] | None) -> list[dict[str, Any]]:
    """Our variables, then the user's; a user variable replaces ours of the same name (a list with
    duplicate names is rejected by server-side apply)."""
    merged: dict[str, dict[str, Any]] = {e["name"]: e for e in base}
    for items in extra:
        for var in items or []:
            merged[var.name] = var.dump()
    return list(merged.values())


def resources(req: ResourceRequirements | None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    if req is None:
        return {}
    data = req.dump()
    for part in ("limits", "requests"):
        if part in data:
            data[part] = {k: v for k, v in data[part].items() if k not in drop}
            if not data[part]:
                del data[part]
    return data


def container_security_context(run_as_non_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": run_as_non_root,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int) -> dict[str, Any]:
    return {
        "fsGroup": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def pulpcore_version(tag: str) -> Version | None:
    """The (major, minor) of an image tag such as 3.85.0; None for stable, latest, a digest...
    which count as the newest release."""
    match = _VERSION.match(tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def at_least(version: Version | None, minimum: Version) -> bool:
    return version is None or version >= minimum


def set_if(target: dict[str, Any], key: str, value: Any) -> None:
    """Set key only when value is not empty (None, {}, [] and "" are left out)."""
    if value not in (None, {}, [], ""):
        target[key] = value
