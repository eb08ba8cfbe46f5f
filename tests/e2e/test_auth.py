"""LDAP login, Keycloak settings, telemetry and signing services of one real Pulp on the real node.

One Pulp runs with every one of these features from the start (a Pulp takes minutes to become
ready): ldap (a real slapd of this machine over TLS, its CA in spec.ldap.ca), sso_secret,
telemetry (the collector sidecar of the local otel-collector image) and signing_secret +
signing_scripts (a passphrase-protected key made with gpg here). The tests use pulp-cli, the
Prometheus endpoint of the collector Service and gpg, against what the operator created.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from lightkube import Client
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret, Service
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import PulpResource

from ..support import as_dict
from .common import IMAGES, pulp_manifests, run_pulp_cli, wait
from .conftest import RealNode
from .ldapserver import ADMIN_DN, User, running_slapd
from .test_plugins import deb_package, run

pytestmark = pytest.mark.e2e

NAME = "auth"
NAMESPACE = "auth-e2e"
NODEPORT = 30230
OTELCOL_VERSION = "0.165.0"
OTELCOL_ARCHIVE = f"otel-collector-{OTELCOL_VERSION}.oci.tar"
GROUP = "pulp-creators"
ROLE = "file.filerepository_creator"

SIGN_SCRIPT = """#!/usr/bin/env bash
# A detached ASCII-armored signature with the key of spec.signing_secret and its passphrase.
set -euo pipefail
FILE_PATH=$1
SIGNATURE_PATH="$1.asc"
gpg --quiet --batch --yes --homedir ~/.gnupg/ --pinentry-mode loopback \\
  --passphrase-file "$PULP_SIGNING_KEY_PASSPHRASE_FILE" \\
  --default-key "$PULP_SIGNING_KEY_FINGERPRINT" \\
  --detach-sign --armor --output "$SIGNATURE_PATH" "$FILE_PATH"
echo "{\\"file\\": \\"$FILE_PATH\\", \\"signature\\": \\"$SIGNATURE_PATH\\"}"
"""

APT_SCRIPT = """#!/usr/bin/env bash
# InRelease (clear-signed) and Release.gpg (detached) beside the Release file, as pulp_deb's
# AptReleaseSigningService expects, with the key of spec.signing_secret and its passphrase.
set -euo pipefail
RELEASE=$(readlink -f "$1")
DIR=$(dirname "$RELEASE")
GPG=(gpg --quiet --batch --yes --homedir ~/.gnupg/ --pinentry-mode loopback --armor
  --passphrase-file "$PULP_SIGNING_KEY_PASSPHRASE_FILE"
  --local-user "$PULP_SIGNING_KEY_FINGERPRINT" --digest-algo SHA256)
"${GPG[@]}" --detach-sign --output "$DIR/Release.gpg" "$RELEASE"
"${GPG[@]}" --clearsign --output "$DIR/InRelease" "$RELEASE"
printf '{"signatures": {"inline": "%s", "detached": "%s"}}\\n' "$DIR/InRelease" \\
  "$DIR/Release.gpg"
