"""The HTTP routes of the Pulp plugins, for the Ingress that routes to api and content itself.

pulp-web needs no list: its nginx.conf includes the plugins' own nginx snippets shipped in the
pulp-web image (`/opt/app-root/etc/nginx.default.d/*.conf`) and sends everything else to the API.
An nginx Ingress (`is_nginx_ingress`) replaces pulp-web, so it must carry each plugin's locations
itself, to the right Service. The upstream operator learns them by `kubectl exec` of
`/usr/bin/route_paths.py` in a running pod on every pass; these builders are pure, so the routes
are the ones the plugins of the published pulp-minimal image declare in their
`webserver_snippets/nginx.conf` (tests/e2e/test_plugin_routes.py checks this list against what
route_paths.py prints in the image built from those plugins), plus the Galaxy API root when a
custom GALAXY_API_ROOT moves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .context import Ctx

Target = Literal["api", "content"]
_PATH = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+/)+")


@dataclass(frozen=True)
class Route:
    plugin: str
    path: str
    target: Target


# From the snippets of pulp_ansible 0.30, pulp_container 2.30 and pulp_python 3.36 (pulp_rpm,
# pulp_deb, pulp_file and pulp_certguard ship none: they serve under the API root and the
# content path).
PLUGIN_ROUTES: tuple[Route, ...] = (
    Route("ansible", "/pulp_ansible/galaxy/", "api"),
    Route("container", "/v2/", "api"),
    Route("container", "/extensions/v2/", "api"),
    Route("container", "/pulp/container/", "content"),
    Route("container", "/token/", "api"),
    Route("python", "/pypi/", "api"),
)


def galaxy_api_prefix(value: object) -> str | None:
    """The fixed start of a GALAXY_API_ROOT (a Django URL pattern such as
    'pulp_ansible/galaxy/<path:path>/api/'), whole path segments only: the path every Galaxy
    API URL starts with; None when nothing before the first converter is fixed."""
    if not isinstance(value, str):
        return None
    fixed, converter, _ = value.partition("<")
    if converter and not fixed.endswith("/"):
        fixed = fixed.rsplit("/", 1)[0] if "/" in fixed else ""
    fixed = fixed.strip("/")
    return f"/{fixed}/" if fixed else None


def plugin_routes(ctx: Ctx) -> list[Route]:
    """The plugin routes of this Pulp, each path once."""
    routes = list(PLUGIN_ROUTES)
    galaxy = galaxy_api_prefix(ctx.custom.values.get("GALAXY_API_ROOT"))
    if galaxy and not _PATH.fullmatch(galaxy):
        ctx.problems.add(
            "spec.custom_pulp_settings[galaxy_api_root]",
            "setting",
            "InvalidSetting",
            f"custom setting GALAXY_API_ROOT of ConfigMap {ctx.spec.custom_pulp_settings}"
            f" (spec.custom_pulp_settings): {galaxy} is not a URL path the Ingress can route",
        )
    elif galaxy:
        routes.append(Route("ansible", galaxy, "api"))
    seen: set[str] = set()
    unique = []
    for route in routes:
        if route.path not in seen:
            seen.add(route.path)
            unique.append(route)
    return unique
