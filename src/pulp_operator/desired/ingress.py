"""Ingress N (ingress_type ingress) or Route N (ingress_type route, OpenShift).

An Ingress of class nginx with is_nginx_ingress routes to api and content itself (no pulp-web):
the content path, the API root, each plugin's routes (plugins.py) and / to the API. Any other
Ingress and the Route send everything to pulp-web, which has the plugins' snippets.
"""

from __future__ import annotations

from typing import Any

from .. import names
from .common import API_PORT, CONTENT_PORT, WEB_PORT, meta
from .context import Ctx
from .inputs import Manifest
from .plugins import plugin_routes

COMPONENT = "ingress"
NGINX = "nginx.ingress.kubernetes.io/"


def _seconds(value: str) -> str:
    """nginx-ingress wants timeouts as plain seconds: 120s -> 120."""
    return value[:-1] if value.endswith("s") and value[:-1].isdigit() else value


def _backend(service: str, port: int) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"number": port}}}


def _path(path: str, service: str, port: int) -> dict[str, Any]:
    return {"path": path, "pathType": "Prefix", "backend": _backend(service, port)}


def ingress_objects(ctx: Ctx) -> list[Manifest]:
    kind = ctx.spec.ingress_kind
    if kind == "ingress":
        return [_ingress(ctx)]
    if kind == "route":
        if not ctx.inputs.cluster.has_routes:
            ctx.problems.add(
                "spec.ingress_type",
                "platform",
                "RouteUnsupported",
                f"spec.ingress_type is route but the cluster has no route.openshift.io API"
                f" (Pulp {ctx.namespace}/{ctx.name}); use ingress, nodeport or loadbalancer",
            )
            return []
        return [_route(ctx)]
    return []


def _ingress(ctx: Ctx) -> Manifest:
    spec = ctx.spec
    annotations = dict(spec.ingress_annotations or {})
    if spec.is_nginx_ingress:
        api = (names.api_service(ctx.name), API_PORT)
        content = (names.content_service(ctx.name), CONTENT_PORT)
        targets = [(ctx.content_path, content), (f"{ctx.api_root}api/v3/", api)]
        targets += [(r.path, api if r.target == "api" else content) for r in plugin_routes(ctx)]
        targets.append(("/", api))
        seen: set[str] = set()
        paths = []
        for path, (svc, port) in targets:
            if path not in seen:
                seen.add(path)
                paths.append(_path(path, svc, port))
        defaults = {
            f"{NGINX}proxy-body-size": spec.nginx_proxy_body_size,
            f"{NGINX}proxy-read-timeout": _seconds(spec.nginx_proxy_read_timeout),
            f"{NGINX}proxy-connect-timeout": _seconds(spec.nginx_proxy_connect_timeout),
            f"{NGINX}proxy-send-timeout": _seconds(spec.nginx_proxy_send_timeout),
        }
        annotations = {**defaults, **annotations}
    else:
        paths = [_path("/", names.web_service(ctx.name), WEB_PORT)]
    obj = meta(
        "Ingress",
        "networking.k8s.io/v1",
        names.ingress(ctx.name),
        ctx.namespace,
        names.labels(ctx.name, COMPONENT),
        annotations,
    )
    body: dict[str, Any] = {}
    if spec.ingress_class_name:
        body["ingressClassName"] = spec.ingress_class_name
    rule: dict[str, Any] = {"http": {"paths": paths}}
    if spec.ingress_host:
        rule = {"host": spec.ingress_host, **rule}
    body["rules"] = [rule]
    if spec.ingress_tls_secret:
        tls: dict[str, Any] = {"secretName": spec.ingress_tls_secret}
        if spec.ingress_host:
            tls = {"hosts": [spec.ingress_host], **tls}
        body["tls"] = [tls]
    obj["spec"] = body
    return obj


def _route(ctx: Ctx) -> Manifest:
    spec = ctx.spec
    annotations = {
        "haproxy.router.openshift.io/timeout": spec.haproxy_timeout,
        **(spec.route_annotations or {}),
    }
    labels = {
        **dict(sorted((spec.route_labels or {}).items())),
        **names.labels(ctx.name, COMPONENT),
    }
    obj = meta(
        "Route",
        "route.openshift.io/v1",
        names.ingress(ctx.name),
        ctx.namespace,
        labels,
        annotations,
    )
    termination = (
        "passthrough"
        if spec.web is not None and spec.web.tls_termination_mechanism.lower() == "passthrough"
        else "edge"
    )
    tls: dict[str, Any] = {"termination": termination, "insecureEdgeTerminationPolicy": "Redirect"}
    if spec.route_tls_secret:
        # The router reads the certificate from the Secret: no key material in the Route.
        tls["externalCertificate"] = {"name": spec.route_tls_secret}
    body: dict[str, Any] = {}
    if spec.route_host:
        body["host"] = spec.route_host
    body["path"] = "/"
    body["port"] = {"targetPort": "web-8080"}
    body["tls"] = tls
    body["to"] = {"kind": "Service", "name": names.web_service(ctx.name), "weight": 100}
    body["wildcardPolicy"] = "None"
    obj["spec"] = body
    return obj
