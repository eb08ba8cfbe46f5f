"""Writing a Pulp straight into etcd, as a CR stored under an older or looser CRD would be.

The API server refuses at admission what the CRD's schema and rules catch, but it never checks
again what is already stored: a CR written under the upstream CRD (which has no rules), or under
an older CRD of this operator, reaches the operator as it is. Such a CR is made here by creating a
valid one through the API and then changing its stored JSON in etcd (etcd's JSON gateway); the
API server's watch cache sees the change like any other.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

from pulp_devcluster import ClusterInfo

PULPS_PREFIX = "/registry/repo-manager.pulpproject.org/pulps"


def etcd_url(info: ClusterInfo) -> str:
    state = json.loads((Path(info.state_dir) / "state.json").read_text())
    return f"http://127.0.0.1:{state['ports']['etcd_client']}"


def _call(url: str, path: str, body: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spoil_pulp(info: ClusterInfo, namespace: str, name: str, spec_patch: dict[str, Any]) -> None:
    """Merge `spec_patch` into the stored spec of a Pulp, bypassing admission (a None value
    removes a key)."""
    url, key = etcd_url(info), f"{PULPS_PREFIX}/{namespace}/{name}"
    found = _call(url, "/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
    if not found:
        raise AssertionError(f"no {key} in etcd")
    stored = json.loads(base64.b64decode(found[0]["value"]))
    spec = stored.setdefault("spec", {})
    for field, value in spec_patch.items():
        if value is None:
            spec.pop(field, None)
        elif isinstance(value, dict) and isinstance(spec.get(field), dict):
            spec[field] = {**spec[field], **value}
        else:
            spec[field] = value
    stored["metadata"]["generation"] = int(stored["metadata"].get("generation", 1)) + 1
    _call(url, "/v3/kv/put", {"key": _b64(key), "value": _b64(json.dumps(stored))})
