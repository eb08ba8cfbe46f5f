"""containerd: its config, OCI image archives (names, retagged import) and ``ctr``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.node.host import run_command
from pulp_devcluster.node.settings import (
    CNI_BIN_DIR,
    K8S_NAMESPACE,
    SANDBOX_IMAGE,
    default_images_dir,
)

log = logging.getLogger("pulp_devcluster.node")


def normalise_image(ref: str) -> str:
    """The fully qualified name the kubelet asks containerd for (docker.io/library/...)."""
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    return ref


def read_index(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:") as tar:
        for member in tar:
            if member.name.lstrip("./") == "index.json" and member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    data = json.loads(fh.read())
                    if isinstance(data, dict):
                        return data
    raise DevClusterError(f"{archive} is not an OCI image layout archive (no index.json)")


def archive_names(archive: Path) -> list[str]:
    """Image names of an archive: ``<archive>.names`` (one a line, as hack/images writes them),
    else the full references among its index.json ref names; normalised (docker.io/library/...,
    what the kubelet asks for; short names are left out: containerd 1.6's CRI plugin trips over
    names it cannot resolve), deduplicated."""
    names: list[str] = []
    names_file = archive.with_name(archive.name + ".names")
    if names_file.is_file():
        for line in names_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(normalise_image(line))
    elif archive.is_file():
        with contextlib.suppress(DevClusterError, tarfile.TarError, OSError, ValueError):
            for desc in read_index(archive).get("manifests", []):
                ann = desc.get("annotations") or {}
                for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
                    ref = str(ann.get(key, ""))
                    if "/" in ref and ":" in ref:
                        names.append(normalise_image(ref))
    return list(dict.fromkeys(names))


def _stream_retagged(archive: Path, name: str, out: IO[bytes]) -> str:
    """Write ``archive`` to ``out`` as a tar whose index.json names one manifest ``name``
    (annotation io.containerd.image.name), so that containerd imports it under exactly that
    name. Returns the digest of that manifest."""
    index = read_index(archive)
    manifests = list(index.get("manifests", []))
    if not manifests:
        raise DevClusterError(f"{archive} has no manifests")
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else ""
    chosen = next(
        (
            m
            for m in manifests
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") in (tag, name)
        ),
        manifests[0],
    )
    chosen = dict(chosen)
    chosen["annotations"] = {**(chosen.get("annotations") or {}), "io.containerd.image.name": name}
    new_index = json.dumps({**index, "manifests": [chosen]}).encode()
    with tarfile.open(archive, "r:") as tin, tarfile.open(fileobj=out, mode="w|") as tout:
        for member in tin:
            if member.name.lstrip("./") == "index.json":
                member.size = len(new_index)
                tout.addfile(member, io.BytesIO(new_index))
            elif member.isfile():
                tout.addfile(member, tin.extractfile(member))
            else:
                tout.addfile(member)
    return str(chosen["digest"])


class Ctr:
    """``ctr`` against one containerd socket and namespace."""

    def __init__(self, socket_path: Path, namespace: str = K8S_NAMESPACE) -> None:
        self.socket = socket_path
        self.namespace = namespace

    def cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        return run_command(self.cmd(*args), check=check, timeout=timeout).stdout

    def images(self) -> dict[str, str]:
        """name -> target digest."""
        out: dict[str, str] = {}
        for line in self.run("images", "ls").splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3:
                out[parts[0]] = parts[2]
        return out

    def import_archive(self, archive: Path, names: Sequence[str] | None = None) -> list[str]:
        """Import ``archive`` under ``names`` (default :func:`archive_names`); skipped when all
        names already exist with the same digest. Returns the names."""
        names = list(names) if names else archive_names(archive)
        if not names:
            raise DevClusterError(
                f"{archive}: no image names (write them one a line into {archive}.names)"
            )
        existing = self.images()
        index = read_index(archive)
        digests = {str(m.get("digest")) for m in index.get("manifests", [])}
        if all(existing.get(n) in digests for n in names):
            log.debug("%s already imported as %s", archive.name, ", ".join(names))
            return names
        t0 = time.monotonic()
        proc = subprocess.Popen(
            self.cmd("images", "import", "-"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            _stream_retagged(archive, names[0], proc.stdin)
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise DevClusterError(f"ctr images import {archive} failed: {err.strip()}")
        for name in names[1:]:
            self.run("images", "tag", "--force", names[0], name)
        log.info(
            "imported %s as %s in %.1fs", archive.name, ", ".join(names), time.monotonic() - t0
        )
        return names

    def remove_all_containers(self) -> None:
        """Kill and delete every task and container of the namespace (CRI bypassed)."""
        tasks = self.run("tasks", "ls", "-q", check=False).split()
        for task in tasks:
            self.run("tasks", "kill", "--signal", "SIGKILL", "--all", task, check=False)
        for task in tasks:
            self.run("tasks", "delete", "--force", task, check=False, timeout=30)
        containers = self.run("containers", "ls", "-q", check=False).split()
        if containers:
            self.run("containers", "delete", *containers, check=False, timeout=60)


def find_sandbox_archive(images_dir: Path | None = None) -> Path | None:
    """An archive of the image cache whose .names list :data:`SANDBOX_IMAGE`."""
    directory = images_dir or default_images_dir()
    for path in sorted(directory.glob("*.tar")):
        if SANDBOX_IMAGE in archive_names(path):
            return path
    return None


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))


def containerd_config(
    *,
    root: Path,
    state: Path,
    socket_path: Path,
    runc_root: Path,
    cni_conf_dir: Path,
    opt_dir: Path,
) -> str:
    """containerd config (version 2: containerd 1.6/1.7; 2.x migrates it on load)."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""\
version = 2
root = {_toml_str(root)}
state = {_toml_str(state)}
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = {_toml_str(socket_path)}

