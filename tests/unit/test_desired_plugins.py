"""Plugin endpoints: Ingress paths, pulp-web's snippets, the settings container and Galaxy
clients follow."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pulp_operator import desired
from pulp_operator.desired.plugins import PLUGIN_ROUTES, galaxy_api_prefix

from .desired_samples import find, inputs
from .test_desired_build import N, settings_of

NGINX_INGRESS = {
    "ingress_type": "ingress",
    "ingress_host": "pulp.example.com",
    "ingress_class_name": "nginx",
    "is_nginx_ingress": True,
    "nodeport_port": None,
}


def ingress_paths(built: desired.Desired) -> dict[str, str]:
    (rule,) = find(built.objects, "Ingress", N)["spec"]["rules"]
    return {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}


def with_settings(base: desired.Inputs, **settings: str) -> desired.Inputs:
    config_maps = dict(base.config_maps)
    config_maps["settings"] = {**config_maps["settings"], **settings}
    return replace(base, config_maps=config_maps)


def test_every_plugin_route_reaches_its_service() -> None:
    paths = ingress_paths(desired.build(inputs("simple.yaml", spec_update=NGINX_INGRESS)))
    for route in PLUGIN_ROUTES:
        assert paths[route.path] == f"{N}-{route.target}-svc", route


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ('"pulp_ansible/galaxy/<path:path>/api/"', None),  # the default: already routed
        ('"api/galaxy/"', "/api/galaxy/"),
        ('"/galaxy/<str:base>/api/"', "/galaxy/"),
        ('"galaxy<path:path>/"', None),  # nothing fixed but a partial segment
    ],
)
def test_custom_galaxy_api_root_is_routed(value: str, prefix: str | None) -> None:
    base = inputs("simple.yaml", spec_update=NGINX_INGRESS)
    built = desired.build(with_settings(base, galaxy_api_root=value))
    paths = ingress_paths(built)
    assert not built.problems
    expected = {r.path for r in PLUGIN_ROUTES} | {"/pulp/content/", "/pulp/api/v3/", "/"}
    if prefix:
        assert paths[prefix] == f"{N}-api-svc"
        expected.add(prefix)
    assert set(paths) == expected


def test_galaxy_api_root_that_is_no_path_is_a_problem() -> None:
    base = inputs("simple.yaml", spec_update=NGINX_INGRESS)
    built = desired.build(with_settings(base, galaxy_api_root='"a b/<path:p>/"'))
    assert [p.reason for p in built.problems] == ["InvalidSetting"]
    assert "GALAXY_API_ROOT" in built.problems[0].message
    assert "spec.custom_pulp_settings" in built.problems[0].message
    assert "/a b/" not in ingress_paths(built)


def test_galaxy_api_prefix() -> None:
    assert galaxy_api_prefix("pulp_ansible/galaxy/<path:path>/api/") == "/pulp_ansible/galaxy/"
    assert galaxy_api_prefix("<path:path>/api/") is None
    assert galaxy_api_prefix(42) is None


def test_pulp_web_includes_the_plugin_snippets() -> None:
    built = desired.build(inputs("simple.yaml"))
    conf = find(built.objects, "ConfigMap", f"{N}-configmap")["data"]["nginx.conf"]
    server = conf[conf.index("server {") :]
    # inside the server block, before the catch-all that sends the rest to the API
    assert server.index("include /opt/app-root/etc/nginx.default.d/*.conf;") < server.index(
        "location / {"
    )


def _settings(**spec: Any) -> dict[str, Any]:
    base = inputs("simple.yaml", spec_update=spec)
    config_maps = dict(base.config_maps)
    data = dict(config_maps["settings"])
    data.pop("token_server")
    data.pop("ansible_api_hostname")
    config_maps["settings"] = data
    return settings_of(desired.build(replace(base, config_maps=config_maps)))


def test_container_token_server_and_galaxy_follow_a_custom_content_origin() -> None:
    settings = _settings()
    assert settings["CONTENT_ORIGIN"] == "http://nodeport.local:30000"
    assert settings["TOKEN_SERVER"] == "http://nodeport.local:30000/token/"
    assert settings["ANSIBLE_API_HOSTNAME"] == "http://nodeport.local:30000"


def test_user_token_server_wins() -> None:
    built = desired.build(inputs("simple.yaml"))
    assert settings_of(built)["TOKEN_SERVER"] == "http://nodeport.local:30000/token/"
    base = inputs("simple.yaml")
    built = desired.build(with_settings(base, token_server='"https://registry.example/token/"'))
    assert settings_of(built)["TOKEN_SERVER"] == "https://registry.example/token/"