"""


@dataclass
class AuthEnv:
    node: RealNode
    client: Client
    base_url: str
    admin_password: str
    users: dict[str, User]
    gnupg: Path
    fingerprint: str
    sso: dict[str, str]
    home: Path

    def pulp(self, *args: str, user: str = "admin", password: str | None = None) -> Any:
        """pulp-cli as `user`; JSON output parsed. A failure raises PulpError."""
        if password is None:
            password = self.admin_password if user == "admin" else self.users[user].password
        out = run_pulp_cli(self.base_url, user, password, self.home, *args)
        if out.returncode != 0:
            raise PulpError(f"pulp {' '.join(args)} as {user}: {out.stderr}{out.stdout}")
        return json.loads(out.stdout) if out.stdout.strip() else None

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """The REST API as admin; waits for the task a call starts and returns what it made."""
        r = requests.request(
            method, self.base_url + path, auth=("admin", self.admin_password), timeout=60, **kwargs
        )
        assert r.ok, f"{method} {path}: {r.status_code} {r.text}"
        body: Any = r.json()
        if isinstance(body, dict) and set(body) == {"task"}:

            def finished() -> Any:
                task = self.api("GET", body["task"])
                return task if task["state"] in ("completed", "failed", "canceled") else None

            task = wait(f"task {body['task']}", finished, 300, 1)
            assert task["state"] == "completed", task
            return task["created_resources"]
        return body

    def signing_service(self, name: str) -> str:
        (service,) = self.api("GET", f"/pulp/api/v3/signing-services/?name={name}")["results"]
        return str(service["pulp_href"])

    def gpg(self, *args: str) -> list[str]:
        return ["gpg", "--homedir", str(self.gnupg), "--batch", *args]

    def verify(self, signature: Path, data: Path) -> str:
        """gpg --verify against the key of signing_secret; the status lines."""
        out = subprocess.run(
            [*self.gpg("--status-fd", "1", "--verify"), str(signature), str(data)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def pulp_cr(self) -> dict[str, Any]:
        return as_dict(self.client.get(PulpResource, NAME, namespace=NAMESPACE))

    def ready(self) -> bool:
        conds = (self.pulp_cr().get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def pod(self, component: str) -> str:
        pods = [
            p
            for p in self.client.list(Pod, namespace=NAMESPACE, labels=selector(component))
            if p.status is not None
            and p.status.phase == "Running"
            and p.metadata is not None
            and p.metadata.deletionTimestamp is None
        ]
        assert pods, f"no running {component} pod"
        name = pods[0].metadata.name if pods[0].metadata else None
        assert name
        return name

    def exec(self, component: str, container: str, *command: str, stdin: str = "") -> str:
        """Run a command in a running pod of a component (kubectl exec)."""
        out = subprocess.run(
            [
                str(self.node.cluster.testbin / "kubectl"),
                "--kubeconfig",
                str(self.node.cluster.kubeconfig),
                "-n",
                NAMESPACE,
                "exec",
                "-i",
                self.pod(component),
                "-c",
                container,
                "--",
                *command,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"exec {command} in {component}: {out.stderr}{out.stdout}"
        return out.stdout


def selector(component: str) -> dict[str, Any]:
    """The pods of a component, as lightkube's list() takes a label selector."""
    return dict(names.selector(NAME, component))


class PulpError(Exception):
    pass


