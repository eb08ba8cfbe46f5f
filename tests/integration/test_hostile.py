"""Hostile edits and bad input, against a real API server with the operator running:

* another field manager changes what the operator owns: restored on the next event; what the
  operator does not own (annotations added by others, replicas under an HPA) is left alone;
* 50 malformed Pulps beside 10 good ones: the good ones converge as fast as alone, each bad one
  has a condition naming its field, the operator neither crashes nor stalls.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.types import PatchType

from pulp_devcluster import ClusterInfo
from pulp_operator import names
from pulp_operator.diff import APPLIED_HASH_ANNOTATION
from pulp_operator.kube import Kube, resource_class
from pulp_operator.operator import RunOptions, Runtime, running

from .etcd import spoil_pulp
from .pulps import create_all, eventually, get_pulp, load_sample, patch_spec

pytestmark = pytest.mark.apiserver

INTRUDER = "someone-else"


async def namespaces(kube: Kube, count: int, prefix: str) -> list[str]:
    out = []
    for _ in range(count):
        name = f"{prefix}-{secrets.token_hex(3)}"
        await kube.client.create(Namespace(metadata=ObjectMeta(name=name)))
        out.append(name)
    return out


@pytest.fixture
async def operator_for(
    apiserver: ClusterInfo, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    monkeypatch.setenv("KUBECONFIG", str(apiserver.kubeconfig))
    contexts: list[Any] = []

    async def start(*spaces: str) -> Runtime:
        ctx = running(
            RunOptions(
                namespaces=spaces,
                health_address=None,
                metrics_port=0,
                kubeconfig=str(apiserver.kubeconfig),
                resync_seconds=3600,
            )
        )
        runtime = await ctx.__aenter__()
        contexts.append(ctx)
        return runtime

    yield start
    for ctx in reversed(contexts):
        await ctx.__aexit__(None, None, None)


def simple(name: str, **spec: Any) -> list[dict[str, Any]]:
    docs = load_sample("simple.yaml")
    for doc in docs:
        if doc["kind"] == "Pulp":
            doc["metadata"]["name"] = name
            for key, value in spec.items():
                doc["spec"][key] = value
    return docs


def has_status(pulp: dict[str, Any]) -> bool:
    conditions = (pulp.get("status") or {}).get("conditions") or []
    generation = pulp["metadata"].get("generation")
    return bool(conditions) and conditions[0].get("observedGeneration") == generation


async def settled(runtime: Runtime, kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        pulp = await get_pulp(kube, namespace, name)
        return pulp if has_status(pulp) else None

    pulp: dict[str, Any] = await eventually(done, what=f"status of {name}")
    assert runtime.queue is not None
    await runtime.queue.wait_idle()
    return pulp


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name
    )
    return found


# --- other field managers -------------------------------------------------------------------


async def test_owned_fields_are_restored_and_other_managers_fields_left_alone(
    kube: Kube, operator_for: Any
) -> None:
    (ns,) = await namespaces(kube, 1, "hostile-fields")
    runtime: Runtime = await operator_for(ns)
    queue = runtime.queue
    assert queue is not None
    (name,) = await create_all(kube, ns, simple("fields"))
    await settled(runtime, kube, ns, name)
    live = await kube.get(Deployment, names.api(name), ns)
    assert live is not None
    main = live["spec"]["template"]["spec"]["containers"][0]["name"]
    image = container(live, main)["image"]

    # a field the operator owns, taken over by force with server-side apply, plus an annotation
    await kube.client.patch(
        Deployment,
        names.api(name),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": names.api(name), "annotations": {"team.example/owner": "alice"}},
            "spec": {
                "template": {"spec": {"containers": [{"name": main, "image": "evil.example/x:1"}]}}
            },
        },
        namespace=ns,
        patch_type=PatchType.APPLY,
        field_manager=INTRUDER,
        force=True,
    )

    async def restored() -> dict[str, Any] | None:
        now = await kube.get(Deployment, names.api(name), ns)
        return now if now is not None and container(now, main)["image"] == image else None

    now = await eventually(restored, what="the image restored")
    assert now["metadata"]["annotations"]["team.example/owner"] == "alice"

    # someone else's annotation on a Service: left alone, and no write at all in reply
    assert runtime.kube is not None
    await queue.wait_idle()
    writes = sum(runtime.kube.writes.values())
    passes = queue.processed
    await kube.client.patch(
        Service,
        names.api_service(name),
        {"metadata": {"annotations": {"lb.example/pool": "blue"}}},
        namespace=ns,
        field_manager=INTRUDER,
    )
    await eventually(lambda: _async(queue.processed > passes), what="a pass after the annotation")
    await queue.wait_idle()
    assert sum(runtime.kube.writes.values()) == writes, runtime.kube.writes
    svc = await kube.get(Service, names.api_service(name), ns)
    assert svc is not None
    assert svc["metadata"]["annotations"]["lb.example/pool"] == "blue"


async def _async(value: bool) -> bool:
    return value


async def test_replicas_under_an_hpa_are_left_to_it(kube: Kube, operator_for: Any) -> None:
    (ns,) = await namespaces(kube, 1, "hostile-hpa")
    runtime = await operator_for(ns)
    docs = simple("scaled")
    pulp_doc = next(d for d in docs if d["kind"] == "Pulp")
    pulp_doc["spec"]["api"] = {"hpa": {"enabled": True, "min_replicas": 1, "max_replicas": 6}}
    (name,) = await create_all(kube, ns, docs)
    await settled(runtime, kube, ns, name)

    # the HPA controller scales through the scale subresource, as its own field manager
    await kube.client.patch(
        Deployment.Scale,
        names.api(name),
        {"spec": {"replicas": 4}},
        namespace=ns,
        patch_type=PatchType.MERGE,
        field_manager="horizontal-pod-autoscaler",
    )
    before = await kube.get(Deployment, names.api(name), ns)
    assert before is not None
    stamp = before["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
    # a spec change that makes the operator apply the api Deployment again
    await patch_spec(kube, ns, name, {"api": {"gunicorn_timeout": 123}})

    async def reapplied() -> dict[str, Any] | None:
        now = await kube.get(Deployment, names.api(name), ns)
        changed = (
            now is not None and now["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] != stamp
        )
        return now if changed else None

    now = await eventually(reapplied, what="the api Deployment applied again")
    main = now["spec"]["template"]["spec"]["containers"][0]
    assert "123" in json.dumps(main), "the new gunicorn timeout is not in the api container"
    assert now["spec"]["replicas"] == 4, "the operator took the replicas back from the HPA"


# --- bad input at scale ---------------------------------------------------------------------

GOOD = 10


def _good(ns: str, count: int, prefix: str) -> list[dict[str, Any]]:
    docs = simple(f"{prefix}0")
    template = next(d for d in docs if d["kind"] == "Pulp")
    out = [d for d in docs if d["kind"] != "Pulp"]
    for i in range(count):
        body = copy.deepcopy(template)
        body["metadata"]["name"] = f"{prefix}{i}"
        out.append(body)
    return out


async def _create_pulps(kube: Kube, ns: str, docs: list[dict[str, Any]]) -> list[str]:
    """Like create_all, with a NodePort of its own for each Pulp."""
    out = []
    for doc in docs:
        body = copy.deepcopy(doc)
        body["metadata"] = {**body["metadata"], "namespace": ns}
        if body["kind"] == "Pulp":
            body["spec"]["nodeport_port"] = _nodeport()
            out.append(body["metadata"]["name"])
        await kube.client.create(resource_class(body).from_dict(body))  # type: ignore[attr-defined]
    return out


_NEXT_PORT = [30900]


def _nodeport() -> int:
    _NEXT_PORT[0] += 1
    return _NEXT_PORT[0]


async def _all_status(kube: Kube, ns: str, pulps: list[str]) -> float | None:
    for name in pulps:
        if not has_status(await get_pulp(kube, ns, name)):
            return None
    return time.monotonic()


async def test_malformed_pulps_beside_good_ones(
    apiserver: ClusterInfo, kube: Kube, operator_for: Any
) -> None:
    alone, mixed = await namespaces(kube, 2, "hostile-scale")
    runtime = await operator_for(alone, mixed)
    assert runtime.queue is not None

    # the good ones alone
    t0 = time.monotonic()
    good_alone = await _create_pulps(kube, alone, _good(alone, GOOD, "good"))
    done = await eventually(lambda: _all_status(kube, alone, good_alone), 120, "good Pulps alone")
    time_alone = done - t0
    await runtime.queue.wait_idle()

    # 50 malformed ones first, then the same 10 good ones, all at once
    bad: dict[str, str] = {}  # name -> what its condition must name
    base = next(d for d in simple("x") if d["kind"] == "Pulp")

    def bad_pulp(name: str, **spec: Any) -> dict[str, Any]:
        body = copy.deepcopy(base)
        body["metadata"] = {"name": name}
        body["spec"].update(spec)
        return body

    docs: list[dict[str, Any]] = []
    spoiled: dict[str, dict[str, Any]] = {}
    for i in range(10):
        docs.append(bad_pulp(f"wrong-type-{i}"))
        spoiled[f"wrong-type-{i}"] = {"api": {"replicas": "three"}}
        bad[f"wrong-type-{i}"] = "spec.api.replicas"
        docs.append(bad_pulp(f"bad-enum-{i}"))
        spoiled[f"bad-enum-{i}"] = {"ingress_type": "teleport"}
        bad[f"bad-enum-{i}"] = "spec.ingress_type"
        docs.append(bad_pulp(f"two-storages-{i}"))
        spoiled[f"two-storages-{i}"] = {"object_storage_s3_secret": "s3"}
        bad[f"two-storages-{i}"] = "object_storage_s3_secret"
    for i in range(5):
        docs.append(bad_pulp(f"no-secret-{i}", admin_password_secret=f"missing-{i}"))
        bad[f"no-secret-{i}"] = "spec.admin_password_secret"
        docs.append(bad_pulp(f"no-settings-{i}", custom_pulp_settings=f"missing-{i}"))
        bad[f"no-settings-{i}"] = "spec.custom_pulp_settings"
    for i in range(10):
        cm = f"broken-settings-{i}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": cm},
                "data": {"allowed_export_paths": "[ '/tmp'", "not-a-name": "1"},
            }
        )
        docs.append(bad_pulp(f"bad-settings-{i}", custom_pulp_settings=cm))
        bad[f"bad-settings-{i}"] = "spec.custom_pulp_settings"
    assert len(bad) == 50
    good = _good(mixed, GOOD, "good")
    await _create_pulps(kube, mixed, [d for d in good if d["kind"] != "Pulp"])
    await _create_pulps(kube, mixed, docs)
    for name, patch in spoiled.items():  # stored as an older, looser CRD would have let them
        spoil_pulp(apiserver, mixed, name, patch)
    t0 = time.monotonic()  # the bad ones are all there, and the operator busy with them
    good_mixed = await _create_pulps(kube, mixed, [d for d in good if d["kind"] == "Pulp"])
    done = await eventually(
        lambda: _all_status(kube, mixed, good_mixed), 120, "good Pulps beside bad ones"
    )
    time_mixed = done - t0
    print(f"\n{GOOD} good Pulps: {time_alone:.1f}s alone, {time_mixed:.1f}s beside 50 bad ones")
    assert time_mixed <= 2 * time_alone + 5, (time_alone, time_mixed)

    async def untold() -> dict[str, str]:
        """Bad Pulps whose Ready condition does not (yet) name their field."""
        missing = {}
        for name, field in bad.items():
            pulp = await get_pulp(kube, mixed, name)
            conditions = (pulp.get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c["type"] == "Ready"), None)
            told = ready is not None and ready["status"] == "False" and field in ready["message"]
            if not told:
                missing[name] = ready["message"] if ready else "no Ready condition"
        return missing

    for _ in range(120):  # up to a minute
        missing = await untold()
        if not missing:
            break
        await asyncio.sleep(0.5)
    assert not missing, missing

    # no stall: a new good Pulp still converges promptly, and the queue is not spinning
    await runtime.queue.wait_idle()
    passes = runtime.queue.processed
    await asyncio.sleep(5)
    spinning = runtime.queue.processed - passes
    assert spinning <= len(bad), f"{spinning} passes in 5s of quiet"
    t0 = time.monotonic()
    (late,) = await _create_pulps(kube, mixed, [bad_pulp("late-good")])
    await eventually(lambda: _all_status(kube, mixed, [late]), 30, "a late good Pulp")
    print(f"a late good Pulp converged in {time.monotonic() - t0:.1f}s")
