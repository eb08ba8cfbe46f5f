"""The plugins of the Pulp image, each driven by its ecosystem's own client through pulp-web.

One Pulp for every client (module fixture): the plugin image of hack/images/build.sh, pulp-web on
NodePort 30200 with CONTENT_ORIGIN on the node's address (which the pods reach too, so that the
container token server the operator derives from it serves the host's clients and Pulp's own
remote syncs alike). The clients run on the host against that NodePort:
- skopeo (Debian) pushes a locally built OCI image and pulls it back, with tokens signed by the
  operator-generated container token key; then Pulp syncs the pushed image from its own
  registry as the upstream (a second distribution), and skopeo pulls the mirror;
- ansible-galaxy (ansible-core from PyPI) publishes a locally built collection, then installs it;
- pip installs a package uploaded to a pulp_python distribution;
- apt (Debian) reads a published pulp_deb repository and downloads its package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lightkube import Client
from lightkube.resources.core_v1 import Secret

from pulp_operator import names
from pulp_operator.kube import PulpResource

from ..support import as_dict
from .common import PULP_TAG, deploy_pulp, wait
from .conftest import RealNode

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv/bin"
NAME = "plugins"
NAMESPACE = "plugins-e2e"
NODEPORT = 30200
REQUIREMENTS = REPO / f"hack/images/files/pulp/requirements-{PULP_TAG}.txt"


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    out = subprocess.run(
        [str(a) for a in args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"{' '.join(map(str, args))}: {out.stderr}{out.stdout}"
    return out.stdout


@dataclass
class PluginPulp:
    client: Client
    host: str
    """host:port of pulp-web's NodePort, as CONTENT_ORIGIN names it."""
    password: str
    home: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def pulp(self, *args: str) -> Any:
        """pulp-cli; JSON output parsed."""
        out = run(
            BIN / "pulp",
            "--base-url",
            self.base_url,
            "--username",
            "admin",
            "--password",
            self.password,
            "--format",
            "json",
            *args,
            env={"HOME": str(self.home), "XDG_CACHE_HOME": str(self.home / "c")},
        )
        return json.loads(out) if out.strip() else None

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """The REST API (for pulp_deb, which this pulp-cli has no commands for); waits for the
        task a call starts and returns what it created."""
        r = requests.request(
            method, self.base_url + path, auth=("admin", self.password), timeout=60, **kwargs
        )
        assert r.ok, f"{method} {path}: {r.status_code} {r.text}"
        body: Any = r.json()
        if isinstance(body, dict) and set(body) == {"task"}:
            task = wait(f"task {body['task']}", lambda: self._finished(body["task"]), 300, 1)
            assert task["state"] == "completed", task
            return task["created_resources"]
        return body

    def _finished(self, href: str) -> Any:
        task = requests.get(self.base_url + href, auth=("admin", self.password), timeout=30).json()
        return task if task["state"] in ("completed", "failed", "canceled") else None


@pytest.fixture(scope="module")
def pulp(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginPulp]:
    started = time.monotonic()
    client = real_node.client
    real_node.namespace(NAMESPACE)
    node_ip = real_node.node.node_ip
    try:
        with real_node.operator([NAMESPACE], log_name="test_plugins"):
            deploy_pulp(client, NAME, NAMESPACE, NODEPORT, origin_host=node_ip)

            def ready() -> bool:
                cr = as_dict(client.get(PulpResource, NAME, namespace=NAMESPACE))
                conds = (cr.get("status") or {}).get("conditions") or []
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

            wait("Pulp Ready=True", ready, timeout=900, every=3)
            secret = client.get(Secret, names.admin_password(NAME), namespace=NAMESPACE)
            assert secret.data is not None
            password = base64.b64decode(secret.data["password"]).decode()
            # Ready=True can come a moment before kube-proxy routes the NodePort
            status = f"http://{node_ip}:{NODEPORT}/pulp/api/v3/status/"
            wait(
                "the API through pulp-web's NodePort",
                lambda: requests.get(status, timeout=10).ok,
                timeout=120,
            )
            home = tmp_path_factory.mktemp("plugins-home")
            print(f"\nplugin Pulp ready {time.monotonic() - started:.0f}s after the fixture start")
            yield PluginPulp(client, f"{node_ip}:{NODEPORT}", password, home)
    finally:
        real_node.delete_namespaces(NAMESPACE)