def make_signing_key(home: Path, passphrase: str) -> tuple[str, str]:
    """A passphrase-protected RSA signing key made with gpg: (fingerprint, armored secret key)."""
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [
            *gpg,
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            "Pulp e2e <e2e@example.org>",
            "rsa2048",
            "sign",
            "1d",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    colons = subprocess.run(
        [*gpg, "--with-colons", "--list-secret-keys"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line[:4] == "fpr:")
    armored = subprocess.run(
        [*gpg, "--passphrase", passphrase, "--armor", "--export-secret-keys", fingerprint],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return fingerprint, armored


def secret(name: str, data: dict[str, str]) -> Secret:
    return cast(
        Secret,
        Secret.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "stringData": data,
            }
        ),
    )


def ldap_config(uri: str, admin_password: str) -> dict[str, str]:
    """The spec.ldap.config Secret, in the shape of the upstream sample (simple.ldap.yaml)."""
    return {
        "auth_ldap_server_uri": uri,
        "auth_ldap_bind_dn": ADMIN_DN,
        "auth_ldap_bind_password": admin_password,
        "auth_ldap_user_search": (
            'LDAPSearch("ou=users,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(uid=%(user)s)")'
        ),
        "auth_ldap_group_search": (
            'LDAPSearch("ou=groups,dc=example,dc=org", ldap.SCOPE_SUBTREE,'
            ' "(objectClass=posixGroup)")'
        ),
        "auth_ldap_group_type": "PosixGroupType(name_attr='cn')",
        "auth_ldap_mirror_groups": "True",
        "auth_ldap_ca_file": "/etc/pulp/ldap/ca.crt",
    }


def sso_settings() -> dict[str, str]:
    return {
        "social_auth_keycloak_key": "pulp",
        "social_auth_keycloak_secret": secrets.token_hex(16),
        "social_auth_keycloak_public_key": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        "keycloak_host": "keycloak.example.org",
        "keycloak_protocol": "https",
        "keycloak_port": "8443",
        "keycloak_realm": "pulp",
        "keycloak_admin_role": "pulp-admin",
    }


@pytest.fixture(scope="module")
def auth(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEnv]:
    if not (IMAGES / OTELCOL_ARCHIVE).is_file():
        pytest.fail(f"image {IMAGES / OTELCOL_ARCHIVE} missing: run `make images`", pytrace=False)
    started = time.monotonic()
    client = real_node.client
    state = tmp_path_factory.mktemp("auth")
    # gpg needs a short home path (its agent socket lives there)
    gnupg = Path(tempfile.mkdtemp(prefix="auth-gpg-"))
    users = {
        "alice": User("alice", secrets.token_urlsafe(12), 10001),
        "bob": User("bob", secrets.token_urlsafe(12), 10002),
    }
    admin_ldap = secrets.token_urlsafe(12)
    passphrase = secrets.token_urlsafe(12)
    fingerprint, key = make_signing_key(gnupg, passphrase)
    sso = sso_settings()
    real_node.namespace(NAMESPACE)
    try:
        with (
            running_slapd(
                state, real_node.node.node_ip, admin_ldap, list(users.values()), {GROUP: ["alice"]}
            ) as ldap,
            real_node.operator([NAMESPACE], log_name="test_auth"),
        ):
            for obj in (
                secret("auth-ldap", ldap_config(ldap.uri, admin_ldap)),
                secret("auth-ldap-ca", {"ca.crt": ldap.tls.ca_pem}),
                secret("auth-sso", sso),
                secret(
                    "auth-signing-key",
                    {"signing_service.gpg": key, "signing_service.passphrase": passphrase},
                ),
                secret(
                    "auth-signing-scripts",
                    {
                        "rpm_script.sh": SIGN_SCRIPT,
                        "collection_script.sh": SIGN_SCRIPT,
                        "apt_script.sh": APT_SCRIPT,
                    },
                ),
            ):
                client.create(obj)
            settings_cm, pulp = pulp_manifests(NAME, NAMESPACE, NODEPORT)
            pulp["spec"].update(
                {
                    "ldap": {"config": "auth-ldap", "ca": "auth-ldap-ca"},
                    "sso_secret": "auth-sso",
                    "signing_secret": "auth-signing-key",
                    "signing_scripts": "auth-signing-scripts",
                    "telemetry": {
                        "enabled": True,
                        "otel_collector_image_version": OTELCOL_VERSION,
                    },
                }
            )
            # metrics every 2 s instead of 60 s
            pulp["spec"]["api"]["env_vars"] = [
                {"name": "OTEL_METRIC_EXPORT_INTERVAL", "value": "2000"}
            ]
            client.create(cast(ConfigMap, ConfigMap.from_dict(settings_cm)))
            client.create(PulpResource.from_dict(pulp))
            env = AuthEnv(
                real_node,
                client,
                f"http://127.0.0.1:{NODEPORT}",
                "",
                users,
                gnupg,
                fingerprint,
                sso,
                tmp_path_factory.mktemp("pulp-cli-home"),
            )
            wait("Pulp Ready=True", env.ready, timeout=900, every=3)
            admin = client.get(Secret, names.admin_password(NAME), namespace=NAMESPACE)
            assert admin.data is not None
            env.admin_password = base64.b64decode(admin.data["password"]).decode()
            print(f"\nPulp ready {time.monotonic() - started:.0f}s after the start of the fixture")
            yield env
    finally:
        real_node.delete_namespaces(NAMESPACE)
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], check=False)


# --- LDAP ---------------------------------------------------------------------------------------


