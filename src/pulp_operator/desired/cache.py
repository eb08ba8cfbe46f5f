"""The managed Redis: Deployment N-redis, Service N-redis-svc and (optionally) PVC N-redis-data."""

from __future__ import annotations

from typing import Any

from .. import names
from .common import (
    REDIS_UID,
    container_security_context,
    pod_security_context,
    resources,
    set_if,
)
from .context import Ctx
from .inputs import Manifest
from .storage import pvc
from .workload import deployment, pod_spec, service

COMPONENT = "cache"
DEFAULT_SIZE = "1Gi"


def cache_objects(ctx: Ctx) -> list[Manifest]:
    cache = ctx.spec.cache
    if cache is None or not ctx.managed_cache:
        return []
    objects: list[Manifest] = []
    claim = cache.pvc
    if cache.redis_storage_class and not cache.pvc:
        size = DEFAULT_SIZE
        if cache.redis_resource_requirements and cache.redis_resource_requirements.requests:
            size = cache.redis_resource_requirements.requests.get("storage", DEFAULT_SIZE)
        claim = names.redis_data(ctx.name)
        objects.append(pvc(ctx, COMPONENT, claim, size, cache.redis_storage_class, "ReadWriteOnce"))
    volume: dict[str, Any] = (
        {"name": "redis-data", "persistentVolumeClaim": {"claimName": claim}}
        if claim
        else {"name": "redis-data", "emptyDir": {}}
    )
    ping = {"exec": {"command": ["redis-cli", "ping"]}}
    container: dict[str, Any] = {
        "name": "redis",
        "image": cache.redis_image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "ports": [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}],
        "readinessProbe": cache.readiness_probe
        or {**ping, "initialDelaySeconds": 1, "periodSeconds": 5, "timeoutSeconds": 3},
        "livenessProbe": cache.liveness_probe
        or {**ping, "initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 5},
        "volumeMounts": [{"name": "redis-data", "mountPath": "/data"}],
        "securityContext": container_security_context(),
    }
    # requests.storage sizes the PVC; it is not a container resource.
    set_if(container, "resources", resources(cache.redis_resource_requirements, drop=("storage",)))
    pod = pod_spec(
        cache,
        containers=[container],
        volumes=[volume],
        security_context=pod_security_context(REDIS_UID),
        service_account=names.service_account(ctx.name),
    )
    objects.append(
        service(
            ctx,
            COMPONENT,
            names.redis_service(ctx.name),
            [{"name": "redis", "port": cache.redis_port, "protocol": "TCP", "targetPort": "redis"}],
        )
    )
    objects.append(
        deployment(
            ctx,
            COMPONENT,
            names.redis(ctx.name),
            pod=pod,
            replicas=1,
            # A ReadWriteOnce volume cannot be attached to the old and the new pod at once.
            strategy=cache.strategy or ({"type": "Recreate"} if claim else None),
            annotations=cache.deployment_annotations,
            extra_pod_labels=cache.pod_labels,
        )
    )
    return objects
