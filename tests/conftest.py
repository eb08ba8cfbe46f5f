"""Fixtures for a real local control plane (see devcluster/src/pulp_devcluster).

Session fixtures (each starts its own control plane once per test session, installs the CRDs of
config/crd/ and returns a :class:`pulp_devcluster.ClusterInfo`):

* ``apiserver``: etcd + kube-apiserver (marker ``apiserver``), with an audit log of every
  request (``api_audit``, a :class:`pulp_devcluster.AuditLog`) and an extra cluster-admin
  ``AUDITED_USER`` (kubeconfig ``apiserver.kubeconfigs[AUDITED_USER]``) whose requests can be
  told from the tests' own (user ``admin``)
* ``cluster``: + kube-controller-manager, kube-scheduler, kwok, 2 fake nodes (marker ``cluster``)

Per test: ``api_namespace`` / ``cluster_namespace`` (a fresh namespace name, deleted afterwards)
and ``api_client`` / ``cluster_client`` (a ``lightkube.AsyncClient``).

Tests that use these fixtures get the matching marker, so ``-m "not cluster"`` deselects them.
Missing binaries make tests that use the fixtures or carry the markers fail (never skip) with a
message naming the binary, the directory searched and ``make testbin``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from pulp_devcluster import (
    AuditLog,
    ClusterInfo,
    ControlPlane,
    DevClusterError,
    MissingBinaryError,
    Tier,
    check_binaries,
    install_crds,
    make_client,
)
from pulp_devcluster.controlplane import sanitize_name

from .support import AUDITED_USER

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = REPO_ROOT / "config" / "crd"
TEST_FIELD_MANAGER = "pulp-operator-tests"
NAMESPACE_LABEL = "pulp-operator.test/namespace"
# Room for the Services of many Pulps in one session (a /24 holds ~50 Pulps' worth).
SERVICE_CIDR = "10.0.0.0/16"

_TIER_FIXTURES: dict[Tier, tuple[str, ...]] = {
    "apiserver": ("apiserver", "api_namespace", "api_client", "api_audit"),
    "cluster": ("cluster", "cluster_namespace", "cluster_client"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _TIER_FIXTURES.items():
            if used.intersection(fixtures) and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(autouse=True)
def _devcluster_binaries_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """A test marked ``apiserver``/``cluster`` fails (never skips) when the binaries are missing.

    It does not start the shared control plane unless it asks for one of the fixtures (tests
    that start their own ControlPlane carry the marker too).
    """
    for marker in _TIER_FIXTURES:
        if request.node.get_closest_marker(marker) is not None:
            error = None
            try:
                check_binaries(marker)
            except MissingBinaryError as exc:
                error = str(exc)
            if error is not None:
                pytest.fail(error, pytrace=False)


def _run_tier(tier: Tier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    # The state dir lives under pytest's basetemp so that the logs of the last runs survive.
    state_dir = tmp_path_factory.mktemp(f"devcluster-{tier}")
    if tier == "apiserver":
        plane = ControlPlane(
            tier=tier,
            state_dir=state_dir,
            audit=True,
            users=(AUDITED_USER,),
            service_cidr=SERVICE_CIDR,
        )
    else:
        plane = ControlPlane(tier=tier, state_dir=state_dir, service_cidr=SERVICE_CIDR)
    error = None
    try:
        info = plane.start()
    except DevClusterError as exc:  # includes MissingBinaryError: fail, never skip
        error = str(exc)
    if error is not None:
        pytest.fail(f"could not start the devcluster {tier!r} tier: {error}", pytrace=False)
    try:
        try:
            install_crds(info.kubeconfig, CRD_DIR)
        except (DevClusterError, ApiError) as exc:
            error = f"could not install the CRDs of {CRD_DIR}: {exc}"
        if error is not None:
            pytest.fail(error, pytrace=False)
        yield info
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """etcd + kube-apiserver on loopback, with the CRDs of config/crd installed."""
    yield from _run_tier("apiserver", tmp_path_factory)


@pytest.fixture(scope="session")
def api_audit(apiserver: ClusterInfo) -> AuditLog:
    """The audit log of the ``apiserver`` tier: ``mark()`` before and after, then count."""
    return AuditLog.of(apiserver)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """The simulated cluster (controllers, scheduler, kwok nodes), CRDs installed."""
    yield from _run_tier("cluster", tmp_path_factory)


def _namespace(
    info: ClusterInfo, request: pytest.FixtureRequest, wait_for_service_account: bool
) -> Iterator[str]:
    name = f"t-{sanitize_name(request.node.name, 48)}-{secrets.token_hex(3)}"
    client = make_client(info.kubeconfig, TEST_FIELD_MANAGER)
    try:
        client.create(Namespace(metadata=ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"})))
        if wait_for_service_account:
            # Pods are rejected until the controller-manager created the default ServiceAccount.
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get(ServiceAccount, "default", namespace=name)
                    break
                except ApiError as exc:
                    if exc.status.code != 404 or time.monotonic() > deadline:
                        raise
                time.sleep(0.05)
        yield name
        try:
            client.delete(Namespace, name)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
    finally:
        client.close()


@pytest.fixture
def api_namespace(apiserver: ClusterInfo, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in the ``apiserver`` tier (deleted afterwards, without waiting)."""
    yield from _namespace(apiserver, request, wait_for_service_account=False)


@pytest.fixture
def cluster_namespace(cluster: ClusterInfo, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in the ``cluster`` tier whose default ServiceAccount exists."""
    yield from _namespace(cluster, request, wait_for_service_account=True)


def _async_client(info: ClusterInfo) -> AsyncClient:
    return AsyncClient(
        config=KubeConfig.from_file(info.kubeconfig),
        field_manager=TEST_FIELD_MANAGER,
        trust_env=False,
    )


@pytest.fixture
async def api_client(apiserver: ClusterInfo) -> AsyncIterator[AsyncClient]:
    """A ``lightkube.AsyncClient`` for the ``apiserver`` tier (field manager TEST_FIELD_MANAGER)."""
    client = _async_client(apiserver)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def cluster_client(cluster: ClusterInfo) -> AsyncIterator[AsyncClient]:
    """A ``lightkube.AsyncClient`` for the ``cluster`` tier (field manager: TEST_FIELD_MANAGER)."""
    client = _async_client(cluster)
    try:
        yield client
    finally:
        await client.close()
