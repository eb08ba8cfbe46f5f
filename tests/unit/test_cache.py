"""The watch cache: what it keeps, and that old or foreign events never overwrite newer state."""

from __future__ import annotations

from typing import Any

from pulp_operator import names
from pulp_operator.cache import Stub, WatchCache


def obj(
    kind: str, name: str, rv: str, uid: str = "u1", owner: str | None = None, **extra: Any
) -> dict[str, Any]:
    labels = {names.OWNED_LABEL: owner} if owner else {}
    meta = {
        "name": name,
        "namespace": "ns",
        "uid": uid,
        "resourceVersion": rv,
        "labels": labels,
        "managedFields": [{"manager": "x", "fieldsV1": {"f:data": {}}}],
    }
    return {"kind": kind, "metadata": meta, **extra}


def test_unrelated_secrets_are_stubs_and_owned_ones_are_kept() -> None:
    cache = WatchCache()
    cache.update("Secret", obj("Secret", "other", "5", data={"big": "x" * 50_000}))
    cache.update("Secret", obj("Secret", "mine", "6", owner="p", data={"k": "dg=="}))
    assert cache.get("Secret", "ns", "other") == Stub("5")
    mine = cache.get("Secret", "ns", "mine")
    assert isinstance(mine, dict)
    assert mine["data"] == {"k": "dg=="}
    assert "managedFields" not in mine["metadata"]
    assert set(cache.owned("ns", "p")) == {("Secret", "mine")}
    assert cache.get("Secret", "ns", "absent") is None


def test_a_referenced_stub_keeps_its_body_from_then_on() -> None:
    cache = WatchCache()
    cache.update("ConfigMap", obj("ConfigMap", "settings", "1", data={"a": "1"}))
    assert isinstance(cache.get("ConfigMap", "ns", "settings"), Stub)
    cache.update("ConfigMap", obj("ConfigMap", "settings", "1", data={"a": "1"}), referenced=True)
    found = cache.get("ConfigMap", "ns", "settings")
    assert isinstance(found, dict)
    assert found["data"] == {"a": "1"}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = WatchCache()
    cache.update("Deployment", obj("Deployment", "api", "20", owner="p", spec={"replicas": 2}))
    cache.update("Deployment", obj("Deployment", "api", "19", owner="p", spec={"replicas": 1}))
    found = cache.get("Deployment", "ns", "api")
    assert isinstance(found, dict)
    assert found["spec"] == {"replicas": 2}


def test_reads_are_copies() -> None:
    cache = WatchCache()
    cache.update("Deployment", obj("Deployment", "api", "1", owner="p", spec={"replicas": 2}))
    first = cache.owned("ns", "p")[("Deployment", "api")]
    first["spec"]["replicas"] = 9
    assert cache.owned("ns", "p")[("Deployment", "api")]["spec"] == {"replicas": 2}


def test_deleting_an_old_object_spares_its_successor_of_the_same_name() -> None:
    cache = WatchCache()
    old = obj("Service", "api-svc", "1", uid="old", owner="p")
    cache.update("Service", old)
    cache.update("Service", obj("Service", "api-svc", "2", uid="new", owner="p"))
    cache.delete("Service", old)  # the late DELETED event of the first one
    assert isinstance(cache.get("Service", "ns", "api-svc"), dict)
    cache.delete("Service", obj("Service", "api-svc", "3", uid="new", owner="p"))
    assert cache.get("Service", "ns", "api-svc") is None
    assert cache.owned("ns", "p") == {}


def test_a_label_change_moves_the_object_between_owners() -> None:
    cache = WatchCache()
    cache.update("Job", obj("Job", "j", "1", owner="a"))
    cache.update("Job", obj("Job", "j", "2", owner="b"))
    assert cache.owned("ns", "a") == {}
    assert set(cache.owned("ns", "b")) == {("Job", "j")}


def test_a_fresh_list_removes_what_a_watch_gap_hid() -> None:
    cache = WatchCache()
    cache.update("Deployment", obj("Deployment", "api", "1", owner="p"))
    cache.update("Deployment", obj("Deployment", "gone", "1", uid="g", owner="p"))
    cache.update("Secret", obj("Secret", "kept", "1", uid="s", owner="p"))
    cache.replace_owned("Deployment", "ns", [obj("Deployment", "api", "3", owner="p")])
    assert set(cache.owned("ns", "p")) == {("Deployment", "api"), ("Secret", "kept")}
    found = cache.get("Deployment", "ns", "api")
    assert isinstance(found, dict)
    assert found["metadata"]["resourceVersion"] == "3"


def test_replace_forgets_what_a_fresh_listing_lacks_and_keeps_bodies_kept() -> None:
    cache = WatchCache()
    cache.update("Secret", obj("Secret", "gone", "1", uid="g"), referenced=True)
    cache.update(
        "Secret", obj("Secret", "named", "2", uid="n", data={"k": "dg=="}), referenced=True
    )
    cache.update("Secret", obj("Secret", "other", "3", uid="o"))
    fresh = [
        obj("Secret", "named", "5", uid="n", data={"k": "dw=="}),
        obj("Secret", "other", "6", uid="o", data={"big": "x"}),
    ]
    cache.replace("Secret", "ns", fresh)
    assert cache.get("Secret", "ns", "gone") is None
    named = cache.get("Secret", "ns", "named")
    assert isinstance(named, dict)
    assert named["data"] == {"k": "dw=="}
    assert cache.get("Secret", "ns", "other") == Stub("6")