def test_status_lists_every_plugin_of_the_image(pulp: PluginPulp) -> None:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            package, version = line.split("==")
            package = package.split("[")[0]  # pulpcore[s3,azure,google]
            pins[package.removeprefix("pulp-").replace("pulpcore", "core")] = version
    with urllib.request.urlopen(f"{pulp.base_url}/pulp/api/v3/status/", timeout=30) as r:
        versions = {v["component"]: v["version"] for v in json.loads(r.read())["versions"]}
    assert {c: versions.get(c) for c in pins} == pins
    # pulp_file and pulp_certguard come with pulpcore
    assert versions["file"] == versions["certguard"] == PULP_TAG


# --- container registry: skopeo -----------------------------------------------------------


def oci_image(tmp: Path, payload: bytes) -> Path:
    """A one-layer OCI image layout (tag 1) holding /hello.txt, made with umoci (no Docker)."""
    layout, bundle = tmp / "oci", tmp / "bundle"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:1")
    run("umoci", "unpack", "--image", f"{layout}:1", bundle)
    (bundle / "rootfs/hello.txt").write_bytes(payload)
    run("umoci", "repack", "--image", f"{layout}:1", bundle)
    return layout


def unpacked_hello(layout: Path, tmp: Path) -> bytes:
    bundle = tmp / f"unpacked-{layout.name}"
    run("umoci", "unpack", "--image", f"{layout}:1", bundle)
    return (bundle / "rootfs/hello.txt").read_bytes()


def auth_file(pulp: PluginPulp, tmp: Path) -> Path:
    """containers-auth.json with the admin's credentials (kept off the command lines)."""
    path = tmp / "auth.json"
    token = base64.b64encode(f"admin:{pulp.password}".encode()).decode()
    path.write_text(json.dumps({"auths": {pulp.host: {"auth": token}}}))
    path.chmod(0o600)
    return path


def verify_es256(token: str, public_pem: bytes) -> dict[str, Any]:
    """The claims of a JWT whose ES256 signature the public key verifies (raises otherwise)."""
    header_b64, claims_b64, signature_b64 = token.split(".")

    def b64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(b64(header_b64))["alg"] == "ES256"
    raw = b64(signature_b64)
    signature = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = json.loads(b64(claims_b64))
    return claims


