"""Shared pieces of the end-to-end tests: polling and the Pulp CRs they deploy."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from lightkube import Client
from lightkube.resources.core_v1 import ConfigMap, ServiceAccount

from pulp_operator.kube import PulpResource

from ..support import as_dict as as_dict

REPO = Path(__file__).resolve().parents[2]

#: Figures the tests measure (durations, sizes, counts), printed at the end of the session
#: (conftest.pytest_terminal_summary) so that every run's output carries them.
FIGURES: dict[str, Any] = {}

IMAGES = Path(os.environ.get("PULP_OPERATOR_IMAGES", Path.home() / ".cache/pulp-operator/images"))
PULP_TAG = "3.123.1"
PULP_ARCHIVES = (
    f"pulp-minimal-{PULP_TAG}.oci.tar",
    f"pulp-web-{PULP_TAG}.oci.tar",
    "postgres-15.oci.tar",
    "redis-7.oci.tar",
)


def wait(what: str, ok: Callable[[], Any], timeout: float = 300.0, every: float = 2.0) -> Any:
    """Poll `ok` until it returns something true; errors count as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = ok()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def pulp_manifests(
    name: str,
    namespace: str,
    nodeport: int,
    tag: str = PULP_TAG,
    settings: bool = True,
    *,
    origin_host: str = "127.0.0.1",
    spec_update: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A small Pulp: managed PostgreSQL and Redis, PVC storage, pulp-web on a NodePort, and
    (with `settings`) a custom settings ConfigMap making CONTENT_ORIGIN the NodePort on
    `origin_host` (the node's address when pods must reach it too: the container token server
    follows CONTENT_ORIGIN). `spec_update` adds or replaces spec fields."""
    spec: dict[str, Any] = {
        "image_version": tag,
        "image_web_version": tag,
        "database": {"postgres_storage_requirements": "1Gi"},
        "cache": {"enabled": True, "redis_image": "redis:7"},
        "file_storage_storage_class": "standard",
        "file_storage_size": "2Gi",
        "file_storage_access_mode": "ReadWriteOnce",
        "ingress_type": "nodeport",
        "nodeport_port": nodeport,
        "api": {"gunicorn_workers": 1},
        "content": {"gunicorn_workers": 1},
        "web": {"replicas": 1},
        **(spec_update or {}),
    }
    docs: list[dict[str, Any]] = []
    if settings:
        spec["custom_pulp_settings"] = f"{name}-settings"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-settings", "namespace": namespace},
                "data": {
                    "content_origin": f'"http://{origin_host}:{nodeport}"',
                    "analytics": "False",
                },
            }
        )
    docs.append(
        {
            "apiVersion": "repo-manager.pulpproject.org/v1",
            "kind": "Pulp",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    return docs


def deploy_pulp(client: Client, name: str, namespace: str, nodeport: int, **options: Any) -> None:
    """Create the Pulp of `pulp_manifests` (with `options`) once the namespace can run pods."""
    wait(
        f"default ServiceAccount in {namespace}",
        lambda: client.get(ServiceAccount, "default", namespace=namespace),
        60,
        0.5,
    )
    for doc in pulp_manifests(name, namespace, nodeport, **options):
        if doc["kind"] == "Pulp":
            client.create(PulpResource.from_dict(doc))
        else:
            client.create(cast(ConfigMap, ConfigMap.from_dict(doc)))


def run_pulp_cli(
    base_url: str, username: str, password: str, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """pulp-cli of the project's venv against `base_url`, JSON output, its config and cache
    under `home`; the result as it came."""
    return subprocess.run(
        [str(REPO / ".venv/bin/pulp"), "--base-url", base_url, "--username", username,
         "--password", password, "--format", "json", *args],
        env={**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "c")},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def pulp_cli(base_url: str, password: str, home: Path, *args: str) -> Any:
    """pulp-cli as admin; its JSON output parsed (None for none); a failure fails the test."""
    out = run_pulp_cli(base_url, "admin", password, home, *args)
    assert out.returncode == 0, f"pulp {' '.join(args)}: {out.stderr}{out.stdout}"
    return json.loads(out.stdout) if out.stdout.strip() else None
