"""kopf wiring: watches that feed the work queue, and the process around them.

Only @kopf.on.event handlers are registered (no index handlers: see `_watch`), handlers return
None, posting of kopf's own Events is off and the operator runs standalone: kopf writes nothing on
the objects it watches. The cache is filled by one listing of every kind before the first pass;
then every event, of a Pulp or of anything it owns or references, becomes the Pulp's key in one
work queue (unless it only brings back the operator's own write); the reconciler does the rest.

With leader election (leader.py) every replica watches and caches, and only the leader runs the
work queue's workers and writes. Watching several namespaces, the operator runs one cluster-wide
watch per kind, filtered to those namespaces, when it may list and watch cluster-wide (a watch
per kind and namespace costs ~4.5 MB of memory per namespace; see `watch_scope`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fnmatch
import itertools
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf
from aiohttp import web
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching
from lightkube.core.exceptions import ApiError
from prometheus_client import start_http_server

from . import health, names, permissions
from .api.crd import GROUP
from .api.pulp import PulpSpec
from .backups import Backups
from .cache import Stub, WatchCache
from .desired.backup import BACKUP_LABEL, RESTORE_LABEL
from .desired.inputs import ClusterFacts
from .desired.references import references
from .kube import (
    OWNED_KINDS,
    REFERENCED_KINDS,
    Kube,
    NotLeading,
    PulpResource,
    kind_key,
    resource_class,
    transient_error,
)
from .leader import LeaderElector, LeaseSettings
from .observe import CachedReader
from .reconciler import Reconciler
from .restores import Restores
from .runs import Kind, RunKey
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, Pulp name)
QueueKey = Key | RunKey  # a Pulp, or a PulpBackup / PulpRestore


@dataclass(frozen=True)
class Watch:
    kind: str
    group: str
    version: str
    plural: str
    selected: bool
    """Only objects labelled as owned by a Pulp are streamed (a server-side label selector)."""


WATCHES = (
    Watch("Deployment", "apps", "v1", "deployments", True),
    Watch("StatefulSet", "apps", "v1", "statefulsets", True),
    Watch("Service", "", "v1", "services", True),
    Watch("ServiceAccount", "", "v1", "serviceaccounts", True),
    Watch("Job", "batch", "v1", "jobs", True),
    Watch("Ingress", "networking.k8s.io", "v1", "ingresses", True),
    Watch("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", True),
    Watch("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", True),
    Watch("Role", "rbac.authorization.k8s.io", "v1", "roles", True),
    Watch("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings", True),
    # Owned and referenced: every object is streamed; the cache keeps only what Pulps need.
    Watch("Secret", "", "v1", "secrets", False),
    Watch("ConfigMap", "", "v1", "configmaps", False),
    Watch("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", False),
)
# Pages of the initial listings: unrelated Secrets and ConfigMaps pass through in small batches.
LIST_CHUNK = 100

WatchScope = Literal["auto", "cluster", "namespaces"]
# After a re-listing starts, wait this long for the other kinds' listings before resyncing.
RELIST_DEBOUNCE = 2.0


@dataclass
class RunOptions:
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    health_address: str | None = "http://0.0.0.0:8081/healthz"
    metrics_port: int = 8080
    resync_seconds: float = 300.0
    workers: int = 4
    kubeconfig: str | None = None
    leader_election: LeaseSettings | None = None
    """None: this process is the only replica and always works."""
    watch_scope: WatchScope = "auto"
    """For several namespaces: one watch per kind and namespace ("namespaces"), or one per kind
    cluster-wide filtered to them ("cluster"); "auto" takes "cluster" when it is allowed."""


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf computes one for every event (a deep copy of the body) although only
    handlers of changes need it, and this operator has none."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class Forever:
    """Retry delays that never run out (kopf's run out after ~1 minute, and a watch whose
    retries ran out is gone for good while the operator keeps running: kopf issue #1276)."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1, 1, 2, 3, 5), itertools.repeat(8.0))


FAILING_WATCHES: dict[str, tuple[float, str]] = {}
"""Watch streams failing now ("resource@namespace"): since when (monotonic clock), the last error;
shown by /readyz (`_health`)."""
WATCH_FAILING_LIMIT = 60.0
"""A watch failing this long makes the operator not ready."""


def _unending(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """kopf's watch stream of one kind, started again after any error of the API.

    kopf retries a dropped connection, 429 and 5xx, but a watch that gets a 404 (a restarted API
    server answers so for a custom resource until it has registered its CRDs again) or an ERROR
    event other than 410 ends its watcher task for good: that kind is never watched again while
    the operator keeps running. Here the stream starts again after a delay (it lists first, so
    what the gap hid arrives as a listing: `Runtime.saw_listing`)."""

    async def watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs.get("resource")
        where = f"{resource}@{kwargs.get('namespace') or 'cluster'}"
        delays: Iterator[float] = iter(Forever())
        failures = 0
        try:
            while True:
                try:
                    async for event in original(**kwargs):
                        if failures:
                            log.info("watch of %s works again (%d failures)", resource, failures)
                            failures, delays = 0, iter(Forever())
                            FAILING_WATCHES.pop(where, None)
                        yield event
                    return  # kopf's test mode (`_iterations`) only: the real stream never ends
                except kopf_errors.APIUnauthorizedError:
                    raise  # kopf's own re-login handles credentials
                except (kopf_errors.APIError, kopf_watching.WatchingError) as exc:
                    failures += 1
                    since = FAILING_WATCHES.get(where, (time.monotonic(), ""))[0]
                    FAILING_WATCHES[where] = (since, f"{type(exc).__name__}: {exc}"[:300])
                    delay = next(delays)
                    if failures == 1 or failures % 20 == 0:
                        log.warning(
                            "watch of %s failed (%s: %s); watching again in %.0f s",
                            resource, type(exc).__name__, exc, delay,
                        )  # fmt: skip
                    await asyncio.sleep(delay)
        finally:  # a stream that ends (the operator stops) leaves no record behind
            FAILING_WATCHES.pop(where, None)

    watch.unending = True  # type: ignore[attr-defined]
    return watch


def install_unending_watches() -> bool:
    """Wrap kopf's watch streams (`_unending`) once; False when kopf has no such function (a
    kopf whose internals moved: its own behaviour stays, and the operator says so)."""
    original = getattr(kopf_watching, "infinite_watch", None)
    if original is None:
        log.warning("kopf has no infinite_watch: a watch that fails with 404 is not restarted")
        return False
    if not getattr(original, "unending", False):
        kopf_watching.infinite_watch = _unending(original)
    return True


def in_scope(patterns: Sequence[str], namespace: str) -> bool:
    """Whether a namespace is watched: it matches a pattern (globs as kopf's) and no `!pattern`."""
    included = any(fnmatch.fnmatchcase(namespace, p) for p in patterns if not p.startswith("!"))
    excluded = any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!"))
    return included and not excluded


@dataclass
class Runtime:
    """State of a running operator, shared by its handlers (kopf's memo)."""

    options: RunOptions
    kube: Kube | None = None
    queue: WorkQueue[QueueKey] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    cache: WatchCache = field(default_factory=WatchCache)
    elector: LeaderElector | None = None
    workers: asyncio.Task[None] | None = None
    clusterwide: bool = False
    """kopf watches cluster-wide; `watched` filters the events."""
    health_server: web.AppRunner | None = None
    stale_pulps: dict[Key, tuple[str, float]] = field(default_factory=dict)
    """Pulps whose newer version a resync listed but the watch did not deliver: (version, when
    first found)."""
    references: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    """(kind, namespace, name) of an object a Pulp names -> the names of the Pulps naming it."""
    _named: dict[Key, set[tuple[str, str, str]]] = field(default_factory=dict)
    echoes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(kind, namespace, name) -> the resourceVersion of the operator's own last write: the
    watch event that brings it back has nothing new and starts no pass."""
    listed: set[int] = field(default_factory=set)
    """Hashes of (kind, namespace, name, uid) seen in a listing (kopf's event type None)."""
    relisted: set[str] = field(default_factory=set)
    """Namespaces some watch re-listed (after a gap) and that wait for a resync."""
    relist_timer: asyncio.TimerHandle | None = None

    def saw_pulp(self, pulp: dict[str, Any] | None, namespace: str, name: str) -> None:
        """Record what a Pulp names (None: it is gone), for the events of those objects."""
        key = (namespace, name)
        for ref in self._named.pop(key, set()):
            pulps = self.references.get(ref)
            if pulps is not None:
                pulps.discard(name)
                if not pulps:
                    del self.references[ref]
        if pulp is None:
            return
        try:
            spec = PulpSpec.model_validate(pulp.get("spec") or {})
        except ValueError:
            return
        named: set[tuple[str, str, str]] = {
            (ref.kind, namespace, ref.name) for ref in references(spec)
        }
        self._named[key] = named
        for ref in named:
            self.references.setdefault(ref, set()).add(name)

    def referenced(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.references

    def wrote(self, obj: dict[str, Any]) -> None:
        """An object as a write of the operator returned it."""
        meta = obj["metadata"]
        self.cache.update(obj["kind"], obj, referenced=True)
        key = (obj["kind"], meta.get("namespace") or "", meta["name"])
        self.echoes[key] = meta.get("resourceVersion", "")

    def echo(self, kind: str, namespace: str, name: str, version: str | None) -> bool:
        """Whether an event only brings back the operator's own last write."""
        key = (kind, namespace, name)
        if version and self.echoes.get(key) == version:
            del self.echoes[key]
            return True
        return False

    def saw_listing(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """A listing event: a second one of the same object means kopf listed again after a
        watch gap (e.g. an API server restart), and deletions in the gap were never told: the
        namespace is re-listed and every Pulp in it reconciled (`_relist`)."""
        key = hash((kind, namespace, name, uid))
        if key not in self.listed:
            self.listed.add(key)
            return
        self.relisted.add(namespace)
        if self.relist_timer is None:
            loop = asyncio.get_running_loop()
            self.relist_timer = loop.call_later(
                RELIST_DEBOUNCE, lambda: self.tasks.append(loop.create_task(_relist(self)))
            )

    def watched(self, namespace: str | None) -> bool:
        if not self.clusterwide or self.options.all_namespaces:
            return True
        return in_scope(self.options.namespaces, namespace or "")

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    install_unending_watches()

    def enqueue(key: QueueKey) -> None:
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
        settings.scanning.disabled = not permissions.scanning_needed(runtime.options.namespaces)
        # Watches survive API server restarts: bounded connects, a stream ends after 5 minutes
        # at the latest, and a silent one (no event, no bookmark) is abandoned after 70 s.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.watching.inactivity_timeout = 70
        settings.networking.connect_timeout = 10
        settings.networking.request_timeout = 60
        settings.networking.error_backoffs = Forever()
        settings.queueing.worker_limit = None
        # kopf keeps a task per object for this long after its last event: thousands at once
        # while many objects change, so not the default 5 s
        settings.queueing.idle_timeout = 0.5
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.watching.chunk_size = LIST_CHUNK
        for watch in WATCHES:
            if watch.selected:
                settings.watching.label_selectors[watch.group, watch.plural] = names.OWNED_LABEL
        _run_selectors(settings)
        kube = runtime.kube or Kube.from_config(runtime.options.kubeconfig)
        runtime.kube = kube
        probe_namespace = next(iter(runtime.options.namespaces), "default")
        cluster = ClusterFacts(has_routes=await kube.has_routes(probe_namespace))
        cache = runtime.cache
        reconciler = Reconciler(
            kube,
            cluster,
            reader=CachedReader(cache, kube),
            on_write=runtime.wrote,
        )

        handle_run = _run_handler(kube)

        async def handle(key: QueueKey) -> float | None:
            try:
                if isinstance(key, RunKey):
                    return await handle_run(key)
                namespace, name = key
                outcome = await reconciler.reconcile(namespace, name)
            except NotLeading:
                return None  # leadership is being lost: the next leader reconciles everything
            return outcome.requeue_after

        runtime.queue = WorkQueue(
            handle, workers=runtime.options.workers, transient=transient_error
        )
        lease = runtime.options.leader_election
        if lease is None:
            await _lead(runtime)
        else:
            runtime.elector = LeaderElector(
                kube, lease, on_started=lambda: _lead(runtime), on_stopped=lambda: _follow(runtime)
            )
            kube.fence = runtime.elector.may_write
            runtime.tasks.append(asyncio.create_task(runtime.elector.run(), name="leader"))
        runtime.tasks.append(asyncio.create_task(_resync(runtime), name="resync"))
        runtime.tasks.append(asyncio.create_task(_trim(runtime), name="trim"))
        if runtime.options.health_address:
            runtime.health_server = await health.serve(
                _health(runtime), runtime.options.health_address
            )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await _follow(runtime)  # no pass is left writing when the Lease is released
        if runtime.elector is not None:
            await runtime.elector.release()
        for task in runtime.tasks:
            task.cancel()
        for task in runtime.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runtime.health_server is not None:
            await runtime.health_server.cleanup()
        if runtime.kube is not None:
            await runtime.kube.close()

    @kopf.on.event(GROUP, "v1", "pulps", registry=registry, id="pulp")
    async def pulp_event(
        namespace: str | None,
        name: str,
        type: str | None,
        body: kopf.Body,
        meta: kopf.Meta,
        **_: Any,
    ) -> None:
        if not runtime.watched(namespace):
            return
        ns = namespace or ""
        if type is None:
            runtime.saw_listing("Pulp", ns, name, meta.uid or "")
        raw = _raw(body)
        if type == "DELETED":
            runtime.cache.delete("Pulp", raw)
            runtime.saw_pulp(None, ns, name)
            return
        runtime.cache.update("Pulp", raw)
        runtime.saw_pulp(raw, ns, name)
        if not runtime.echo("Pulp", ns, name, meta.get("resourceVersion")):
            enqueue((ns, name))

    for watch in WATCHES:
        _watch(registry, watch, runtime, enqueue)
    _watch_runs(registry, runtime, enqueue)
    return registry


def _raw(body: kopf.Body) -> dict[str, Any]:
    return {key: body[key] for key in body}


def _watch(
    registry: kopf.OperatorRegistry,
    watch: Watch,
    runtime: Runtime,
    enqueue: Callable[[Key], None],
) -> None:
    """Feed the cache with one kind and map its events to the Pulps they concern.

    No kopf index handlers: kopf makes every event wait for all indexes and creates a toggle per
    object while it lists, which costs time growing with the cube of the number of objects at
    start (minutes with a few thousand). The cache is filled by one listing of every kind before
    the first pass instead (`_prefill`)."""
    cache, watched = runtime.cache, runtime.watched

    @kopf.on.event(
        watch.group, watch.version, watch.plural, registry=registry, id=f"watch-{watch.plural}"
    )
    async def event(
        namespace: str | None,
        name: str,
        type: str | None,
        body: kopf.Body,
        meta: kopf.Meta,
        **kwargs: Any,
    ) -> None:
        if not watched(namespace):
            return
        ns = namespace or ""
        if type is None:
            runtime.saw_listing(watch.kind, ns, name, meta.uid or "")
        if type == "DELETED":
            cache.delete(watch.kind, _raw(body))
        else:
            referenced = runtime.referenced(watch.kind, ns, name)
            cache.update(watch.kind, _raw(body), referenced=referenced)
            if runtime.echo(watch.kind, ns, name, meta.get("resourceVersion")):
                return
        owner = meta.labels.get(names.OWNED_LABEL)
        if owner:
            enqueue((ns, owner))
        if not watch.selected:
            for pulp in sorted(runtime.references.get((watch.kind, ns, name), ())):
                enqueue((ns, pulp))


# --- PulpBackup and PulpRestore (backups.py, restores.py) ----------------------------------------
# Their own controllers, fed through the same queue with a RunKey, reading the API directly (they
# are few, and their passes rare). Their Jobs do not carry OWNED_LABEL (the Pulp's pruning would
# delete them) and so are not in the Job watch: the pods of the Jobs are watched instead, for the
# steps' progress and results (termination messages).

RUN_KINDS: tuple[tuple[str, Kind], ...] = (
    ("pulpbackups", "PulpBackup"),
    ("pulprestores", "PulpRestore"),
)
_RUN_LABELS: tuple[tuple[str, Kind], ...] = (
    (BACKUP_LABEL, "PulpBackup"),
    (RESTORE_LABEL, "PulpRestore"),
)


def _run_selectors(settings: kopf.OperatorSettings) -> None:
    managed = f"app.kubernetes.io/managed-by={names.MANAGER}"
    settings.watching.label_selectors["", "pods"] = (
        f"app.kubernetes.io/component in (backup,restore),{managed}"
    )


def _run_handler(kube: Kube) -> Callable[[RunKey], Awaitable[float | None]]:
    backups, restores = Backups(kube), Restores(kube)

    async def handle(key: RunKey) -> float | None:
        controller = backups if key.kind == "PulpBackup" else restores
        return await controller.reconcile(key.namespace, key.name)

    return handle


def _watch_runs(
    registry: kopf.OperatorRegistry, runtime: Runtime, enqueue: Callable[[QueueKey], None]
) -> None:
    for plural, kind in RUN_KINDS:
        _watch_run_kind(registry, plural, kind, runtime, enqueue)

    @kopf.on.event("", "v1", "pods", registry=registry, id="run-pods")
    async def run_pod_event(namespace: str | None, meta: kopf.Meta, **_: Any) -> None:
        if not runtime.watched(namespace):
            return
        for label, kind in _RUN_LABELS:
            owner = meta.labels.get(label)
            if namespace and owner:
                enqueue(RunKey(kind, namespace, owner))


def _watch_run_kind(
    registry: kopf.OperatorRegistry,
    plural: str,
    kind: Kind,
    runtime: Runtime,
    enqueue: Callable[[QueueKey], None],
) -> None:
    @kopf.on.event(GROUP, "v1", plural, registry=registry, id=kind.lower())
    async def run_event(namespace: str | None, name: str, type: str, **_: Any) -> None:
        if type != "DELETED" and namespace and runtime.watched(namespace):
            enqueue(RunKey(kind, namespace, name))


async def _lead(runtime: Runtime) -> None:
    """This replica works: start the queue's workers, and reconcile every Pulp it knows."""
    if runtime.queue is None or runtime.workers is not None:
        return
    runtime.workers = asyncio.create_task(runtime.queue.run(), name="workqueue")
    for key in sorted(runtime.cache.keys("Pulp")):
        runtime.queue.add(key)


async def _follow(runtime: Runtime) -> None:
    """This replica stops working (passes under way are cancelled; the fence already stops
    their writes): keys keep coming into the queue for when it leads again."""
    workers, runtime.workers = runtime.workers, None
    if workers is not None:
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers


def _health(runtime: Runtime) -> health.Health:
    assert runtime.kube is not None
    kube = runtime.kube
    queue = runtime.queue
    assert queue is not None

    async def ping() -> None:
        namespace = next((n for n in runtime.options.namespaces if not _pattern(n)), None)
        await kube.ping(PulpResource, namespace)

    async def leader() -> tuple[str | None, dict[str, Any]]:
        if runtime.elector is None:
            return None, {"election": False, "leading": True}
        return None, {"election": True, **runtime.elector.report()}

    async def watches() -> tuple[str | None, dict[str, Any]]:
        now = time.monotonic()
        limit = runtime.options.resync_seconds * 1.5
        dead = [f"{ns}/{name}" for (ns, name), (_, since) in runtime.stale_pulps.items()
                if now - since > limit]  # fmt: skip
        shown: dict[str, Any] = {"stale_pulps": len(runtime.stale_pulps)}
        if FAILING_WATCHES:
            shown["failing"] = {
                where: {"for_seconds": round(now - since, 1), "error": error}
                for where, (since, error) in sorted(FAILING_WATCHES.items())
            }
        if dead:
            return f"the Pulp watch did not deliver changes of {', '.join(dead[:5])}", shown
        return None, shown

    async def streams() -> tuple[str | None, dict[str, Any]]:
        """Readiness only: a watch that cannot be established is not mended by a restart."""
        now = time.monotonic()
        long = sorted(w for w, (since, _) in FAILING_WATCHES.items()
                      if now - since > WATCH_FAILING_LIMIT)  # fmt: skip
        if long:
            return f"watches failing for over {WATCH_FAILING_LIMIT:.0f}s: {', '.join(long)}", {}
        return None, {}

    return health.Health(
        api=health.ApiContact(kube, ping),
        checks={
            "queue": health.queue_check(queue.oldest_wait, lambda: runtime.leading),
            "leader": leader,
            "watches": watches,
        },
        ready_checks={"streams": streams},
    )


def _pattern(namespace: str) -> bool:
    return namespace.startswith("!") or any(c in namespace for c in "*?[")


async def _resync(runtime: Runtime) -> None:
    """Periodically: re-list the Pulps and what the operator owns (correcting what a watch gap
    may have hidden from the cache, and noticing a watch that stopped delivering) and reconcile
    every Pulp, a safety net for missed events."""
    while True:
        await asyncio.sleep(runtime.options.resync_seconds)
        if runtime.queue is None or runtime.kube is None or not runtime.leading:
            continue
        await _check_pulp_watch(runtime)
        pulps = sorted(runtime.cache.keys("Pulp"))
        for scope in sorted({namespace for namespace, _ in pulps}):
            await _relist_owned(runtime, scope)
        for key in pulps:
            runtime.queue.add(key)


async def _relist_owned(runtime: Runtime, namespace: str) -> None:
    assert runtime.kube is not None
    for cls in OWNED_KINDS:
        try:
            objects = await runtime.kube.list_all_owned(cls, namespace)
        except Exception as exc:  # the API may be away: try again next time
            log.warning("resync: cannot list %s: %s", kind_key(cls), exc)
            continue
        runtime.cache.replace_owned(kind_key(cls), namespace, objects)


async def _relist(runtime: Runtime) -> None:
    """After a watch gap: list again what the gap may have hidden (deleted Pulps, owned and
    referenced objects) and reconcile every Pulp of the namespaces concerned."""
    runtime.relist_timer = None
    spaces, runtime.relisted = sorted(runtime.relisted), set()
    kube = runtime.kube
    if kube is None:
        return
    log.info("watches listed again after a gap: resyncing %s", ", ".join(spaces))
    for namespace in spaces:
        await _relist_owned(runtime, namespace)
        for kind, cls in (("Pulp", PulpResource), *REFERENCED_KINDS):
            try:
                objects = await kube.list_objects(cls, namespace)
            except Exception as exc:
                log.warning("resync: cannot list %s in %s: %s", kind, namespace, exc)
                continue
            runtime.cache.replace(kind, namespace, objects, owned_only=False)
        if runtime.queue is not None:
            for key in sorted(runtime.cache.keys("Pulp")):
                if key[0] == namespace:
                    runtime.queue.add(key)


async def _check_pulp_watch(runtime: Runtime) -> None:
    """Compare a fresh list of the Pulps with the cache: a Pulp the cache lacks, or holds in an
    older version, at two resyncs in a row means the watch is not delivering (health.py)."""
    assert runtime.kube is not None
    options = runtime.options
    exact = [n for n in options.namespaces if not _pattern(n)]
    scopes: list[str | None] = [None] if options.all_namespaces or len(exact) < len(
        options.namespaces
    ) else list(exact)  # fmt: skip
    listed: list[dict[str, Any]] = []
    for scope in scopes:
        try:
            listed += await runtime.kube.list_objects(PulpResource, scope)
        except Exception as exc:
            log.warning("resync: cannot list the Pulps: %s", exc)
            return
    now = time.monotonic()
    stale: dict[Key, tuple[str, float]] = {}
    for pulp in listed:
        meta = pulp["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        if not runtime.watched(key[0]):
            continue
        cached = runtime.cache.get("Pulp", *key)
        have = "" if cached is None or isinstance(cached, Stub) else cached["metadata"].get(
            "resourceVersion", ""
        )  # fmt: skip
        version = meta.get("resourceVersion", "")
        if have != version and not (
            have.isdigit() and version.isdigit() and int(have) > int(version)
        ):
            seen = runtime.stale_pulps.get(key)
            stale[key] = (version, seen[1] if seen is not None else now)
            runtime.cache.update("Pulp", pulp)  # meanwhile, reconcile what the list says
    runtime.stale_pulps = stale
    if stale:
        log.warning("resync: %d Pulps newer in the API than the watch told", len(stale))


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
    runtime.kube = Kube.from_config(options.kubeconfig)
    runtime.clusterwide = options.all_namespaces or await _watch_clusterwide(runtime)
    await _prefill(runtime)
    namespaces: Collection[str] = () if runtime.clusterwide else options.namespaces
    await kopf.operator(
        registry=build_registry(runtime),
        standalone=True,
        clusterwide=runtime.clusterwide,
        namespaces=namespaces,
        liveness_endpoint=None,
        stop_flag=stop,
        ready_flag=ready,
        memo=kopf.Memo(),
    )


async def _prefill(runtime: Runtime) -> None:
    """Fill the cache with one listing of every watched kind (the Pulps first, so that what
    they name keeps its body) before the first pass and before kopf's watches start."""
    assert runtime.kube is not None
    kube, options = runtime.kube, runtime.options
    exact = [n for n in options.namespaces if not _pattern(n)]
    scopes: list[str | None]
    if runtime.clusterwide:
        scopes = [None]
    elif len(exact) == len(options.namespaces):
        scopes = list(exact)
    else:  # patterns watched namespace by namespace: the ones matching now
        scopes = [n for n in await kube.namespaces() if in_scope(options.namespaces, n)]
    started = time.monotonic()
    count = 0
    for scope in scopes:
        try:
            pulps = await kube.list_objects(PulpResource, scope)
        except ApiError as exc:
            if exc.status.code == 404:
                raise RuntimeError(
                    "the Pulp CRD is not installed: `pulp-operator crds | kubectl apply"
                    " --server-side -f -`"
                ) from None
            raise
        for pulp in pulps:
            meta = pulp["metadata"]
            if runtime.watched(meta.get("namespace")):
                runtime.cache.update("Pulp", pulp)
                runtime.saw_pulp(pulp, meta.get("namespace", ""), meta["name"])
                count += 1
    for watch in WATCHES:
        api_version = f"{watch.group}/{watch.version}" if watch.group else watch.version
        cls = resource_class({"apiVersion": api_version, "kind": watch.kind})
        for scope in scopes:
            selector = names.OWNED_LABEL if watch.selected else None
            # unrelated Secrets and ConfigMaps may be large: small pages keep the peak low
            page = 100 if watch.selected else 20
            async for obj in kube.iterate(cls, scope, selector, page):
                meta = obj["metadata"]
                ns = meta.get("namespace") or ""
                if runtime.watched(ns):
                    referenced = runtime.referenced(watch.kind, ns, meta["name"])
                    runtime.cache.update(watch.kind, obj, referenced=referenced)
                    count += 1
    log.info("cache filled with %d objects in %.1fs", count, time.monotonic() - started)
    release_memory()


def release_memory() -> None:
    """Give the memory freed since back to the system (glibc keeps it otherwise: listings of
    large Secrets and ConfigMaps would stay in the process's RSS long after they are dropped)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


async def _trim(runtime: Runtime, every: float = 30.0) -> None:
    """Now and then, while nothing is being reconciled: release_memory()."""
    while True:
        await asyncio.sleep(every)
        if runtime.queue is not None and runtime.queue.oldest_wait() == 0:
            release_memory()


async def _watch_clusterwide(runtime: Runtime) -> bool:
    """Whether to watch cluster-wide, filtered to the namespaces: for more than one namespace
    (a pattern counts as many) when allowed to list and watch every kind cluster-wide."""
    options = runtime.options
    if options.watch_scope == "namespaces":
        return False
    several = len(options.namespaces) > 1 or any(_pattern(n) for n in options.namespaces)
    if options.watch_scope == "auto" and not several:
        return False
    assert runtime.kube is not None
    kinds = [
        (GROUP, "pulps"),
        *((GROUP, plural) for plural, _ in RUN_KINDS),
        ("", "pods"),
        *((w.group, w.plural) for w in WATCHES),
    ]
    allowed = all(
        await asyncio.gather(
            *(runtime.kube.may(verb, group, plural) for group, plural in kinds
              for verb in ("list", "watch"))
        )
    )  # fmt: skip
    if not allowed and options.watch_scope == "cluster":
        raise RuntimeError("--watch-scope cluster: not allowed to list and watch cluster-wide")
    log.info(
        "watching %s", "cluster-wide, filtered to the namespaces" if allowed else "per namespace"
    )
    return allowed


def run(options: RunOptions) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per API request otherwise
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kopf says "Handler ... succeeded." for every event of every object
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
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
