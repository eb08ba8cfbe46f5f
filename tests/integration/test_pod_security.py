"""Pod Security: every pod the operator creates is admitted in a namespace that enforces the
`restricted` profile (the simulated cluster: its controllers create the pods, kube-apiserver's
PodSecurity admission judges them, kwok runs them)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from lightkube.resources.core_v1 import Event, Namespace, Pod
from lightkube.types import PatchType

from pulp_devcluster import ClusterInfo
from pulp_operator.operator import RunOptions, running

from .pulps import condition, create_all, get_pulp, kube_for, load_sample, provide_volumes

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


async def test_every_pod_is_admitted_under_the_restricted_profile(
    cluster: ClusterInfo, cluster_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = cluster_namespace
    kube = kube_for(cluster)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    try:
        await kube.client.patch(
            Namespace, ns, {"metadata": {"labels": RESTRICTED}}, patch_type=PatchType.MERGE
        )
        await provide_volumes(kube, ns)
        docs = load_sample("simple.yaml")
        options = RunOptions(
            namespaces=(ns,),
            health_address=None,
            metrics_port=0,
            kubeconfig=str(cluster.kubeconfig),
            resync_seconds=3600,
        )
        async with running(options):
            (name,) = await create_all(kube, ns, docs)
            deadline = time.monotonic() + 180
            ready: dict[str, Any] = {}
            while time.monotonic() < deadline:
                with_status = await get_pulp(kube, ns, name)
                if (with_status.get("status") or {}).get("conditions"):
                    ready = condition(with_status, "Ready")
                    if ready["status"] == "True":
                        break
                refused = await _refusals(kube.client, ns)
                assert not refused, refused
                await asyncio.sleep(1)
            assert ready.get("status") == "True", ready
        pods = [p async for p in kube.client.list(Pod, namespace=ns)]
        owners = {(p.metadata.labels or {}).get("app.kubernetes.io/component") for p in pods}  # type: ignore[union-attr]
        assert {"api", "content", "worker", "web", "database", "cache"} <= owners, owners
        # the migration Job's pod was admitted, ran and succeeded (the Job is gone by now)
        assert condition(await get_pulp(kube, ns, name), "MigrationsComplete")["status"] == "True"
        assert not await _refusals(kube.client, ns)
    finally:
        await kube.close()


async def _refusals(client: Any, namespace: str) -> list[str]:
    """Pods the controllers could not create, as their Events say."""
    events = [e async for e in client.list(Event, namespace=namespace)]
    return [
        f"{e.involvedObject.kind} {e.involvedObject.name}: {e.message}"
        for e in events
        if e.reason == "FailedCreate" or "PodSecurity" in (e.message or "")
    ]
