"""Whether a live object already is as desired, so that a no-op pass writes nothing.

Server-side apply with unchanged content is still a write. The operator stamps every object it
applies with a hash of the desired manifest and applies again only when that hash changed (the spec
changed) or the live object no longer holds the desired values (someone edited or removed them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

APPLIED_HASH_ANNOTATION = "repo-manager.pulpproject.org/applied-hash"

_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")


def digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its own hash in an annotation (the hash covers everything else). The
    result shares everything below metadata with `obj`: neither may be changed afterwards."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: digest(obj)}
    return {**obj, "metadata": meta}


def normalise_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """Secrets are applied with base64 `data` (what the API returns), not `stringData`."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out["data"] = data
    return out


def up_to_date(
    live: dict[str, Any] | None, desired: dict[str, Any], written: str | None = None
) -> bool:
    """True when `live` carries the stamp of `desired` and holds all of its values. `written`:
    the resourceVersion the operator's own last apply returned; a live object still at that
    version holds what was applied, so its values need no comparison."""
    if live is None:
        return False
    want = (desired.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    have = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    if want is None or want != have:
        return False
    if written is not None and live["metadata"].get("resourceVersion") == written:
        return True
    return contains(live, desired)


def contains(live: Any, want: Any) -> bool:
    """Whether `live` holds every value of `want` (extra fields in `live` are defaults)."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return not want
        return all(
            contains(live.get(key), value) for key, value in want.items() if not _empty(value)
        )
    if isinstance(want, list):
        if not isinstance(live, list):
            return not want
        return len(live) == len(want) and all(
            contains(a, b) for a, b in zip(live, want, strict=True)
        )
    return _scalar_equal(live, want)


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _scalar_equal(live: Any, want: Any) -> bool:
    if isinstance(live, bool) or isinstance(want, bool):
        return live is want
    if live == want:
        return True
    if isinstance(live, (str, int, float)) and isinstance(want, (str, int, float)):
        a, b = _quantity(live), _quantity(want)
        return a is not None and a == b
    return False


def quantity(value: str | int | float) -> Decimal | None:
    """A Kubernetes quantity (8Gi, 500m, 1e3) as a number; None when it is not one."""
    return _quantity(value)


def _quantity(value: str | int | float) -> Decimal | None:
    match = _QUANTITY.match(str(value))
    if not match or match.group(2) not in ("", *_SUFFIXES):
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    return number * Decimal(_SUFFIXES.get(match.group(2), 1))