def test_ldap_user_gets_the_permissions_of_its_ldap_group(auth: AuthEnv) -> None:
    """alice is in the LDAP group pulp-creators, bob is not; the Pulp group of that name holds
    the role that allows creating file repositories."""
    auth.pulp("group", "create", "--name", GROUP)
    auth.pulp("group", "role-assignment", "add", "--group", GROUP, "--role", ROLE, "--object", "")

    repo = auth.pulp("file", "repository", "create", "--name", "alice-repo", user="alice")
    assert repo["name"] == "alice-repo"
    members = auth.pulp("group", "user", "list", "--group", GROUP)
    assert [m["username"] for m in members] == ["alice"]  # mirrored from LDAP at login

    with pytest.raises(PulpError, match=r"is not authorized"):
        auth.pulp("file", "repository", "create", "--name", "bob-repo", user="bob")
    bob = auth.pulp("user", "show", "--username", "bob")
    assert bob["username"] == "bob"  # an LDAP user all the same: he logged in, without the role


def test_ldap_wrong_password_is_refused(auth: AuthEnv) -> None:
    with pytest.raises(PulpError, match=r"Authentication failed"):
        auth.pulp("file", "repository", "list", user="alice", password="not-" + "the-password")
    with pytest.raises(PulpError, match=r"Authentication failed"):
        auth.pulp("file", "repository", "list", user="mallory", password="whatever")
    assert auth.pulp("file", "repository", "list", user="alice") is not None


# --- SSO ----------------------------------------------------------------------------------------


def test_keycloak_settings_as_pulp_loads_them(auth: AuthEnv) -> None:
    """pulpcore's own settings loading (dynaconf: settings.py and the environment) in the api
    pod yields the values of sso_secret; the client secret is not in settings.py."""
    keys = sorted(k.upper() for k in auth.sso)
    program = (
        "import json; from django.conf import settings;"
        f" print(json.dumps({{k: getattr(settings, k, None) for k in {keys!r}}}))"
    )
    out = auth.exec("api", "api", "pulpcore-manager", "shell", "-c", program)
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == {k.upper(): v for k, v in auth.sso.items()}
    settings_py = auth.exec("api", "api", "cat", "/etc/pulp/settings.py")
    assert auth.sso["social_auth_keycloak_secret"] not in settings_py
    assert "KEYCLOAK_REALM = 'pulp'" in settings_py


# --- telemetry ----------------------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        text: str = r.read().decode()
        return text


def test_telemetry_request_metrics_on_the_collector_service(auth: AuthEnv) -> None:
    svc = auth.client.get(Service, names.otel_collector_service(NAME), namespace=NAMESPACE)
    assert svc.spec is not None
    assert svc.spec.ports is not None
    assert [p.port for p in svc.spec.ports] == [8889]
    url = f"http://{svc.spec.clusterIP}:8889/metrics"
    for _ in range(3):
        auth.pulp("file", "repository", "list")

    def request_metrics() -> list[str]:
        return [
            line
            for line in scrape(url).splitlines()
            if line.startswith("pulp_api_request_duration") and "_count" in line
        ]

    def listed() -> list[str]:
        # pulpcore records the route (not the path) and the status class of each request
        return [
            line
            for line in request_metrics()
            if "repositories/file/file/" in line
            and 'http_method="GET"' in line
            and 'http_status_code="2xx"' in line
            and float(line.rsplit(" ", 1)[1]) >= 3  # the three lists above, at least
        ]

    wait("api.request_duration of the repository lists in the collector", listed, 120)


# --- signing ------------------------------------------------------------------------------------


def test_signing_services_are_registered_with_the_passphrase_protected_key(auth: AuthEnv) -> None:
    def registered() -> dict[str, Any]:
        status = auth.pulp_cr().get("status") or {}
        return status if status.get("signing_services_hash") else {}

    status = wait("the signing Job recorded in status", registered, timeout=300)
    assert status["signing_key_fingerprint"] == auth.fingerprint
    services = {s["name"]: s for s in auth.pulp("signing-service", "list")}
    assert set(services) == {
        "rpm-signing-service",
        "collection-signing-service",
        "apt-signing-service",
    }
    for service in services.values():
        assert service["pubkey_fingerprint"] == auth.fingerprint
        assert service["script"].startswith("/var/lib/pulp/scripts/")


