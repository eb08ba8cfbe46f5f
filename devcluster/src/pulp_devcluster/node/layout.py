"""The node's directories: the state dir (what a start recreates and a stop removes) and the
short runtime dir for unix sockets when the state dir's path is too long."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.node.host import mounts_under
from pulp_devcluster.registry import remove_path

#: Longer state dirs get a short runtime dir below SHORT_DIR_BASE (see :func:`runtime_dir_for`).
_MAX_STATE_DIR_LEN = 48
SHORT_DIR_BASE = Path("/var/lib/pulp-devcluster-node")

# Subpaths of a caller-given state dir that a start recreates and a stop removes (logs/ stays).
EPHEMERAL_SUBPATHS = (
    "containerd",
    "cni",
    "kubelet",
    "kube-proxy",
    "coredns",
    "pod-logs",
    "volumes",
    "node.json",
)


def prepare_state_dir(state_dir: Path | None, owned: bool) -> tuple[Path, bool]:
    """A fresh temporary state dir (``state_dir`` None, or one made earlier: ``owned``), or the
    given one emptied of what an earlier start wrote; returns it and whether it is owned."""
    if state_dir is None or owned:
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
        state_dir = Path(tempfile.mkdtemp(prefix="pulp-node-"))
        owned = True
    else:
        state_dir = state_dir.absolute()
        state_dir.mkdir(parents=True, exist_ok=True)
        if mounts_under(state_dir):
            raise DevClusterError(
                f"{state_dir} still has mounts (a node running there?); stop it first"
            )
        remove_ephemeral(state_dir)
    state_dir.chmod(0o755)
    for sub in ("logs", "containerd", "cni/net.d", "cni/ipam", "kubelet", "kube-proxy",
                "coredns", "pod-logs"):  # fmt: skip
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    return state_dir, owned


def remove_ephemeral(state_dir: Path) -> None:
    for sub in EPHEMERAL_SUBPATHS:
        remove_path(state_dir / sub)


def runtime_dir_for(state_dir: Path) -> Path:
    """Where the containerd socket and the kubelet root-dir go: the state dir, or a short
    directory when its path is too long for the unix sockets created there (108 bytes:
    the kubelet's pod-resources/<n> socket, containerd.sock.ttrpc)."""
    if len(str(state_dir)) <= _MAX_STATE_DIR_LEN:
        return state_dir
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    short = SHORT_DIR_BASE / digest
    short.mkdir(parents=True, exist_ok=True)
    return short
