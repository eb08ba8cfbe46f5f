"""One real node per test session, shared by the end-to-end modules.

A real node (control plane of tier ``cluster`` without fake nodes, kubelet, containerd, runc,
kube-proxy, CoreDNS, hostPath provisioner) takes a minute to start and is a machine-wide
resource, so the modules share it: the ``real_node`` fixture starts it once, at first use, with
every image archive of the image cache imported and the CRDs installed. Each module works in
namespaces of its own (``RealNode.namespace``), runs its own operator process for them
(``RealNode.operator``) and deletes its namespaces when it is done.

``test_node.py`` checks the node itself (including its stop) with a node of its own: its tests
run first, before the shared node starts. The modules run in ``budget.MODULE_ORDER``; under a
deadline (``budget.DEADLINE_ENV``) only the modules that still fit start (see budget.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from pulp_devcluster import ClusterInfo, ControlPlane, install_crds, make_client
from pulp_devcluster.node import (
    MACHINE_LOCK,
    Node,
    NodeInfo,
    acquire_machine_lock,
    check_node_prerequisites,
    release_machine_lock,
)

from .budget import NODE_START, Budget, order_key
from .common import FIGURES, IMAGES, PULP_ARCHIVES, REPO, wait

OWN_NODE_MODULES = ("test_node.py",)
BUDGET = Budget.from_environment()
#: Modules with a test that uses the shared node.
USES_NODE: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a node of their own first: the shared node holds the machine's node lock.

    The per-test timeout covers the test functions only, not their fixtures: starting a node
    waits for the machine's node lock while another process runs a node (which may take longer
    than a test may), and every step of a node's start has a timeout of its own."""
    items.sort(key=lambda item: (item.path.name not in OWN_NODE_MODULES, order_key(item.path.name)))
    USES_NODE.update(
        item.path.name for item in items if "real_node" in getattr(item, "fixturenames", ())
    )
    here = Path(__file__).parent
    timeout = float(config.getini("timeout") or 0)
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout, func_only=True))


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    for item in items:
        BUDGET.unrepresentative(item.path.name)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A module with a failed or errored test: its duration is not kept (a setup that errors
    at once would otherwise be remembered as a module that takes no time)."""
    if report.failed:
        BUDGET.unrepresentative(Path(report.fspath).name)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip the tests of a module that does not fit in the tier's time budget (before any of its
    fixtures is set up)."""
    if Path(__file__).parent not in item.path.parents:
        return
    module = item.path.name
    reason = BUDGET.admit(module, uses_node=module in USES_NODE)
    if reason is not None:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Measure each module (setup, tests and teardown of its tests) without the shared node's
    start, which is measured on its own."""
    started = time.monotonic()
    node_before = BUDGET.measured.get(NODE_START, 0.0)
    try:
        return (yield)
    finally:
        module = item.path.name
        if module in BUDGET.started:
            node = BUDGET.measured.get(NODE_START, 0.0) - node_before
            BUDGET.add(module, time.monotonic() - started - node)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the end-to-end tests measured (common.FIGURES), one line each; the module
    durations and the modules the time budget left out."""
    if FIGURES:
        terminalreporter.section("figures measured by the end-to-end tests")
        for name, value in FIGURES.items():
            terminalreporter.line(f"{name}: {json.dumps(value, sort_keys=True)}")
    if BUDGET.measured:
        terminalreporter.section("real-node tier: durations")
        for name, seconds in BUDGET.measured.items():
            dropped = name in BUDGET.partial
            kept = " (not kept: not every test ran and passed)" if dropped else ""
            terminalreporter.line(f"{name}: {seconds / 60:.1f} min{kept}")
        BUDGET.save()
    if BUDGET.skipped:
        terminalreporter.section("real-node tier: modules not run (time budget)")
        for reason in BUDGET.skipped.values():
            terminalreporter.line(reason)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Hold the machine's node lock for the whole session, taken before the first test starts
    (waiting here while another process runs a node): nothing of another node run can start
    between this session's nodes or show up in its checks of what a stopped node left."""
    here = Path(__file__).parent
    if session.config.option.collectonly or not any(here in i.path.parents for i in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    acquire_machine_lock()
    session.config.add_cleanup(release_machine_lock)
    if reporter is not None:
        waited = time.monotonic() - started
        reporter.write_line(f"e2e: holding the node lock {MACHINE_LOCK} (waited {waited:.0f}s)")


@dataclass
class RealNode:
    cluster: ClusterInfo
    node: NodeInfo
    client: Client
    logs: Path
    _namespaces: list[str] = field(default_factory=list)

    def namespace(self, name: str) -> str:
        """Create a namespace (if missing) and wait until pods can run in it."""
        with contextlib.suppress(ApiError):
            self.client.create(Namespace(metadata=ObjectMeta(name=name)))
        self._namespaces.append(name)
        wait(
            f"default ServiceAccount in {name}",
            lambda: self.client.get(ServiceAccount, "default", namespace=name),
            60,
            0.5,
        )
        return name

    def delete_namespaces(self, *names: str, timeout: float = 180.0) -> None:
        """Delete namespaces and wait until they are gone (their pods stopped)."""
        for name in names:
            with contextlib.suppress(ApiError):
                self.client.delete(Namespace, name)
        deadline = time.monotonic() + timeout
        for name in names:
            while time.monotonic() < deadline:
                try:
                    self.client.get(Namespace, name)
                except ApiError:
                    break
                time.sleep(1)

    @contextlib.contextmanager
    def operator(
        self, namespaces: Sequence[str], *extra: str, log_name: str = "operator"
    ) -> Iterator[subprocess.Popen[bytes]]:
        """The operator as a process of this machine, watching `namespaces`."""
        log_path = self.logs / f"{log_name}.log"
        args = [str(REPO / ".venv/bin/pulp-operator"), "run"]
        for ns in namespaces:
            args += ["--namespace", ns]
        args += ["--health-address", "http://127.0.0.1:0/healthz", "--metrics-port", "0", *extra]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                args, env=self.cluster.env(), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def image_archives() -> list[Path]:
    """Every image archive of the image cache; the Pulp images are required."""
    required = [IMAGES / name for name in PULP_ARCHIVES]
    missing = [str(a) for a in required if not a.is_file()]
    if missing:
        pytest.fail(f"images missing: {missing}; run `make images`", pytrace=False)
    return sorted(IMAGES.glob("*.oci.tar"))


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    check_node_prerequisites()
    archives = image_archives()
    started = time.monotonic()
    plane = ControlPlane(tier="cluster", nodes=0, state_dir=tmp_path_factory.mktemp("real-cp"))
    info = plane.start()
    node = Node(
        info,
        state_dir=tmp_path_factory.mktemp("real-node"),
        images=archives,
        containerd_root=Path.home() / ".cache/pulp-operator/e2e-containerd",
    )
    client = make_client(info.kubeconfig, "pulp-operator-e2e")
    try:
        node_info = node.start()
        install_crds(info.kubeconfig, REPO / "config" / "crd")
        took = time.monotonic() - started
        BUDGET.node_started = True
        BUDGET.add(NODE_START, took)
        print(f"\nreal node ready {took:.0f}s after the start of the fixture")
        yield RealNode(info, node_info, client, tmp_path_factory.mktemp("real-logs"))
    finally:
        client.close()
        node.stop()
        plane.stop()
