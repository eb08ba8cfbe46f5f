"""kopf wiring: watches that feed the work queue, and the process around them.

Only @kopf.on.event and @kopf.index handlers are registered, handlers return None, posting of
kopf's own Events is off and the operator runs standalone: kopf writes nothing on the objects it
watches. Every event, of a Pulp or of anything it owns or references, becomes the Pulp's key in one
work queue; the reconciler does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import names
from .api.crd import GROUP
from .api.pulp import PulpSpec
from .desired.inputs import ClusterFacts
from .desired.references import references
from .kube import Kube
from .reconciler import Reconciler
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, Pulp name)

# Owned kinds watched to repair drift, as (group, version, plural) for kopf.
OWNED_WATCHES = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "serviceaccounts"),
    ("batch", "v1", "jobs"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)
# Secrets and ConfigMaps are both owned and referenced: watched without a label selector.
SHARED_WATCHES = (("", "v1", "secrets"), ("", "v1", "configmaps"))


@dataclass
class RunOptions:
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    health_address: str | None = "http://0.0.0.0:8081/healthz"
    metrics_port: int = 8080
    resync_seconds: float = 300.0
    workers: int = 4
    kubeconfig: str | None = None


@dataclass
class Runtime:
    """State of a running operator, shared by its handlers (kopf's memo)."""

    options: RunOptions
    kube: Kube | None = None
    queue: WorkQueue[Key] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    known: set[Key] = field(default_factory=set)


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    def enqueue(key: Key) -> None:
        if runtime.queue is not None:
            runtime.queue.add(key)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False
        settings.posting.level = logging.CRITICAL + 10
        settings.peering.standalone = True
        settings.watching.server_timeout = 300
        settings.queueing.worker_limit = None
        for group, _version, plural in OWNED_WATCHES:
            settings.watching.label_selectors[group, plural] = names.OWNED_LABEL
        kube = Kube.from_config(runtime.options.kubeconfig)
        runtime.kube = kube
        cluster = ClusterFacts(has_routes=await kube.has_routes())
        reconciler = Reconciler(kube, cluster)

        async def handle(key: Key) -> float | None:
            namespace, name = key
            outcome = await reconciler.reconcile(namespace, name)
            return outcome.requeue_after

        runtime.queue = WorkQueue(handle, workers=runtime.options.workers)
        runtime.tasks.append(asyncio.create_task(runtime.queue.run(), name="workqueue"))
        runtime.tasks.append(asyncio.create_task(_resync(runtime), name="resync"))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in runtime.tasks:
            task.cancel()
        for task in runtime.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runtime.kube is not None:
            await runtime.kube.close()

    @kopf.on.probe(registry=registry, id="queue")
    def probe(**_: Any) -> dict[str, float]:
        if runtime.queue is None:
            raise RuntimeError("work queue not started")
        oldest = runtime.queue.oldest_wait()
        if oldest > 600:
            raise RuntimeError(f"a reconcile has waited {oldest:.0f}s")
        return {"oldest_wait_seconds": round(oldest, 1)}

    @kopf.index(GROUP, "v1", "pulps", registry=registry, id="references")
    async def reference_index(
        namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str, str], str] | None:
        try:
            parsed = PulpSpec.model_validate(dict(spec))
        except ValueError:
            return None
        return {(ref.kind, namespace or "", ref.name): name for ref in references(parsed)}

    @kopf.on.event(GROUP, "v1", "pulps", registry=registry, id="pulp")
    async def pulp_event(namespace: str | None, name: str, type: str, **_: Any) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            runtime.known.discard(key)
            return
        runtime.known.add(key)
        enqueue(key)

    for group, version, plural in OWNED_WATCHES:
        _watch_owned(registry, group, version, plural, enqueue)
    for group, version, plural in SHARED_WATCHES:
        _watch_shared(registry, group, version, plural, enqueue)
    return registry


def _owner_key(namespace: str | None, meta: kopf.Meta) -> Key | None:
    owner = meta.labels.get(names.OWNED_LABEL)
    return (namespace, owner) if namespace and owner else None


def _watch_owned(
    registry: kopf.OperatorRegistry,
    group: str,
    version: str,
    plural: str,
    enqueue: Callable[[Key], None],
) -> None:
    @kopf.on.event(group, version, plural, registry=registry, id=f"owned-{plural}")
    async def owned_event(namespace: str | None, meta: kopf.Meta, **_: Any) -> None:
        key = _owner_key(namespace, meta)
        if key is not None:
            enqueue(key)


def _watch_shared(
    registry: kopf.OperatorRegistry,
    group: str,
    version: str,
    plural: str,
    enqueue: Callable[[Key], None],
) -> None:
    kind = "Secret" if plural == "secrets" else "ConfigMap"

    @kopf.on.event(group, version, plural, registry=registry, id=f"referenced-{plural}")
    async def shared_event(
        namespace: str | None,
        name: str,
        meta: kopf.Meta,
        **kwargs: Any,
    ) -> None:
        references: kopf.Index[tuple[str, str, str], str] = kwargs["references"]
        key = _owner_key(namespace, meta)
        if key is not None:
            enqueue(key)
        for pulp in references.get((kind, namespace or "", name), []):
            enqueue((namespace or "", pulp))


async def _resync(runtime: Runtime) -> None:
    """Reconcile every known Pulp periodically: a safety net for missed events."""
    while True:
        await asyncio.sleep(runtime.options.resync_seconds)
        if runtime.queue is not None:
            for key in sorted(runtime.known):
                runtime.queue.add(key)


@contextlib.asynccontextmanager
async def running(
    options: RunOptions, stop_flag: asyncio.Event | None = None, startup_timeout: float = 60.0
) -> AsyncIterator[Runtime]:
    """Run the operator in this event loop while the context is open (used by tests)."""
    runtime = Runtime(options)
    stop = stop_flag or asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(_operate(runtime, stop, ready))
    try:
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=startup_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if task in done:
            task.result()
        if not done:
            raise TimeoutError(f"the operator did not start within {startup_timeout}s")
        yield runtime
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=30)
        except asyncio.CancelledError:
            if not task.cancelled():  # we were cancelled ourselves, not the operator task
                raise


async def _operate(runtime: Runtime, stop: asyncio.Event, ready: asyncio.Event) -> None:
    options = runtime.options
    namespaces: Collection[str] = options.namespaces
    await kopf.operator(
        registry=build_registry(runtime),
        standalone=True,
        clusterwide=options.all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=options.health_address,
        stop_flag=stop,
        ready_flag=ready,
        memo=kopf.Memo(),
    )


def run(options: RunOptions) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per API request otherwise
    if options.metrics_port:
        start_http_server(options.metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = Runtime(options)
        await _operate(runtime, stop, asyncio.Event())

    assert threading.current_thread() is threading.main_thread()
    asyncio.run(main())
    return 0
