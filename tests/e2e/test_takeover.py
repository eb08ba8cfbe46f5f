"""A Pulp deployed as the upstream Go operator deploys it, taken over by this operator on the
real node: nothing is recreated, the content and the admin password stay.

The upstream state (tests/e2e/upstream.py: its names, labels, immutable fields, Secrets with its
keys, settings.py with the secrets inside, ownerReferences, the status it writes) runs without any
operator; content is uploaded with pulp-cli; then this operator starts for the namespace.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Secret
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import PulpResource, resource_class

from . import upstream
from .common import PULP_TAG, as_dict, pulp_cli, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

NAME = "legacy"
NAMESPACE = "upgrade-takeover"
NODEPORT = 30251
CUSTOM = {"content_origin": f'"http://127.0.0.1:{NODEPORT}"', "analytics": "False"}


@dataclass
class Env:
    client: Client
    home: Path
    base_url: str = f"http://127.0.0.1:{NODEPORT}"
    files: dict[str, bytes] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)

    def secret(self, name: str, key: str) -> str:
        obj = self.client.get(Secret, name, namespace=NAMESPACE)
        assert obj.data is not None
        return base64.b64decode(obj.data[key]).decode()

    def pulp(self, *args: str) -> Any:
        password = self.secret(f"{NAME}-admin-password", "password")
        return pulp_cli(self.base_url, password, self.home, *args)

    def cr(self) -> dict[str, Any]:
        return as_dict(self.client.get(PulpResource, NAME, namespace=NAMESPACE))

    def ready(self) -> bool:
        conds = (self.cr().get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def claim_uids(self) -> dict[str, str]:
        out = {}
        for claim in (f"{NAME}-postgres-{NAME}-database-0", f"{NAME}-file-storage",
                      f"{NAME}-redis-data"):  # fmt: skip
            obj = self.client.get(PersistentVolumeClaim, claim, namespace=NAMESPACE)
            assert obj.metadata is not None
            out[claim] = str(obj.metadata.uid)
        sts = self.client.get(StatefulSet, f"{NAME}-database", namespace=NAMESPACE)
        assert sts.metadata is not None
        out["StatefulSet"] = str(sts.metadata.uid)
        return out


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        data: bytes = r.read()
        return data


def status(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/pulp/api/v3/status/", timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def job_done(client: Client, prefix: str) -> bool:
    for job in client.list(Job, namespace=NAMESPACE):
        if job.metadata is None or not (job.metadata.name or "").startswith(prefix):
            continue
        if job.status and any(
            c.type == "Failed" and c.status == "True" for c in job.status.conditions or []
        ):
            raise AssertionError(f"upstream Job {job.metadata.name} failed")
        return bool(job.status and job.status.succeeded)
    return False


def create(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    obj = client.create(resource_class(body).from_dict(body))  # type: ignore[attr-defined]
    return as_dict(obj)


@pytest.fixture(scope="module")
def env(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    client = real_node.client
    real_node.namespace(NAMESPACE)
    env = Env(client, tmp_path_factory.mktemp("pulp-cli"))
    try:
        started = time.monotonic()
        client.create(
            cast(ConfigMap, ConfigMap.from_dict(
                {"metadata": {"name": f"{NAME}-settings", "namespace": NAMESPACE},
                 "data": CUSTOM})),
        )  # fmt: skip
        cr = upstream.pulp_cr(NAME, NAMESPACE, tag=PULP_TAG, nodeport=NODEPORT,
                              settings=f"{NAME}-settings")  # fmt: skip
        pulp = create(client, cr)
        client.patch(
            PulpResource.Status,
            NAME,
            {"status": upstream.pulp_status(NAME, PULP_TAG)},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
        )
        for body in upstream.objects(pulp, tag=PULP_TAG, nodeport=NODEPORT, custom=CUSTOM):
            create(client, body)
        for body in upstream.jobs(pulp, PULP_TAG):
            create(client, body)
        wait("upstream's migrations", lambda: job_done(client, f"{NAME}-pulpcore-migration-"), 600)
        wait("upstream's admin password", lambda: job_done(client, f"{NAME}-reset-"), 300)
        wait(
            "the upstream-deployed Pulp serving",
            lambda: (s := status(env.base_url))["online_workers"] and s["online_content_apps"],
            timeout=600,
        )
        print(f"\nupstream-style Pulp serving after {time.monotonic() - started:.0f}s")
        payload = secrets.token_bytes(250_000)
        path = env.home / "before.bin"
        path.write_bytes(payload)
        env.pulp("file", "repository", "create", "--name", "before")
        env.pulp("file", "content", "upload", "--file", str(path), "--relative-path", "before.bin",
                 "--repository", "file:file:before")  # fmt: skip
        publication = env.pulp("file", "publication", "create", "--repository", "before")
        env.pulp("file", "distribution", "create", "--name", "before", "--base-path", "before",
                 "--publication", publication["pulp_href"])  # fmt: skip
        env.files["before/before.bin"] = payload
        assert download(f"{env.base_url}/pulp/content/before/before.bin") == payload
        env.uids = env.claim_uids()
        yield env
    finally:
        real_node.delete_namespaces(NAMESPACE)


def test_switch_to_this_operator_keeps_everything(real_node: RealNode, env: Env) -> None:
    password = env.secret(f"{NAME}-admin-password", "password")
    db_password = env.secret(f"{NAME}-postgres-configuration", "password")
    started = time.monotonic()
    with real_node.operator([NAMESPACE], log_name="test_takeover"):
        wait("the taken-over Pulp Ready", env.ready, timeout=900, every=3)
        print(f"\ntaken over, Ready after {time.monotonic() - started:.0f}s")
        # nothing recreated: the database StatefulSet and every claim are the same objects
        assert env.claim_uids() == env.uids
        sts = env.client.get(StatefulSet, f"{NAME}-database", namespace=NAMESPACE)
        assert sts.spec is not None
        templates = sts.spec.volumeClaimTemplates or []
        assert [t.metadata.name for t in templates if t.metadata] == [f"{NAME}-postgres"]
        assert not sts.spec.serviceName
        # the same content, bytes and all, and the same admin password
        for path, data in env.files.items():
            assert download(f"{env.base_url}/pulp/content/{path}") == data, path
        assert env.secret(f"{NAME}-admin-password", "password") == password
        assert {r["name"] for r in env.pulp("file", "repository", "list")} == {"before"}
        # secrets by reference now: settings.py does not hold the database password any more
        assert db_password not in env.secret(names.server_settings(NAME), "settings.py")
        # and the Pulp works on: new content goes in and comes out
        payload = secrets.token_bytes(10_000)
        after = env.home / "after.bin"
        after.write_bytes(payload)
        env.pulp("file", "content", "upload", "--file", str(after), "--relative-path", "after.bin",
                 "--repository", "file:file:before")  # fmt: skip
        publication = env.pulp("file", "publication", "create", "--repository", "before")
        env.pulp("file", "distribution", "update", "--name", "before",
                 "--publication", publication["pulp_href"])  # fmt: skip
        assert download(f"{env.base_url}/pulp/content/before/after.bin") == payload
        # kept data is unowned: deleting the Pulp would keep it
        for claim in (f"{NAME}-file-storage", f"{NAME}-redis-data"):
            obj = env.client.get(PersistentVolumeClaim, claim, namespace=NAMESPACE)
            assert obj.metadata is not None
            assert not obj.metadata.ownerReferences, claim
        try:
            env.client.get(Secret, names.postgres_configuration(NAME), namespace=NAMESPACE)
        except ApiError as exc:  # pragma: no cover - reported plainly
            raise AssertionError("the database credentials are gone") from exc
