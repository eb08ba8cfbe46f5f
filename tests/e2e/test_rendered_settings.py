"""The Pulp image with what the operator renders, without a cluster: settings and telemetry.

The image archive of the end-to-end tests is unpacked and pulpcore-manager runs in it (chroot, in
private mount and PID namespaces) with the rendered settings.py and the environment the pods get:
the LDAP block (django-auth-ldap's LDAPSearch, PosixGroupType, dicts, booleans, the CA option)
and the Keycloak settings of sso_secret load as Django settings; and pulpcore's metrics reach
Prometheus through the collector with the configuration of the operator's ConfigMap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pulp_operator import names
from pulp_operator.desired import telemetry
from pulp_operator.render import render

from .common import IMAGES, PULP_TAG, wait
from .ldapserver import User, running_slapd

pytestmark = pytest.mark.e2e

ARCHIVE = IMAGES / f"pulp-minimal-{PULP_TAG}.oci.tar"
LDAP = {
    "auth_ldap_server_uri": "ldaps://ldap.example.org:636",
    "auth_ldap_bind_dn": "cn=admin,dc=example,dc=org",
    "auth_ldap_bind_password": "true",  # dynaconf would make it a bool
    "auth_ldap_user_search": (
        'LDAPSearch("ou=users,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(uid=%(user)s)")'
    ),
    "auth_ldap_group_search": (
        'LDAPSearch("ou=groups,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(objectClass=posixGroup)")'
    ),
    "auth_ldap_group_type": "PosixGroupType(name_attr='cn')",
    "auth_ldap_mirror_groups": "True",
    "auth_ldap_start_tls": "false",
    "auth_ldap_user_flags_by_group": '{"is_superuser": "cn=admins,ou=groups,dc=example,dc=org"}',
    "auth_ldap_ca_file": "/etc/pulp/certs/ldap-ca.crt",
}
SSO = {
    "social_auth_keycloak_key": "pulp",
    "social_auth_keycloak_secret": "12345",  # digits: dynaconf would make it an int
    "social_auth_keycloak_public_key": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
    "keycloak_host": "keycloak.example.org",
    "keycloak_protocol": "https",
    "keycloak_port": "8443",
    "keycloak_realm": "pulp",
    "keycloak_group_token_claim": "groups",
}


# What the pods get besides settings.py: values from their Secrets (settings.secret_env), the
# image's environment.
BASE_ENV = {
    "PULP_SECRET_KEY": "django-secret",
    # as Kubernetes expands "@str $(SECRET_...)" (settings.string_secret_env)
    "PULP_AUTH_LDAP_BIND_PASSWORD": "@str " + LDAP["auth_ldap_bind_password"],
    "PULP_SOCIAL_AUTH_KEYCLOAK_SECRET": "@str " + SSO["social_auth_keycloak_secret"],
    "PULP_SETTINGS": "/etc/pulp/settings.py",
    "DJANGO_SETTINGS_MODULE": "pulpcore.app.settings",
    "GIT_PYTHON_REFRESH": "quiet",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
}
API_ENV = [f"{e['name']}={e['value']}" for e in telemetry.api_env_values("http/protobuf")]


def run_in_image(
    root: Path, env: dict[str, str], *command: str
) -> subprocess.CompletedProcess[str]:
    """`command` chrooted in the image, in private mount and PID namespaces (the host's network)."""
    script = (
        'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" &&'
        ' exec chroot "$0" /usr/bin/env -i "$@"'
    )
    key = root / "etc/pulp/keys/database_fields.symmetric.key"
    key.write_text("hNRyF7ZkVLgHl7VGtMNy2w1OXqCcv-JqoZf7Cm8mi-4=\n")
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private"]
        + ["/bin/sh", "-c", script, str(root)]
        + [f"{k}={v}" for k, v in env.items()]
        + list(command),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root file system of the Pulp image archive (all its layers, in order)."""
    if not ARCHIVE.is_file():
        pytest.fail(f"{ARCHIVE} missing: run `make images`", pytrace=False)
    if not shutil.which("unshare") or not shutil.which("chroot"):
        pytest.fail("unshare and chroot (util-linux, coreutils) are needed", pytrace=False)
    work = tmp_path_factory.mktemp("image")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(work / "oci", filter="data")
    blobs = work / "oci/blobs/sha256"
    index = json.loads((work / "oci/index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    root = work / "root"
    root.mkdir()
    for layer in manifest["layers"]:
        # the layers are the image's own: extract them as root keeps owners and modes
        subprocess.run(
            ["tar", "-xzf", str(blobs / layer["digest"].split(":")[1]), "-C", str(root)],
            check=True,
        )
    return root


def rendered_settings(ldap: dict[str, str] = LDAP) -> str:
    pulp = {
        "apiVersion": "repo-manager.pulpproject.org/v1",
        "kind": "Pulp",
        "metadata": {"name": "settings", "namespace": "auth"},
        "spec": {
            "file_storage_storage_class": "standard",
            "ldap": {"config": "ldap", "ca": "ldap-ca"},
            "sso_secret": "sso",
        },
    }
    docs = [secret("ldap", ldap), secret("ldap-ca", {"ca.crt": "PEM"}), secret("sso", SSO), pulp]
    (server,) = [
        o
        for o in render(docs).objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == names.server_settings("settings")
    ]
    text: str = server["stringData"]["settings.py"]
    return text


def test_pulp_loads_the_rendered_ldap_and_keycloak_settings(rootfs: Path) -> None:
    text = rendered_settings()
    assert "12345" not in text
    assert "BIND_PASSWORD = " not in text
    (rootfs / "etc/pulp/settings.py").write_text(text)
    keys = [k.upper() for k in (*LDAP, *SSO) if k != "auth_ldap_ca_file"]
    program = (
        "import json, ldap; from django.conf import settings;"
        f" values = {{k: getattr(settings, k, None) for k in {keys!r}}};"
        " values['_search'] = type(settings.AUTH_LDAP_USER_SEARCH).__name__;"
        " values['_group_type'] = type(settings.AUTH_LDAP_GROUP_TYPE).__name__;"
        " values['_ca'] = settings.AUTH_LDAP_GLOBAL_OPTIONS.get(ldap.OPT_X_TLS_CACERTFILE);"
        " values['_backends'] = list(settings.AUTHENTICATION_BACKENDS);"
        " print(json.dumps(values, default=str))"
    )
    out = run_in_image(rootfs, BASE_ENV, "pulpcore-manager", "shell", "-c", program)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["AUTH_LDAP_SERVER_URI"] == LDAP["auth_ldap_server_uri"]
    assert loaded["AUTH_LDAP_BIND_PASSWORD"] == LDAP["auth_ldap_bind_password"]
    assert loaded["AUTH_LDAP_MIRROR_GROUPS"] is True
    assert loaded["AUTH_LDAP_START_TLS"] is False
    assert loaded["AUTH_LDAP_USER_FLAGS_BY_GROUP"] == {
        "is_superuser": "cn=admins,ou=groups,dc=example,dc=org"
    }
    assert loaded["_search"] == "LDAPSearch"
    assert loaded["_group_type"] == "PosixGroupType"
    assert loaded["_ca"] == LDAP["auth_ldap_ca_file"]
    assert loaded["_backends"][0] == "django_auth_ldap.backend.LDAPBackend"
    assert "pulpcore.backends.ObjectRolePermissionBackend" in loaded["_backends"]
    for key_name, value in SSO.items():
        assert loaded[key_name.upper()] == value, key_name


OTELCOL = Path.home() / ".cache/pulp-operator/otelcol/0.165.0/otelcol"


def test_pulpcore_metrics_reach_prometheus_through_the_collector(
    rootfs: Path, tmp_path: Path
) -> None:
    """The collector of the stand-in image with the configuration of the operator's ConfigMap
    receives pulpcore's api.request_duration (pulpcore's own middleware, OTEL_ENABLED, in the
    Pulp image) over OTLP/HTTP and serves it to Prometheus on port 8889 (on this host's loopback,
    where a pod's containers would use localhost)."""
    if not OTELCOL.is_file():
        pytest.fail(f"{OTELCOL} missing: run `make images`", pytrace=False)
    config = tmp_path / "otel-collector-config.yaml"
    config.write_text(telemetry.collector_config())
    log = (tmp_path / "otelcol.log").open("wb")
    collector = subprocess.Popen(
        [str(OTELCOL), "--config", f"file:{config}"], stdout=log, stderr=subprocess.STDOUT
    )
    try:

        def scrape() -> str:
            assert collector.poll() is None, (tmp_path / "otelcol.log").read_text()
            with urllib.request.urlopen("http://127.0.0.1:8889/metrics", timeout=5) as r:
                text: str = r.read().decode()
                return text or "up"

        wait("the collector's Prometheus endpoint", scrape, 60, 0.5)
        (rootfs / "etc/pulp/settings.py").write_text(rendered_settings())
        program = (
            "import time; from django.conf import settings; from django.http import HttpResponse;"
            " assert settings.OTEL_ENABLED is True, settings.OTEL_ENABLED;"
            " assert 'pulpcore.middleware.DjangoMetricsMiddleware' in settings.MIDDLEWARE;"
            " from django.test import RequestFactory;"
            " from pulpcore.middleware import DjangoMetricsMiddleware;"
            " middleware = DjangoMetricsMiddleware(lambda request: HttpResponse('ok'));"
            " [middleware(RequestFactory().get('/pulp/api/v3/status/')) for _ in range(3)];"
            " time.sleep(3)"
        )
        env = {
            **BASE_ENV,
            **dict(e.split("=", 1) for e in API_ENV),
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
        out = run_in_image(rootfs, env, "pulpcore-manager", "shell", "-c", program)
        assert out.returncode == 0, out.stderr[-3000:]

        def request_counts() -> list[str]:
            return [
                line
                for line in scrape().splitlines()
                if line.startswith("pulp_api_request_duration_milliseconds_count")
                and 'http_method="GET"' in line
                and 'http_status_code="2xx"' in line
                and line.rsplit(" ", 1)[1] == "3"
            ]

        wait("three GETs counted in pulp_api_request_duration", request_counts, 30, 0.5)
    finally:
        collector.terminate()
        collector.wait(10)
        log.close()


def test_the_image_binds_to_slapd_over_tls_with_the_rendered_ldap_settings(
    rootfs: Path, tmp_path: Path
) -> None:
    """python-ldap of the image, configured by the rendered settings (the CA of spec.ldap.ca at
    auth_ldap_ca_file, the searches of the Secret), against a real slapd over ldaps://: a user's
    password is checked, the user search and the posixGroup search find the user's group."""
    password = "alice-" + "pw"
    users = [User("alice", password, 10001), User("bob", "bob-" + "pw", 10002)]
    with running_slapd(
        tmp_path, "127.0.0.1", "admin-" + "pw", users, {"pulp-creators": ["alice"]}
    ) as server:
        ldap_config = {**LDAP, "auth_ldap_server_uri": server.uri}
        (rootfs / "etc/pulp/settings.py").write_text(rendered_settings(ldap_config))
        ca = rootfs / LDAP["auth_ldap_ca_file"].lstrip("/")
        ca.parent.mkdir(parents=True, exist_ok=True)
        ca.write_text(server.tls.ca_pem)
        program = (
            "import json, ldap; from django.conf import settings;"
            " [ldap.set_option(k, v) for k, v in settings.AUTH_LDAP_GLOBAL_OPTIONS.items()];"
            " c = ldap.initialize(settings.AUTH_LDAP_SERVER_URI);"
            " c.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD);"
            " (dn, attrs), = settings.AUTH_LDAP_USER_SEARCH.execute(c, {'user': 'alice'});"
            " groups = settings.AUTH_LDAP_GROUP_SEARCH.execute(c, filterargs=());"
            " member_of = sorted("
            "a['cn'][0] for d, a in groups if 'alice' in a.get('memberUid', []));"
            " u = ldap.initialize(settings.AUTH_LDAP_SERVER_URI);"
            f" u.simple_bind_s(dn, {password!r});"
            " bad = ldap.initialize(settings.AUTH_LDAP_SERVER_URI);"
            " refused = False\n"
            "try:\n    bad.simple_bind_s(dn, 'wrong')\n"
            "except ldap.INVALID_CREDENTIALS:\n    refused = True\n"
            "print(json.dumps({'dn': dn, 'groups': member_of, 'refused': refused}))"
        )
        env = {**BASE_ENV, "PULP_AUTH_LDAP_BIND_PASSWORD": "@str " + server.admin_password}
        out = run_in_image(rootfs, env, "pulpcore-manager", "shell", "-c", program)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result == {
            "dn": "uid=alice,ou=users,dc=example,dc=org",
            "groups": ["pulp-creators"],
            "refused": True,
        }
        # without the CA file nothing connects (python-ldap refuses the TLS context, or the
        # handshake fails): the CA mounted from spec.ldap.ca is what makes it work
        ca.unlink()
        out = run_in_image(rootfs, env, "pulpcore-manager", "shell", "-c", program)
        assert out.returncode != 0
        assert any(s in out.stderr for s in ("option error", "SERVER_DOWN", "certificate")), (
            out.stderr[-2000:]
        )
