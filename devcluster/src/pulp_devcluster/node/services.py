"""API objects the node provides (the ``kubernetes`` endpoints through the proxy, the
``kube-dns`` Service and endpoints for CoreDNS on the host) and the Node's readiness."""

from __future__ import annotations

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import (
    EndpointAddress,
    EndpointPort,
    EndpointSubset,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.discovery_v1 import Endpoint, EndpointConditions
from lightkube.models.discovery_v1 import EndpointPort as SliceEndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Endpoints, Service
from lightkube.resources.core_v1 import Node as NodeResource
from lightkube.resources.discovery_v1 import EndpointSlice

from pulp_devcluster.node.settings import FIELD_MANAGER


def apply_service_endpoints(
    client: Client, gateway: str, api_port: int, dns_service_ip: str
) -> None:
    labels_ep = {"endpointslice.kubernetes.io/skip-mirror": "true"}

    def slice_labels(service: str) -> dict[str, str]:
        return {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": f"{FIELD_MANAGER}.local",
        }

    # default/kubernetes -> proxy on the gateway (the apiserver listens on loopback only)
    client.apply(
        Endpoints(
            metadata=ObjectMeta(name="kubernetes", namespace="default", labels=labels_ep),
            subsets=[
                EndpointSubset(
                    addresses=[EndpointAddress(ip=gateway)],
                    ports=[EndpointPort(name="https", port=api_port, protocol="TCP")],
                )
            ],
        ),
        force=True,
    )
    client.apply(
        EndpointSlice(
            metadata=ObjectMeta(
                name="kubernetes", namespace="default", labels=slice_labels("kubernetes")
            ),
            addressType="IPv4",
            endpoints=[Endpoint(addresses=[gateway], conditions=EndpointConditions(ready=True))],
            ports=[SliceEndpointPort(name="https", port=api_port, protocol="TCP")],
        ),
        force=True,
    )
    # kube-system/kube-dns -> CoreDNS on the gateway
    client.apply(
        Service(
            metadata=ObjectMeta(
                name="kube-dns",
                namespace="kube-system",
                labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            ),
            spec=ServiceSpec(
                clusterIP=dns_service_ip,
                ports=[
                    ServicePort(name="dns", port=53, protocol="UDP", targetPort=53),
                    ServicePort(name="dns-tcp", port=53, protocol="TCP", targetPort=53),
                ],
            ),
        ),
        force=True,
    )
    client.apply(
        Endpoints(
            metadata=ObjectMeta(name="kube-dns", namespace="kube-system", labels=labels_ep),
            subsets=[
                EndpointSubset(
                    addresses=[EndpointAddress(ip=gateway)],
                    ports=[
                        EndpointPort(name="dns", port=53, protocol="UDP"),
                        EndpointPort(name="dns-tcp", port=53, protocol="TCP"),
                    ],
                )
            ],
        ),
        force=True,
    )
    client.apply(
        EndpointSlice(
            metadata=ObjectMeta(
                name="kube-dns", namespace="kube-system", labels=slice_labels("kube-dns")
            ),
            addressType="IPv4",
            endpoints=[Endpoint(addresses=[gateway], conditions=EndpointConditions(ready=True))],
            ports=[
                SliceEndpointPort(name="dns", port=53, protocol="UDP"),
                SliceEndpointPort(name="dns-tcp", port=53, protocol="TCP"),
            ],
        ),
        force=True,
    )


def node_ready(client: Client, name: str, untainted: bool = False) -> bool:
    try:
        node = client.get(NodeResource, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    conds = (node.status.conditions if node.status else None) or []
    if not any(c.type == "Ready" and c.status == "True" for c in conds):
        return False
    if untainted and node.spec is not None and node.spec.taints:
        return not any(t.key == "node.kubernetes.io/not-ready" for t in node.spec.taints)
    return True
