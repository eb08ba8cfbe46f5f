"""API helpers (lightkube): a proxy-free client and CRD installation."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client, KubeConfig, codecs
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from pulp_devcluster.errors import DevClusterError

log = logging.getLogger("pulp_devcluster")

FIELD_MANAGER = "pulp-operator-devcluster"


def make_client(kubeconfig: Path, field_manager: str = FIELD_MANAGER) -> Client:
    """A synchronous lightkube client for ``kubeconfig`` that ignores proxy settings."""
    return Client(
        config=KubeConfig.from_file(kubeconfig), field_manager=field_manager, trust_env=False
    )


def load_crd_documents(directory: Path) -> list[dict[str, Any]]:
    """CustomResourceDefinition documents of the *.yaml/*.yml files in ``directory``.

    A missing or empty directory gives an empty list; other kinds of documents (e.g. a
    kustomization.yaml) are skipped.
    """
    if not directory.is_dir():
        return []
    docs: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        with path.open() as fh:
            for doc in yaml.safe_load_all(fh):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
                elif doc:
                    log.debug("skipping a non-CRD document in %s", path)
    return docs


def install_crds(
    kubeconfig: Path,
    directory: Path,
    *,
    timeout: float = 60.0,
    field_manager: str = FIELD_MANAGER,
) -> list[str]:
    """Server-side apply the CRDs found in ``directory`` and wait until they are Established.

    Returns the names of the CRDs (empty when the directory is missing or holds none).
    """
    docs = load_crd_documents(directory)
    if not docs:
        log.info("no CRDs found in %s", directory)
        return []
    names: list[str] = []
    client = make_client(kubeconfig, field_manager)
    try:
        for doc in docs:
            obj = codecs.from_dict(doc)
            client.apply(obj, force=True)
            names.append(str(doc["metadata"]["name"]))

        def established(name: str) -> bool:
            crd = client.get(CustomResourceDefinition, name)
            conds = (crd.status.conditions if crd.status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conds)

        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pending = [n for n in pending if not established(n)]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise DevClusterError(f"CRDs not Established after {timeout:.0f}s: {pending}")
            time.sleep(0.1)
    finally:
        client.close()
    log.info("installed %d CRD(s) from %s: %s", len(names), directory, ", ".join(names))
    return names


def sanitize_name(text: str, max_len: int = 50) -> str:
    """A DNS-1123 label fragment made of ``text`` (lowercase, [a-z0-9-])."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:max_len].rstrip("-") or "x"
