"""The whole operator (kopf watches + work queue + reconciler) against real control planes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Event, PersistentVolumeClaim, Secret

from pulp_devcluster import ClusterInfo
from pulp_operator import names
from pulp_operator.kube import PulpResource
from pulp_operator.operator import RunOptions, Runtime, running

from .pulps import (
    condition,
    create_all,
    eventually,
    get_pulp,
    kube_for,
    load_sample,
    patch_spec,
    provide_volumes,
)


@pytest.fixture
async def operator_for(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[[ClusterInfo, str], Any]]:
    stack: list[Any] = []

    async def start(info: ClusterInfo, namespace: str) -> Runtime:
        monkeypatch.setenv("KUBECONFIG", str(info.kubeconfig))
        ctx = running(
            RunOptions(
                namespaces=(namespace,),
                health_address=None,
                metrics_port=0,
                kubeconfig=str(info.kubeconfig),
                resync_seconds=3600,
            )
        )
        runtime = await ctx.__aenter__()
        stack.append(ctx)
        return runtime

    yield start
    for ctx in reversed(stack):
        await ctx.__aexit__(None, None, None)


@pytest.mark.apiserver
async def test_operator_creates_and_repairs(
    apiserver: ClusterInfo, api_namespace: str, operator_for: Callable[[ClusterInfo, str], Any]
) -> None:
    kube = kube_for(apiserver)
    try:
        await operator_for(apiserver, api_namespace)
        (name,) = await create_all(kube, api_namespace, load_sample("simple.yaml"))

        async def api_exists() -> Any:
            return await kube.get(Deployment, names.api(name), api_namespace)

        await eventually(api_exists, what="api Deployment created")

        # a child deleted by hand comes back, through the watch on owned objects
        await kube.client.delete(Deployment, names.api(name), namespace=api_namespace)
        started = time.monotonic()
        await eventually(api_exists, what="api Deployment restored")
        assert time.monotonic() - started < 15

        # a referenced ConfigMap edited: settings.py follows, without any annotation on it
        server_before = await kube.get(Secret, names.server_settings(name), api_namespace)
        assert server_before is not None
        await kube.client.patch(
            ConfigMap, "settings", {"data": {"analytics": "True"}}, namespace=api_namespace
        )

        async def settings_changed() -> bool:
            now = await kube.get(Secret, names.server_settings(name), api_namespace)
            return now is not None and now["data"] != server_before["data"]

        await eventually(settings_changed, what="settings.py updated")
        cm = await kube.get(ConfigMap, "settings", api_namespace)
        assert cm is not None
        assert not any("kopf" in key for key in (cm["metadata"].get("annotations") or {})), (
            "kopf must not write on referenced objects"
        )
        assert not cm["metadata"].get("finalizers")

        pulp = await get_pulp(kube, api_namespace, name)
        assert not pulp["metadata"].get("finalizers")
        assert not any("kopf" in k for k in (pulp["metadata"].get("annotations") or {}))

        events = [e async for e in kube.client.list(Event, namespace=api_namespace)]
        reasons = {e.reason for e in events if e.involvedObject.name == name}
        assert "Created" in reasons
    finally:
        await kube.close()


@pytest.mark.cluster
async def test_pulp_becomes_ready_with_its_pods(
    cluster: ClusterInfo, cluster_namespace: str, operator_for: Callable[[ClusterInfo, str], Any]
) -> None:
    kube = kube_for(cluster)
    try:
        await operator_for(cluster, cluster_namespace)
        await provide_volumes(kube, cluster_namespace)
        (name,) = await create_all(kube, cluster_namespace, load_sample("simple.yaml"))

        async def ready() -> Any:
            pulp = await get_pulp(kube, cluster_namespace, name)
            try:
                return condition(pulp, "Ready")["status"] == "True" and pulp
            except AssertionError:
                return False

        pulp = await eventually(ready, within=120, what="Pulp Ready=True")
        for type_ in (
            "APIReady",
            "ContentReady",
            "WorkerReady",
            "WebReady",
            "DatabaseReady",
            "CacheReady",
            "MigrationsComplete",
        ):
            assert condition(pulp, type_)["status"] == "True", type_
        assert condition(pulp, "Degraded")["status"] == "False"
        assert pulp["status"]["migrated_image"] == pulp["status"]["image"]

        # a Deployment that cannot become available: Ready=False naming the component
        await patch_spec(
            kube, cluster_namespace, name, {"api": {"node_selector": {"no-such-node": "x"}}}
        )

        async def api_not_ready() -> Any:
            pulp = await get_pulp(kube, cluster_namespace, name)
            cond = condition(pulp, "Ready")
            return cond["status"] == "False" and cond

        cond = await eventually(api_not_ready, within=60, what="Ready=False for the api")
        assert cond["reason"].startswith("API")
        assert names.api(name) in cond["message"]
        assert condition(await get_pulp(kube, cluster_namespace, name), "APIReady")["status"] == (
            "False"
        )
    finally:
        await kube.close()


@pytest.mark.cluster
async def test_delete_keeps_data_and_recreate_finds_it(
    cluster: ClusterInfo, cluster_namespace: str, operator_for: Callable[[ClusterInfo, str], Any]
) -> None:
    kube = kube_for(cluster)
    ns = cluster_namespace
    try:
        await operator_for(cluster, ns)
        await provide_volumes(kube, ns)
        docs = load_sample("simple.yaml")
        (name,) = await create_all(kube, ns, docs)

        async def kept() -> Any:
            out = {}
            for secret in (
                names.db_fields_encryption(name),
                names.postgres_configuration(name),
                names.container_auth(name),
            ):
                obj = await kube.get(Secret, secret, ns)
                if obj is None:
                    return None
                out[secret] = obj["data"]
            return out

        before = await eventually(kept, what="generated secrets")
        await eventually(lambda: kube.get(Deployment, names.api(name), ns), what="api Deployment")
        await kube.client.delete(PulpResource, name, namespace=ns)

        async def workloads_gone() -> bool:
            return await kube.get(Deployment, names.api(name), ns) is None

        await eventually(workloads_gone, within=60, what="garbage collection of the workloads")
        assert await kept() == before
        assert await kube.get(PersistentVolumeClaim, names.file_storage(name), ns) is not None
        assert await kube.get(PersistentVolumeClaim, names.database_claim(name), ns)

        # the same Pulp created again finds its keys and database credentials
        await create_all(kube, ns, [d for d in docs if d["kind"] == "Pulp"], stand_ins=False)
        await eventually(
            lambda: kube.get(Deployment, names.api(name), ns), what="api Deployment again"
        )
        assert await kept() == before
    finally:
        await kube.close()
