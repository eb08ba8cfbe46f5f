"""Fixtures the API-server and cluster tier modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pulp_devcluster import ClusterInfo
from pulp_operator.kube import Kube

from .pulps import kube_for


@pytest.fixture
async def kube(apiserver: ClusterInfo) -> AsyncIterator[Kube]:
    client = kube_for(apiserver)
    try:
        yield client
    finally:
        await client.close()