def test_container_push_pull_with_operator_token_keys(pulp: PluginPulp, tmp_path: Path) -> None:
    payload = secrets.token_bytes(64_000)
    layout = oci_image(tmp_path, payload)
    auth = auth_file(pulp, tmp_path)
    image = f"docker://{pulp.host}/plugins/tiny:1"
    run("skopeo", "copy", "--authfile", auth, "--dest-tls-verify=false", f"oci:{layout}:1", image)
    pulled = tmp_path / "pulled"
    run("skopeo", "copy", "--authfile", auth, "--src-tls-verify=false", image, f"oci:{pulled}:1")
    assert unpacked_hello(pulled, tmp_path) == payload

    # The registry demands a token from the token server on the NodePort ...
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{pulp.base_url}/v2/", timeout=30)
    assert denied.value.code == 401
    challenge = denied.value.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{pulp.base_url}/token/"'), challenge
    # ... whose tokens are signed with the key pair the operator generated.
    r = requests.get(
        f"{pulp.base_url}/token/",
        params={"service": pulp.host, "scope": "repository:plugins/tiny:pull"},
        auth=("admin", pulp.password),
        timeout=30,
    )
    assert r.ok, r.text
    keys = pulp.client.get(Secret, names.container_auth(NAME), namespace=NAMESPACE)
    assert keys.data is not None
    public_pem = base64.b64decode(keys.data["container_auth_public_key.pem"])
    claims = verify_es256(r.json()["token"], public_pem)
    assert claims["access"] == [{"type": "repository", "name": "plugins/tiny", "actions": ["pull"]}]

    # A remote sync with Pulp's own registry as the upstream (the distribution pushed above),
    # run by a worker pod through the NodePort, then pulled from the mirror's distribution.
    pulp.pulp(
        "container",
        "remote",
        "create",
        "--name",
        "upstream",
        "--url",
        pulp.base_url,
        "--upstream-name",
        "plugins/tiny",
        "--username",
        "admin",
        "--password",
        pulp.password,
    )
    pulp.pulp("container", "repository", "create", "--name", "mirror")
    pulp.pulp("container", "repository", "sync", "--name", "mirror", "--remote", "upstream")
    pulp.pulp(
        "container",
        "distribution",
        "create",
        "--name",
        "mirror",
        "--base-path",
        "mirror",
        "--repository",
        "mirror",
    )
    mirrored = tmp_path / "mirrored"
    run(
        "skopeo",
        "copy",
        "--authfile",
        auth,
        "--src-tls-verify=false",
        f"docker://{pulp.host}/mirror:1",
        f"oci:{mirrored}:1",
    )
    assert unpacked_hello(mirrored, tmp_path) == payload


# --- Galaxy: ansible-galaxy ---------------------------------------------------------------


