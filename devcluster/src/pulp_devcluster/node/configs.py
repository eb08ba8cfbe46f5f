"""Configuration of the node's parts: the CNI network, kubelet, kube-proxy, CoreDNS and the TCP
proxy from the bridge to the apiserver (pure builders, and the command lines using them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from pulp_devcluster.node.settings import CGROUP_ROOT


def cni_conflist(*, bridge: str, pod_cidr: str, gateway: str, ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "pulp-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr, "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "loopback"},
        ],
    }


def kubelet_config(
    *,
    node_ip: str,
    port: int,
    healthz_port: int,
    runtime_endpoint: str,
    cluster_dns: str,
    cluster_domain: str,
    pod_logs_dir: Path,
    cgroup_root: str = CGROUP_ROOT,
) -> dict[str, Any]:
    """The KubeletConfiguration (see the module docs and the report for each choice)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # serving: the apiserver dials <node ip>:port for logs/exec/port-forward; it has no
        # client certificate for kubelets, so anonymous + AlwaysAllow (test machine only)
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # cgroups: v1 hybrid, PID 1 is not systemd
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupRoot": f"/{cgroup_root}",
        "cgroupsPerQOS": True,
        # runtime
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": runtime_endpoint,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,  # never delete the imported images
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": str(pod_logs_dir),
        # DNS
        "clusterDNS": [cluster_dns],
        "clusterDomain": cluster_domain,
        "resolvConf": "/etc/resolv.conf",
        # a test machine: no static pods, swap tolerated, evict only when really short
        "staticPodPath": "",
        "failSwapOn": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "evictionPressureTransitionPeriod": "30s",
        "maxPods": 110,
        "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE
        "protectKernelDefaults": False,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "volumeStatsAggPeriod": "0s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(
    *,
    kubeconfig: Path,
    node_name: str,
    pod_cidr: str,
    healthz_port: int,
    metrics_port: int,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": pod_cidr,
        "detectLocalMode": "ClusterCIDR",
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "oomScoreAdj": 0,
        # NodePorts on every local address, 127.0.0.1 included (route_localnet=1)
        "nodePortAddresses": [],
        "iptables": {"localhostNodePorts": True, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        # leave the host's conntrack sysctls alone
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def corefile(
    *, listen_ip: str, health_port: int, ready_port: int, kubeconfig: Path, cluster_domain: str
) -> str:
    return f"""\
.:53 {{
    bind {listen_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
    loadbalance
}}
"""


#: The proxy runs as ``python -c PROXY_CODE LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT MARKER``
#: (standard library only: about 10 MB instead of 45 MB for an interpreter with this package).
PROXY_CODE = """
import asyncio, sys
lh, lp, th, tp = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()
async def handle(r, w):
    try:
        tr, tw = await asyncio.open_connection(th, tp)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, tw), pipe(tr, w))
async def main():
    server = await asyncio.start_server(handle, lh, lp, reuse_address=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def proxy_command(*, listen_host: str, port: int, target_host: str, marker: Path) -> list[str]:
    """The TCP proxy to the apiserver (``marker``, the state dir, is for stale cleanup)."""
    return [
        sys.executable,
        "-I",
        "-c",
        PROXY_CODE,
        listen_host,
        str(port),
        target_host,
        str(port),
        str(marker),  # marker for stale cleanup
    ]


def kubelet_command(
    kubelet: Path,
    *,
    config: Path,
    kubeconfig: Path,
    root_dir: Path,
    node_name: str,
    node_ip: str,
    verbosity: int,
) -> list[str]:
    return [
        str(kubelet),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={root_dir}",
        f"--hostname-override={node_name}",
        f"--node-ip={node_ip}",
        f"--v={verbosity}",
    ]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
