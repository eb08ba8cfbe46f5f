"""Command line: ``python -m pulp_devcluster.node {up,down,cleanup,provision}`` (used by
``make demo`` through hack/demo.sh; ``provision`` is the node's provisioner process)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import yaml

from pulp_devcluster.cli import run as run_cli
from pulp_devcluster.controlplane.plane import ClusterInfo, ControlPlane
from pulp_devcluster.controlplane.runs import cleanup_stale_runs
from pulp_devcluster.controlplane.settings import cast_tier
from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.kubeapi import install_crds
from pulp_devcluster.node.cleanup import cleanup_stale
from pulp_devcluster.node.lifecycle import Node
from pulp_devcluster.node.provisioner import run_provisioner
from pulp_devcluster.node.settings import (
    K8S_NAMESPACE,
    NODE_NAME,
    TEST_IMAGE,
    busybox_image_archive,
)
from pulp_devcluster.processes import proc_start_time
from pulp_devcluster.registry import owner_alive, read_json, write_json_atomic

log = logging.getLogger("pulp_devcluster.node")


def cluster_info_from_state_dir(state_dir: Path) -> ClusterInfo:
    """The :class:`ClusterInfo` of a control plane run by ``devcluster up`` in ``state_dir``."""
    data = read_json(state_dir / "state.json")
    if not data or not data.get("ready"):
        raise DevClusterError(f"no running control plane recorded in {state_dir}/state.json")
    kubeconfig = Path(data["kubeconfig"])
    config = yaml.safe_load(kubeconfig.read_text())
    token = str(config["users"][0]["user"]["token"])
    return ClusterInfo(
        tier=cast_tier(str(data["tier"])),
        kubeconfig=kubeconfig,
        server=str(data["server"]),
        token=token,
        ca_file=Path(data["ca_file"]),
        testbin=Path(data["testbin"]),
        state_dir=state_dir,
    )


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    data = read_json(state_dir / "up.json")
    if data is not None and owner_alive(data):
        log.error("a node already runs in %s (pid %s)", state_dir, data.get("owner_pid"))
        return 1
    images = [Path(p) for p in args.image]
    if args.test_image:
        images.append(busybox_image_archive())
    cp: ControlPlane | None = None
    node: Node | None = None
    with _stop_signals():
        try:
            if args.cluster_state_dir:
                cluster = cluster_info_from_state_dir(Path(args.cluster_state_dir).absolute())
            else:
                cp = ControlPlane(tier="cluster", nodes=0, state_dir=state_dir / "cluster")
                cluster = cp.start()
                if args.crds:
                    install_crds(cluster.kubeconfig, Path(args.crds))
            node = Node(
                cluster=cluster,
                state_dir=state_dir / "node",
                images=images,
                containerd_root=Path(args.containerd_root) if args.containerd_root else None,
            )
            write_json_atomic(
                state_dir / "up.json",
                {
                    "owner_pid": os.getpid(),
                    "owner_start_time": proc_start_time(os.getpid()),
                    "node_state_dir": str(state_dir / "node"),
                },
            )
            info = node.start()
            print(f"node {info.name} ready in {node.timings['total']:.1f}s (IP {info.node_ip})")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"containerd: ctr -a {info.containerd_socket} -n {K8S_NAMESPACE} ...")
            print(f"logs: {state_dir / 'node' / 'logs'}")
            print("running until SIGINT/SIGTERM (Ctrl-C or `node down`)", flush=True)
            while True:
                dead = [n for n, ok in node.alive().items() if not ok]
                if dead:
                    log.error("%s exited unexpectedly", ", ".join(dead))
                    return 1
                time.sleep(1)
        except _Stop as exc:
            log.info("received %s, stopping", exc)
            return 0
        except DevClusterError as exc:
            log.error("%s", exc)
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            if node is not None:
                node.stop()
                stops = {k: round(v, 2) for k, v in node.timings.items() if k.startswith("stop")}
                log.info("stop timings: %s", stops)
            if cp is not None:
                cp.stop()
            (state_dir / "up.json").unlink(missing_ok=True)


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()
    data = read_json(state_dir / "up.json")
    if data is not None and owner_alive(data) and int(data["owner_pid"]) != os.getpid():
        os.kill(int(data["owner_pid"]), signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and owner_alive(data):
            time.sleep(0.2)
    cleaned = cleanup_stale()
    print(f"node in {state_dir} stopped ({cleaned} stale run(s) cleaned)")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    print(f"{cleanup_stale()} stale node run(s) cleaned")
    print(f"{cleanup_stale_runs()} stale control plane run(s) cleaned")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    run_provisioner(Path(args.kubeconfig), Path(args.dir), args.node_name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pulp_devcluster.node",
        description="A real single Kubernetes node (containerd, kubelet, kube-proxy, CoreDNS) on"
        " this machine, against a local control plane. Needs root.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="start a node (and, unless --cluster-state-dir, a control plane) in the foreground",
    )
    up.add_argument("--state-dir", required=True)
    up.add_argument(
        "--cluster-state-dir",
        help="use the control plane of `devcluster up --state-dir DIR` (default: start a"
        " 'cluster' tier control plane without fake nodes in STATE_DIR/cluster)",
    )
    up.add_argument("--crds", metavar="DIR", help="install the CRDs of DIR (own control plane)")
    up.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="ARCHIVE",
        help="OCI archive to import (names from ARCHIVE.names); repeatable",
    )
    up.add_argument("--test-image", action="store_true", help=f"import {TEST_IMAGE}")
    up.add_argument("--containerd-root", help="persistent containerd root (image store)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the node of `up --state-dir DIR`")
    down.add_argument("--state-dir", required=True)
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)
    cleanup = sub.add_parser("cleanup", help="clean up nodes of crashed runs")
    cleanup.set_defaults(func=cmd_cleanup)
    provision = sub.add_parser("provision", help=argparse.SUPPRESS)
    provision.add_argument("--kubeconfig", required=True)
    provision.add_argument("--dir", required=True)
    provision.add_argument("--node-name", default=NODE_NAME)
    provision.add_argument("--marker", default="")
    provision.set_defaults(func=cmd_provision)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)
