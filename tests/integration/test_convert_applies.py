"""What `pulp-operator convert` prints applies as printed and the operator reconciles it (against
a real kube-apiserver)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import yaml
from lightkube.resources.apps_v1 import Deployment

from pulp_operator import names
from pulp_operator.kube import Kube
from pulp_operator.reconciler import Reconciler

from ..unit.test_convert import V1ALPHA1_FULL, V1BETA1_FULL
from .pulps import SAMPLES, condition, create_all, get_pulp

pytestmark = pytest.mark.apiserver

INPUTS = {
    **{p.name: p.read_text() for p in sorted((SAMPLES / "ansible-era").glob("*.yaml"))},
    "v1alpha1-full": V1ALPHA1_FULL,
    "v1beta1-full": V1BETA1_FULL,
}


@pytest.mark.parametrize("source", sorted(INPUTS))
async def test_converted_crs_apply_and_reconcile(
    kube: Kube, api_namespace: str, source: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pulp_operator.cli", "convert", "-f", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(INPUTS[source].encode())
    assert proc.returncode == 0, err
    printed = out.decode()
    docs = [d for d in yaml.safe_load_all(printed) if d]
    # as printed: the API server accepts every object (the CRD's schema and CEL rules included)
    (name,) = await create_all(kube, api_namespace, docs)
    outcome = await Reconciler(kube).reconcile(api_namespace, name)
    assert not outcome.problems, outcome.problems
    assert await kube.get(Deployment, names.api(name), api_namespace) is not None
    pulp = await get_pulp(kube, api_namespace, name)
    assert condition(pulp, "Ready")["reason"] not in ("InvalidSpec", "ApplyFailed")
    expected = next(d for d in docs if d["kind"] == "Pulp")["spec"]
    content = await kube.get(Deployment, names.content(name), api_namespace)
    assert content is not None
    assert content["spec"]["replicas"] == expected["content"]["replicas"]
