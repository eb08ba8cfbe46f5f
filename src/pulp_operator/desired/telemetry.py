"""Telemetry: an OpenTelemetry collector sidecar in the api pods, its ConfigMap and Service.

pulpcore (OTEL_ENABLED) sends its metrics (api.request_duration, ...) over OTLP to the sidecar on
localhost; the sidecar's Prometheus exporter serves them on port 8889 behind the Service
<name>-otel-collector-svc, as the upstream operator deploys it.
"""

from __future__ import annotations

import json
from typing import Any

from .. import names
from .common import container_security_context, env_value, meta, resources
from .context import Ctx
from .inputs import Manifest
from .workload import service

CONFIG_KEY = "otel-collector-config.yaml"
CONFIG_DIR = "/etc/otelcol-contrib"
METRICS_PORT = 8889
OTLP_HTTP_PORT = 4318
OTLP_GRPC_PORT = 4317
_DEFAULT_REQUESTS = {"requests": {"cpu": "50m", "memory": "128Mi"}}


def enabled(ctx: Ctx) -> bool:
    return ctx.spec.telemetry is not None and ctx.spec.telemetry.enabled


def collector_config() -> str:
    """The collector's configuration (JSON, which YAML readers take as is): OTLP in on localhost
    (the api container of the same pod), Prometheus out on all addresses."""
    config: dict[str, Any] = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "http": {"endpoint": f"localhost:{OTLP_HTTP_PORT}"},
                    "grpc": {"endpoint": f"localhost:{OTLP_GRPC_PORT}"},
                }
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 80},
            "batch": {},
        },
        "exporters": {
            "prometheus": {"endpoint": f"0.0.0.0:{METRICS_PORT}", "namespace": "pulp"},
        },
        "service": {
            "pipelines": {
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["prometheus"],
                }
            }
        },
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def api_env(ctx: Ctx) -> list[dict[str, Any]]:
    """Environment of the api container that turns pulpcore's metrics on."""
    telemetry = ctx.spec.telemetry
    if telemetry is None or not telemetry.enabled:
        return []
    return api_env_values(telemetry.exporter_otlp_protocol)


def api_env_values(protocol: str) -> list[dict[str, Any]]:
    port = OTLP_GRPC_PORT if protocol == "grpc" else OTLP_HTTP_PORT
    return [
        env_value("PULP_OTEL_ENABLED", "true"),
        env_value("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        env_value("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://localhost:{port}"),
        env_value("OTEL_SERVICE_NAME", "pulp-api"),
    ]


def sidecar(ctx: Ctx) -> dict[str, Any]:
    telemetry = ctx.spec.telemetry
    assert telemetry is not None
    return {
        "name": "otel-collector-sidecar",
        "image": f"{telemetry.otel_collector_image}:{telemetry.otel_collector_image_version}",
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "args": ["--config", f"file:{CONFIG_DIR}/{CONFIG_KEY}"],
        "ports": [{"name": "otel-metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": resources(telemetry.resource_requirements) or _DEFAULT_REQUESTS,
        "volumeMounts": [
            {
                "name": "otel-collector-config",
                "mountPath": f"{CONFIG_DIR}/{CONFIG_KEY}",
                "subPath": CONFIG_KEY,
                "readOnly": True,
            }
        ],
        "securityContext": container_security_context(),
    }


def sidecar_volume(ctx: Ctx) -> dict[str, Any]:
    return {
        "name": "otel-collector-config",
        "configMap": {
            "name": names.otel_collector_config(ctx.name),
            "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
        },
    }


def telemetry_objects(ctx: Ctx) -> list[Manifest]:
    if not enabled(ctx):
        return []
    config = meta(
        "ConfigMap",
        "v1",
        names.otel_collector_config(ctx.name),
        ctx.namespace,
        names.labels(ctx.name, "api"),
    )
    config["data"] = {CONFIG_KEY: collector_config()}
    svc = service(
        ctx,
        "api",
        names.otel_collector_service(ctx.name),
        [
            {
                "name": f"otel-{METRICS_PORT}",
                "port": METRICS_PORT,
                "protocol": "TCP",
                "targetPort": METRICS_PORT,
            }
        ],
    )
    return [config, svc]
