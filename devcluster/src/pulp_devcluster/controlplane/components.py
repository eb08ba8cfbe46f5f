"""What the control plane's processes are given: command-line arguments, keys, the kubeconfig
and the kwok Node objects."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lightkube.models.core_v1 import NodeSpec, NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node

from pulp_devcluster.controlplane.settings import (
    KWOK_NODE_ANNOTATION,
    KWOK_NODE_ANNOTATION_VALUE,
    KWOK_STAGES_FILE,
    NODE_ALLOCATABLE,
    POD_CIDR,
    SERVICE_CLUSTER_IP_RANGE,
    Tier,
)


def etcd_args(data_dir: Path, etcd_url: str, peer_url: str) -> list[str]:
    return [
        "--name=devcluster",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=devcluster={peer_url}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(
    *,
    tier: Tier,
    etcd_url: str,
    serving: Path,
    port: int,
    server: str,
    sa_key: Path,
    sa_pub: Path,
    tokens: Path,
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE,
) -> list[str]:
    args = [
        f"--etcd-servers={etcd_url}",
        f"--cert-dir={serving}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--advertise-address=127.0.0.1",
        # a real node registers by name; reach its kubelet by IP (no DNS for node names here)
        "--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
        f"--service-cluster-ip-range={service_cidr}",
        "--allow-privileged=true",
        f"--service-account-issuer={server}",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        "--authorization-mode=RBAC",
        f"--token-auth-file={tokens}",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
    ]
    if tier == "apiserver":
        args.append("--disable-admission-plugins=ServiceAccount")
    return args


def _controller_common_args(kubeconfig: Path) -> list[str]:
    kc = str(kubeconfig)
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--kube-api-qps=200",  # client-side throttling slows the start-up otherwise
        "--kube-api-burst=400",
    ]


def controller_manager_args(
    *,
    kubeconfig: Path,
    port: int,
    cert_dir: Path,
    sa_key: Path,
    ca_file: Path,
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE,
) -> list[str]:
    return [
        *_controller_common_args(kubeconfig),
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--service-account-private-key-file={sa_key}",
        f"--root-ca-file={ca_file}",
        "--use-service-account-credentials=true",
        "--controllers=*",
        "--cluster-name=devcluster",
        f"--service-cluster-ip-range={service_cidr}",
    ]


def scheduler_args(*, kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    return [
        *_controller_common_args(kubeconfig),
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
    ]


def kwok_args(*, kubeconfig: Path, testbin: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector="
        f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
        f"--config={testbin / KWOK_STAGES_FILE}",
        f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1",
    ]


def kwok_node(name: str) -> Node:
    """A fake Node that kwok manages (Ready, no containers)."""
    return Node(
        metadata=ObjectMeta(
            name=name,
            annotations={
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            labels={
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        ),
        spec=NodeSpec(),
        status=NodeStatus(allocatable=dict(NODE_ALLOCATABLE), capacity=dict(NODE_ALLOCATABLE)),
    )


def write_service_account_keys(key_path: Path, pub_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_tokens(path: Path, tokens: Mapping[str, str]) -> Path:
    """The static token file: each user a cluster-admin (group system:masters)."""
    for user in tokens:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", user):
            raise ValueError(f"user name {user!r}: expected lowercase letters, digits and '-'")
    path.write_text(
        "".join(f'{token},{user},{user},"system:masters"\n' for user, token in tokens.items())
    )
    path.chmod(0o600)
    return path


def write_kubeconfig(
    path: Path, server: str, ca_file: Path, token: str, user: str = "admin"
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "devcluster",
                "context": {"cluster": "devcluster", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "devcluster",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