def test_galaxy_publish_then_install(pulp: PluginPulp, tmp_path: Path) -> None:
    pulp.pulp("ansible", "repository", "create", "--name", "galaxy")
    pulp.pulp(
        "ansible",
        "distribution",
        "create",
        "--name",
        "galaxy",
        "--base-path",
        "galaxy",
        "--repository",
        "galaxy",
    )
    payload = secrets.token_hex(16)
    config = tmp_path / "ansible.cfg"
    config.write_text(
        "[galaxy]\nserver_list = pulp\n\n[galaxy_server.pulp]\n"
        f"url = {pulp.base_url}/pulp_ansible/galaxy/galaxy/\n"
        f"username = admin\npassword = {pulp.password}\n"
    )
    config.chmod(0o600)
    env = {"ANSIBLE_CONFIG": str(config), "HOME": str(tmp_path)}
    galaxy = BIN / "ansible-galaxy"
    run(galaxy, "collection", "init", "plugins_e2e.hello", "--init-path", tmp_path / "src", env=env)
    source = tmp_path / "src/plugins_e2e/hello"
    # galaxy-importer demands meta/runtime.yml, which this `collection init` does not write
    (source / "meta").mkdir(exist_ok=True)
    (source / "meta/runtime.yml").write_text('requires_ansible: ">=2.15.0"\n')
    (source / "docs").mkdir(exist_ok=True)
    (source / "docs/payload.txt").write_text(payload)
    run(galaxy, "collection", "build", source, "--output-path", tmp_path / "dist", env=env)
    (artifact,) = (tmp_path / "dist").glob("plugins_e2e-hello-*.tar.gz")
    run(galaxy, "collection", "publish", artifact, env=env)  # waits for the import task
    target = tmp_path / "collections"
    run(galaxy, "collection", "install", "plugins_e2e.hello", "-p", target, env=env)
    installed = target / "ansible_collections/plugins_e2e/hello"
    assert (installed / "docs/payload.txt").read_text() == payload
    manifest = json.loads((installed / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == "1.0.0"


# --- Python: pip ----------------------------------------------------------------------------


def wheel(tmp: Path, payload: str) -> Path:
    """A pure-Python wheel of one module (the format of PEP 427, written directly: the venv has
    no wheel builder, and pip would fetch one from the index for every run)."""
    name, version = "plugins_e2e_hello", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"PAYLOAD = {payload!r}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: plugins-e2e-hello\nVersion: {version}\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: pulp-operator-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = [f"{path},sha256={digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = tmp / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
    return path


def test_pip_installs_from_a_pulp_python_distribution(pulp: PluginPulp, tmp_path: Path) -> None:
    payload = secrets.token_hex(16)
    built = wheel(tmp_path, payload)
    pulp.pulp("python", "repository", "create", "--name", "py")
    pulp.pulp(
        "python",
        "content",
        "upload",
        "--file",
        str(built),
        "--relative-path",
        built.name,
        "--repository",
        "py",
    )
    publication = pulp.pulp("python", "publication", "create", "--repository", "py")
    pulp.pulp(
        "python",
        "distribution",
        "create",
        "--name",
        "py",
        "--base-path",
        "py",
        "--publication",
        publication["pulp_href"],
    )
    target = tmp_path / "site"
    run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-cache-dir",
        "--target",
        target,
        "--index-url",
        f"{pulp.base_url}/pypi/py/simple/",
        "--trusted-host",
        pulp.host.split(":")[0],
        "plugins-e2e-hello==1.0",
    )
    assert (target / "plugins_e2e_hello.py").read_text() == f"PAYLOAD = {payload!r}\n"


# --- Debian: apt ------------------------------------------------------------------------------


def deb_package(tmp: Path, payload: str) -> Path:
    root = tmp / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/plugins-e2e").mkdir(parents=True)
    (root / "usr/share/plugins-e2e/payload.txt").write_text(payload)
    (root / "DEBIAN/control").write_text(
        "Package: plugins-e2e-hello\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: pulp-operator tests <tests@example.invalid>\n"
        "Description: a package published by Pulp in the operator's e2e tests\n"
    )
    deb = tmp / "plugins-e2e-hello_1.0_all.deb"
    run("dpkg-deb", "--root-owner-group", "--build", root, deb)
    return deb


def test_apt_reads_a_published_deb_repository(pulp: PluginPulp, tmp_path: Path) -> None:
    deb = deb_package(tmp_path, secrets.token_hex(16))
    repo = pulp.api("POST", "/pulp/api/v3/repositories/deb/apt/", json={"name": "deb"})
    with deb.open("rb") as f:
        pulp.api(
            "POST",
            "/pulp/api/v3/content/deb/packages/",
            data={"repository": repo["pulp_href"]},
            files={"file": (deb.name, f)},
        )
    (publication,) = pulp.api(
        "POST",
        "/pulp/api/v3/publications/deb/apt/",
        json={"repository": repo["pulp_href"], "simple": True},
    )
    pulp.api(
        "POST",
        "/pulp/api/v3/distributions/deb/apt/",
        json={"name": "deb", "base_path": "deb", "publication": publication},
    )
    # apt with a state of its own: only this source, no system lists or status touched
    state = tmp_path / "apt"
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        (state / d).mkdir(parents=True)
    (state / "status").write_text("")
    (state / "etc/sources.list").write_text(
        f"deb [trusted=yes] {pulp.base_url}/pulp/content/deb/ default all\n"
    )
    options = [
        f"-oDir::Etc::SourceList={state}/etc/sources.list",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::State::status={state}/status",
        f"-oDir::Cache={state}/cache",
        "-oDebug::NoLocking=1",
        "-oAPT::Sandbox::User=root",
    ]
    run("apt-get", *options, "update")
    assert "plugins-e2e-hello" in run("apt-cache", *options, "show", "plugins-e2e-hello")
    download = tmp_path / "download"
    download.mkdir()
    run("apt-get", *options, "download", "plugins-e2e-hello", cwd=download)
    (got,) = download.glob("plugins-e2e-hello_1.0_all.deb")
    assert got.read_bytes() == deb.read_bytes()
