"""The operator's watch cache: what a pass reads, kept current by the watch streams it runs.

Fed by the kopf handlers of every watched kind (operator.py) and by the results of the operator's
own writes, so that a pass with nothing to change makes no API request at all. It holds:

* every Pulp, and every object labelled as owned by a Pulp (names.OWNED_LABEL), by Pulp;
* every PersistentVolumeClaim (claims are few and small; a Pulp may name one it does not own);
* of the Secrets and ConfigMaps it does not own: the bodies of those a Pulp references, and of
  all others only their name and resourceVersion (a stub), so that unrelated objects in a
  watched namespace cost next to no memory. A referenced object first seen as a stub is read
  once from the API and kept from then on (see observe.CachedReader).

Bodies are kept as compressed JSON (without managedFields): every read returns a fresh copy that
the caller may change.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import names

Obj = dict[str, Any]
Key = tuple[str, str, str]
"""(kind, namespace, name)"""

# Kinds whose bodies are kept only when owned or referenced.
STUBBED_KINDS = frozenset({"Secret", "ConfigMap"})


@dataclass(frozen=True)
class Stub:
    """An object that exists but whose body the cache does not keep."""

    resource_version: str


@dataclass
class _Entry:
    uid: str
    resource_version: str
    owner: str | None
    body: bytes | None  # None: a stub


@dataclass
class WatchCache:
    _entries: dict[Key, _Entry] = field(default_factory=dict)
    _by_owner: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)

    def update(self, kind: str, body: Mapping[str, Any], *, referenced: bool = False) -> None:
        """Record an object as seen in an event or returned by a write (newest version wins)."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        key = (kind, namespace, name)
        uid, version = meta.get("uid") or "", meta.get("resourceVersion") or ""
        old = self._entries.get(key)
        if old is not None and old.uid == uid and _older(version, old.resource_version):
            return
        owner = (meta.get("labels") or {}).get(names.OWNED_LABEL)
        keep = owner is not None or referenced or kind not in STUBBED_KINDS
        if (
            old is not None
            and old.uid == uid
            and old.resource_version == version
            and (old.body is not None or not keep)
        ):
            return  # the same version again (index and event handler both feed the cache)
        self._unlink(key, old)
        self._entries[key] = _Entry(uid, version, owner, _pack(body) if keep else None)
        if owner is not None:
            self._by_owner.setdefault((namespace, owner), set()).add((kind, name))

    def delete(self, kind: str, body: Mapping[str, Any]) -> None:
        """Forget an object deleted from the cluster (not a newer one of the same name)."""
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        old = self._entries.get(key)
        if old is not None and (not meta.get("uid") or old.uid == meta.get("uid")):
            self._unlink(key, old)
            del self._entries[key]

    def replace_owned(self, kind: str, namespace: str, objects: list[Obj]) -> None:
        """Make the owned objects of a kind in a namespace exactly `objects`, as a fresh list
        says (a watch gap may hide a deletion: kopf relists after one but sends no DELETED)."""
        self.replace(kind, namespace, objects, owned_only=True)

    def replace(
        self, kind: str, namespace: str, objects: list[Obj], *, owned_only: bool = False
    ) -> None:
        """Make the cached objects of a kind in a namespace (only the owned ones, with
        `owned_only`) exactly `objects`: what is not listed is gone. Bodies kept before are
        kept; the others stay stubs."""
        fresh = {
            (kind, o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in objects
        }
        kept: set[Key] = set()
        for key, entry in list(self._entries.items()):
            if key[0] != kind or key[1] != namespace or (owned_only and not entry.owner):
                continue
            if key not in fresh:
                self._unlink(key, entry)
                del self._entries[key]
            elif entry.body is not None:
                kept.add(key)
        for key, obj in fresh.items():
            self.update(kind, obj, referenced=key in kept)

    def get(self, kind: str, namespace: str, name: str) -> Obj | Stub | None:
        entry = self._entries.get((kind, namespace, name))
        if entry is None:
            return None
        if entry.body is None:
            return Stub(entry.resource_version)
        return _unpack(entry.body)

    def owned(self, namespace: str, pulp: str) -> dict[tuple[str, str], Obj]:
        """Every object labelled as owned by the Pulp, by (kind, name)."""
        out: dict[tuple[str, str], Obj] = {}
        for kind, name in sorted(self._by_owner.get((namespace, pulp), ())):
            entry = self._entries[(kind, namespace, name)]
            if entry.body is not None:
                out[(kind, name)] = _unpack(entry.body)
        return out

    def keys(self, kind: str) -> Iterator[tuple[str, str]]:
        """(namespace, name) of every cached object of a kind."""
        for k, namespace, name in list(self._entries):
            if k == kind:
                yield namespace, name

    def __len__(self) -> int:
        return len(self._entries)

    def _unlink(self, key: Key, old: _Entry | None) -> None:
        if old is None or old.owner is None:
            return
        kind, namespace, name = key
        members = self._by_owner.get((namespace, old.owner))
        if members is not None:
            members.discard((kind, name))
            if not members:
                del self._by_owner[(namespace, old.owner)]


def _older(version: str, than: str) -> bool:
    """Whether resourceVersion `version` is older than `than` (only when both are numbers, as
    etcd's are; otherwise the newest event wins)."""
    return version.isdigit() and than.isdigit() and int(version) < int(than)


def _pack(body: Mapping[str, Any]) -> bytes:
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    slim = {**body, "metadata": meta}
    return zlib.compress(json.dumps(slim, separators=(",", ":")).encode(), 1)


def _unpack(data: bytes) -> Obj:
    obj: Obj = json.loads(zlib.decompress(data))
    return obj