[ttrpc]
  address = {_toml_str(str(socket_path) + ".ttrpc")}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {_toml_str(opt_dir)}

{cri}
  sandbox_image = "{SANDBOX_IMAGE}"
  # we lack CAP_SYS_RESOURCE on some machines: runc could not lower oom_score_adj (-998 for
  # sandboxes) and fails with "can't get final child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {_toml_str(runc_root)}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = {_toml_str(cni_conf_dir)}
    max_conf_num = 1
"""


def import_node_images(ctr: Ctr, images: Sequence[Path]) -> None:
    """Import ``images`` (and the sandbox image from the image cache unless among them); raise
    when the sandbox image is still missing."""
    archives = [Path(a) for a in images]
    if not any(SANDBOX_IMAGE in archive_names(a) for a in archives):
        found = find_sandbox_archive()
        if found is not None:
            archives.insert(0, found)
    for archive in archives:
        ctr.import_archive(archive)
    if SANDBOX_IMAGE not in ctr.images():
        raise DevClusterError(
            f"the sandbox image {SANDBOX_IMAGE} is not available: build it with "
            "`hack/images/build.sh pause` or pass its archive in `images`"
        )


def write_containerd_files(
    state_dir: Path,
    *,
    containerd_root: Path,
    socket_path: Path,
    cni: dict[str, Any],
    persistent_store: bool,
) -> Path:
    """containerd's config and the CNI network list in the state dir; returns the config."""
    conf = state_dir / "containerd" / "config.toml"
    conf.write_text(
        containerd_config(
            root=containerd_root,
            state=state_dir / "containerd" / "state",
            socket_path=socket_path,
            runc_root=state_dir / "containerd" / "runc",
            cni_conf_dir=state_dir / "cni" / "net.d",
            opt_dir=state_dir / "containerd" / "opt",
        )
    )
    (state_dir / "cni" / "net.d" / "10-pulp-node.conflist").write_text(json.dumps(cni, indent=2))
    if persistent_store:
        # a persistent image store: drop the CRI's per-container files of earlier runs
        # (their containers are deleted on stop, or right after the start after a crash)
        for sub in ("sandboxes", "containers"):
            shutil.rmtree(containerd_root / "io.containerd.grpc.v1.cri" / sub, ignore_errors=True)
    return conf