def test_the_worker_signs_with_the_service_and_gpg_verifies(auth: AuthEnv, tmp_path: Path) -> None:
    """The worker pods (where signing tasks run) sign with the registered service: its script,
    the key imported by the gpg-config init container and the passphrase file."""
    payload = secrets.token_hex(32)
    program = (
        "import json, pathlib;"
        " from pulpcore.app.models.content import AsciiArmoredDetachedSigningService as S;"
        " path = pathlib.Path('/var/lib/pulp/tmp/signed.txt');"
        f" path.write_text({payload!r});"
        " result = S.objects.get(name='rpm-signing-service').sign(str(path));"
        " print(json.dumps(pathlib.Path(result['signature']).read_text()))"
    )
    out = auth.exec("worker", "worker", "pulpcore-manager", "shell", "-c", program)
    signature = json.loads(out.strip().splitlines()[-1])
    assert signature.startswith("-----BEGIN PGP SIGNATURE-----")
    (tmp_path / "signed.txt").write_text(payload)
    gpg_verify = ["gpg", "--homedir", str(auth.gnupg), "--batch", "--verify"]
    (tmp_path / "signed.txt.asc").write_text(signature)
    verify = subprocess.run(
        [
            *gpg_verify,
            "--status-fd",
            "1",
            str(tmp_path / "signed.txt.asc"),
            str(tmp_path / "signed.txt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert f"[GNUPG:] VALIDSIG {auth.fingerprint}" in verify.stdout
    (tmp_path / "signed.txt").write_text(payload + "tampered")
    tampered = subprocess.run(
        [*gpg_verify, str(tmp_path / "signed.txt.asc"), str(tmp_path / "signed.txt")],
        capture_output=True,
        check=False,
    )
    assert tampered.returncode != 0


def download(url: str, dest: Path) -> Path:
    with urllib.request.urlopen(url, timeout=60) as r:
        dest.write_bytes(r.read())
    return dest


def test_rpm_repository_metadata_signed_by_the_rpm_service(auth: AuthEnv, tmp_path: Path) -> None:
    """pulp_rpm signs repomd.xml of a publication with rpm-signing-service (upstream #1401)."""
    repo = auth.api(
        "POST",
        "/pulp/api/v3/repositories/rpm/rpm/",
        json={
            "name": "signed-rpm",
            "metadata_signing_service": auth.signing_service("rpm-signing-service"),
        },
    )
    (publication,) = auth.api(
        "POST", "/pulp/api/v3/publications/rpm/rpm/", json={"repository": repo["pulp_href"]}
    )
    auth.api(
        "POST",
        "/pulp/api/v3/distributions/rpm/rpm/",
        json={"name": "signed-rpm", "base_path": "signed-rpm", "publication": publication},
    )
    base = f"{auth.base_url}/pulp/content/signed-rpm/repodata"
    repomd = download(f"{base}/repomd.xml", tmp_path / "repomd.xml")
    signature = download(f"{base}/repomd.xml.asc", tmp_path / "repomd.xml.asc")
    assert f"[GNUPG:] VALIDSIG {auth.fingerprint}" in auth.verify(signature, repomd)


def test_apt_verifies_a_release_signed_by_the_apt_service(auth: AuthEnv, tmp_path: Path) -> None:
    """pulp_deb signs Release/InRelease with apt-signing-service (upstream #1335); apt checks the
    signature against the key's public part (no trusted=yes) and refuses another key."""
    deb = deb_package(tmp_path, secrets.token_hex(16))
    repo = auth.api(
        "POST",
        "/pulp/api/v3/repositories/deb/apt/",
        json={"name": "signed-deb", "signing_service": auth.signing_service("apt-signing-service")},
    )
    with deb.open("rb") as f:
        auth.api(
            "POST",
            "/pulp/api/v3/content/deb/packages/",
            data={"repository": repo["pulp_href"]},
            files={"file": (deb.name, f)},
        )
    (publication,) = auth.api(
        "POST",
        "/pulp/api/v3/publications/deb/apt/",
        json={"repository": repo["pulp_href"], "simple": True},
    )
    auth.api(
        "POST",
        "/pulp/api/v3/distributions/deb/apt/",
        json={"name": "signed-deb", "base_path": "signed-deb", "publication": publication},
    )
    dists = f"{auth.base_url}/pulp/content/signed-deb/dists/default"
    release = download(f"{dists}/Release", tmp_path / "Release")
    detached = download(f"{dists}/Release.gpg", tmp_path / "Release.gpg")
    assert f"[GNUPG:] VALIDSIG {auth.fingerprint}" in auth.verify(detached, release)

    keyring = tmp_path / "pulp-e2e.gpg"
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--homedir", str(auth.gnupg), "--export", auth.fingerprint],
            capture_output=True,
            check=True,
        ).stdout
    )

    def apt_update(signed_by: Path, state: Path) -> subprocess.CompletedProcess[str]:
        for d in ("lists/partial", "cache/archives/partial", "etc"):
            (state / d).mkdir(parents=True)
        (state / "status").write_text("")
        (state / "etc/sources.list").write_text(
            f"deb [signed-by={signed_by}] {auth.base_url}/pulp/content/signed-deb/ default all\n"
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
        out = subprocess.run(
            ["apt-get", *options, "update"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode == 0:
            shown = run("apt-cache", *options, "show", "plugins-e2e-hello")
            assert "plugins-e2e-hello" in shown
        return out

    good = apt_update(keyring, tmp_path / "apt-good")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "NO_PUBKEY" not in good.stdout + good.stderr

    other_home = Path(tempfile.mkdtemp(prefix="auth-gpg-other-"))
    try:
        make_signing_key(other_home, "other")
        other = tmp_path / "other.gpg"
        other.write_bytes(
            subprocess.run(
                ["gpg", "--homedir", str(other_home), "--export"], capture_output=True, check=True
            ).stdout
        )
    finally:
        subprocess.run(["gpgconf", "--homedir", str(other_home), "--kill", "all"], check=False)
    bad = apt_update(other, tmp_path / "apt-bad")
    assert bad.returncode != 0 or "NO_PUBKEY" in bad.stdout + bad.stderr, bad.stdout


# --- telemetry off (last: it rolls the api pods) --------------------------------------------------


def test_telemetry_off_removes_the_collector(auth: AuthEnv) -> None:
    auth.client.patch(
        PulpResource,
        NAME,
        {"spec": {"telemetry": {"enabled": False}}},
        namespace=NAMESPACE,
        patch_type=PatchType.MERGE,
    )

    def gone() -> bool:
        services = auth.client.list(Service, namespace=NAMESPACE)
        config_maps = auth.client.list(ConfigMap, namespace=NAMESPACE)
        names_left = {s.metadata.name for s in services if s.metadata} | {
            c.metadata.name for c in config_maps if c.metadata
        }
        return not names_left & {
            names.otel_collector_service(NAME),
            names.otel_collector_config(NAME),
        }

    wait("the collector Service and ConfigMap deleted", gone, timeout=120)

    def api_pods_without_sidecar() -> bool:
        pods = list(auth.client.list(Pod, namespace=NAMESPACE, labels=selector("api")))
        return bool(pods) and all(
            p.spec is not None and [c.name for c in p.spec.containers] == ["api"] for p in pods
        )

    wait("only api pods without the collector sidecar", api_pods_without_sidecar, timeout=400)
    wait("Ready again", auth.ready, timeout=400, every=3)
    assert auth.pulp_cr()["status"]["telemetry_enabled"] is False
