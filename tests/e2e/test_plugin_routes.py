"""The operator's routes against what the plugins in the built images declare (no node needed).

hack/images/build.sh runs the image's /usr/bin/route_paths.py (the plugin routes from the
installed plugins' nginx snippets, as the upstream operator reads them from a running pod) at
build time and keeps its output beside the archive (pulp-minimal-<tag>.oci.tar.routes.json).
The Ingress the operator renders for an nginx Ingress (no pulp-web) must send every one of them
to the same Service and port; the pulp-web image must carry a snippet for each (its nginx.conf
includes them).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pulp_operator import desired
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired.inputs import Inputs

from .common import IMAGES, PULP_TAG

pytestmark = pytest.mark.e2e

ROUTES = IMAGES / f"pulp-minimal-{PULP_TAG}.oci.tar.routes.json"
WEB = IMAGES / f"pulp-web-{PULP_TAG}.oci.tar"
NAME = "example"  # the name build.sh gives route_paths.py


def captured_routes() -> list[dict[str, Any]]:
    if not ROUTES.is_file():
        pytest.fail(f"{ROUTES} missing: run `make images`", pytrace=False)
    routes: list[dict[str, Any]] = json.loads(ROUTES.read_text())
    return routes


def nginx_ingress_paths() -> dict[str, tuple[str, int]]:
    spec = PulpSpec.model_validate(
        {
            "ingress_type": "ingress",
            "ingress_class_name": "nginx",
            "is_nginx_ingress": True,
            "ingress_host": "pulp.example.com",
            "image_version": PULP_TAG,
            "file_storage_storage_class": "standard",
        }
    )
    built = desired.build(Inputs(name=NAME, namespace="ns", spec=spec, secrets={}, config_maps={}))
    (ingress,) = [o for o in built.objects if o["kind"] == "Ingress"]
    (rule,) = ingress["spec"]["rules"]
    return {
        p["path"]: (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    }


def test_the_image_declares_the_plugin_routes() -> None:
    routes = captured_routes()
    # the image carries the published image's plugins: a pulpcore-only image declares none
    assert {r["name"].split("-")[1] for r in routes} >= {"ansible", "container", "python"}


def test_nginx_ingress_routes_every_declared_route() -> None:
    paths = nginx_ingress_paths()
    for route in captured_routes():
        port = int(route["targetPort"].rsplit("-", 1)[1])
        assert paths.get(route["path"]) == (route["serviceName"], port), route


def web_snippets() -> dict[str, str]:
    """The plugin snippets in the pulp-web archive (its single layer)."""
    if not WEB.is_file():
        pytest.fail(f"{WEB} missing: run `make images`", pytrace=False)
    with tarfile.open(WEB) as oci:

        def blob(digest: str) -> bytes:
            member = oci.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
            assert member is not None
            return member.read()

        index = json.loads(oci.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        found: dict[str, str] = {}
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as t:
                for m in t.getmembers():
                    name = m.name.removeprefix("./")
                    if re.fullmatch(r"opt/app-root/etc/nginx\.default\.d/[^/]+\.conf", name):
                        data = t.extractfile(m)
                        assert data is not None
                        found[Path(name).name] = data.read().decode()
    return found


def test_pulp_web_has_a_snippet_for_every_declared_route() -> None:
    snippets = web_snippets()
    locations = {
        path: file
        for file, text in snippets.items()
        for path in re.findall(r"^\s*location\s+(\S+)\s*\{", text, re.M)
    }
    for route in captured_routes():
        assert route["path"] in locations, (route, sorted(snippets))
