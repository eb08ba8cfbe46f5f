"""One Pulp on the real node against real servers on this machine: external PostgreSQL and Redis,
then S3 (versitygw), Azure Blob (Azurite) and Google Cloud Storage (fake-gcs-server) in turn, each
with redirect_to_object_storage off and on, then a trusted CA without and with a ConfigMap key.

The Pulp has the shape of the upstream CI samples (simple.s3.ci.yaml and its ci-assets Secret,
simple.azure.ci.yaml, simple-external-db.yaml, simple-external-cache.yaml) with this machine's
addresses. Switching one Pulp between backends is what the operator must handle anyway (settings,
rollout, migrations that copy the backend and the redirect flag into Pulp's default domain) and
costs a rollout instead of a new Pulp per backend. Every upload is new content under a new base
path, so that neither deduplication nor the content cache can answer for an earlier backend.
The tests run in order on the same Pulp.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Secret, Service
from lightkube.types import PatchType

from pulp_operator import desired, names
from pulp_operator.api.pulp import PulpSpec
from pulp_operator.desired.trust import INJECT_LABEL
from pulp_operator.kube import PulpResource

from . import servers
from .common import PULP_TAG, as_dict, pulp_cli, run_pulp_cli, wait
from .conftest import RealNode

# A test here may wait for two rollouts (and the fixture for a node and a Pulp) on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

NAME = "example-pulp"
NAMESPACE = "storage-services"
NODEPORT = 30220
BASE_URL = f"http://127.0.0.1:{NODEPORT}"
STORAGE_SECRET = "example-pulp-object-storage"
BUCKET = "pulp3"
AZURE_CONTAINER = "pulp-test"
AZURE_PATH = "pulp3"
PULPCORE = ("api", "content", "worker")


@dataclass
class Env:
    node: RealNode
    home: Path
    password: str = field(repr=False)
    s3: servers.S3Server
    azure: servers.AzureServer
    gcs: servers.GcsServer
    db: servers.Postgres
    redis: servers.Redis
    workdir: Path
    uploads: dict[str, bytes] = field(default_factory=dict)

    @property
    def client(self) -> Client:
        return self.node.client

    @property
    def node_ip(self) -> str:
        return self.node.node.node_ip

    def run_pulp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_pulp_cli(BASE_URL, "admin", self.password, self.home, *args)

    def pulp(self, *args: str) -> Any:
        return pulp_cli(BASE_URL, self.password, self.home, *args)

    def pulp_cr(self) -> dict[str, Any]:
        return as_dict(self.client.get(PulpResource, NAME, namespace=NAMESPACE))

    def condition(self, kind: str) -> dict[str, Any]:
        for cond in (self.pulp_cr().get("status") or {}).get("conditions") or []:
            if cond["type"] == kind:
                return dict(cond)
        return {}

    def patch_spec(self, patch: dict[str, Any]) -> None:
        self.client.patch(
            PulpResource, NAME, {"spec": patch}, namespace=NAMESPACE, patch_type=PatchType.MERGE
        )

    def replace_secret(self, name: str, data: dict[str, str]) -> None:
        """The Secret with exactly this data (keys not given are removed)."""
        body = {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        try:
            self.client.patch(Secret, name, body, namespace=NAMESPACE, patch_type=PatchType.MERGE)
        except ApiError:
            secret = Secret.from_dict({"metadata": {"name": name, "namespace": NAMESPACE}, **body})
            self.client.create(cast(Secret, secret))
            return
        live = self.client.get(Secret, name, namespace=NAMESPACE)
        stale = set(live.data or {}) - set(data)
        if stale:
            self.client.patch(
                Secret,
                name,
                {"data": dict.fromkeys(stale)},
                namespace=NAMESPACE,
                patch_type=PatchType.MERGE,
            )

    def template_hashes(self) -> dict[str, str]:
        hashes = {}
        for c in PULPCORE:
            dep = self.client.get(Deployment, f"{NAME}-{c}", namespace=NAMESPACE)
            assert dep.spec is not None
            assert dep.spec.template.metadata is not None
            annotations = dep.spec.template.metadata.annotations or {}
            hashes[c] = annotations.get(names.CONFIG_HASH_ANNOTATION, "")
        return hashes

    def wait_rolled(self, before: dict[str, str]) -> None:
        """Until the operator rolled the pulpcore pods onto a new configuration, every new pod
        is ready and no old one is left, the migrations are done and the Pulp is Ready."""
        started = time.monotonic()
        wait(
            "new pod templates",
            lambda: all(self.template_hashes()[c] != before[c] for c in PULPCORE),
            180,
        )

        def rolled() -> bool:
            for c in PULPCORE:
                dep = self.client.get(Deployment, f"{NAME}-{c}", namespace=NAMESPACE)
                st, want = dep.status, (dep.spec.replicas if dep.spec else 1)
                generation = (dep.metadata.generation if dep.metadata else None) or 0
                if st is None or (st.observedGeneration or 0) < generation:
                    return False
                if not (st.replicas == st.updatedReplicas == st.readyReplicas == want):
                    return False
            cr = self.pulp_cr()
            spec = PulpSpec.model_validate(cr["spec"])
            migrated = (cr.get("status") or {}).get("migrated_settings")
            return (
                migrated == desired.migration_settings(spec)
                and self.condition("Ready").get("status") == "True"
            )

        wait("the rollout, the migrations and Ready", rolled, 600, 3)
        print(f"\nrolled in {time.monotonic() - started:.0f}s")

    def reconfigure(self, change: Any) -> None:
        before = self.template_hashes()
        change()
        self.wait_rolled(before)

    def upload(self, tag: str) -> tuple[bytes, str, str]:
        """New content in a new repository, published and distributed at base path `tag`;
        (payload, content URL, the artifact's storage name)."""
        payload = secrets.token_bytes(150_000)
        path = Path(tempfile.mkdtemp(dir=self.workdir)) / f"{tag}.bin"
        path.write_bytes(payload)
        self.pulp("file", "repository", "create", "--name", tag)
        self.pulp(
            "file",
            "content",
            "upload",
            "--file",
            str(path),
            "--relative-path",
            path.name,
            "--repository",
            f"file:file:{tag}",
        )
        publication = self.pulp("file", "publication", "create", "--repository", tag)
        self.pulp(
            "file",
            "distribution",
            "create",
            "--name",
            tag,
            "--base-path",
            tag,
            "--publication",
            publication["pulp_href"],
        )
        (artifact,) = self.pulp("artifact", "list", "--sha256", hashlib.sha256(payload).hexdigest())
        self.uploads[tag] = payload
        return payload, f"{BASE_URL}/pulp/content/{tag}/{path.name}", artifact["file"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: (status, headers, body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def assert_served_by_content_app(url: str, payload: bytes) -> None:
    status, headers, body = fetch(url)
    assert status == 200, (status, headers)
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()


def assert_redirected_to(url: str, payload: bytes, object_store: str) -> str:
    status, headers, _ = fetch(url)
    assert status == 302, (status, headers)
    location = headers["Location"]
    assert location.startswith(object_store + "/"), location
    got_status, _, body = fetch(location)  # the presigned URL works from this machine
    assert got_status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    return location


def settings_map(node_ip: str, s3_endpoint: str) -> dict[str, str]:
    """simple.s3.ci.yaml's settings ConfigMap with this machine's addresses."""
    return {
        "analytics": "False",
        "token_server": f'"{BASE_URL}/token/"',
        "content_origin": f'"{BASE_URL}"',
        "ansible_api_hostname": f'"{BASE_URL}"',
        "pypi_api_hostname": f'"{BASE_URL}"',
        "api_root": '"/pulp/"',
        "allowed_export_paths": '[ "/tmp" ]',
        "allowed_import_paths": '[ "/tmp" ]',
        "aws_s3_endpoint_url": f'"{s3_endpoint}"',
    }


def s3_ci_secret(s3: servers.S3Server) -> dict[str, str]:
    """ci-assets/pulp-object-storage.aws.secret.yaml with this server's key pair."""
    return {
        "s3-access-key-id": s3.access_key,
        "s3-secret-access-key": s3.secret_key,
        "s3-bucket-name": BUCKET,
        "s3-region": "us-east-1",
    }


def create(client: Client, doc: dict[str, Any]) -> None:
    cls = {"Secret": Secret, "ConfigMap": ConfigMap, "Pulp": PulpResource}[doc["kind"]]
    client.create(cls.from_dict(doc))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def env(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    started = time.monotonic()
    host = real_node.node.node_ip
    workdir = tmp_path_factory.mktemp("storage-servers")
    home = tmp_path_factory.mktemp("storage-pulp-cli")
    real_node.namespace(NAMESPACE)
    try:
        with (
            servers.versitygw(host, workdir) as s3,
            servers.azurite(host, workdir) as azure,
            servers.fake_gcs_server(host, workdir) as gcs,
            servers.postgres(host, real_node.node.pod_cidr) as db,
            servers.redis(host, workdir) as cache,
            real_node.operator([NAMESPACE], log_name="test_services"),
        ):
            s3.client().create_bucket(Bucket=BUCKET)
            azure.client().create_container(AZURE_CONTAINER)
            gcs.create_bucket(BUCKET)
            password = secrets.token_urlsafe(16)
            meta = {"namespace": NAMESPACE}
            docs: list[dict[str, Any]] = [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "example-pulp-admin-password", **meta},
                    "stringData": {"password": password},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "external-database", **meta},
                    "stringData": {
                        "POSTGRES_HOST": db.host,
                        "POSTGRES_PORT": str(db.port),
                        "POSTGRES_USERNAME": db.user,
                        "POSTGRES_PASSWORD": db.password,
                        "POSTGRES_DB_NAME": db.database,
                        "POSTGRES_SSLMODE": "prefer",
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "external-redis", **meta},
                    "stringData": {
                        "REDIS_HOST": cache.host,
                        "REDIS_PORT": str(cache.port),
                        "REDIS_PASSWORD": cache.password,
                        "REDIS_DB": str(cache.db),
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": STORAGE_SECRET, **meta},
                    "stringData": s3_ci_secret(s3),
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "settings", **meta},
                    "data": settings_map(host, s3.endpoint),
                },
                {
                    "apiVersion": "repo-manager.pulpproject.org/v1",
                    "kind": "Pulp",
                    "metadata": {"name": NAME, **meta},
                    "spec": {
                        "image_version": PULP_TAG,
                        "image_web_version": PULP_TAG,
                        "admin_password_secret": "example-pulp-admin-password",
                        "ingress_type": "nodeport",
                        "nodeport_port": NODEPORT,
                        "object_storage_s3_secret": STORAGE_SECRET,
                        "custom_pulp_settings": "settings",
                        "database": {"external_db_secret": "external-database"},
                        "cache": {"enabled": True, "external_cache_secret": "external-redis"},
                        "api": {"replicas": 1, "gunicorn_workers": 1},
                        "content": {"replicas": 1, "gunicorn_workers": 1},
                        "worker": {"replicas": 1},
                        "web": {"replicas": 1},
                    },
                },
            ]
            for doc in docs:
                create(real_node.client, doc)
            env = Env(real_node, home, password, s3, azure, gcs, db, cache, workdir)
            wait(
                "Pulp Ready=True",
                lambda: env.condition("Ready").get("status") == "True",
                900,
                3,
            )
            print(f"\nPulp ready {time.monotonic() - started:.0f}s after the start of the fixture")
            yield env
    finally:
        real_node.delete_namespaces(NAMESPACE)


def test_external_database_and_cache(env: Env) -> None:
    status = env.pulp("status")
    assert status["database_connection"]["connected"] is True
    assert status["redis_connection"]["connected"] is True
    assert status["online_workers"]
    # Pulp's schema and its default domain live in the external server...
    assert int(env.db.sql("SELECT count(*) FROM django_migrations WHERE app = 'core'")) > 0
    assert env.db.sql("SELECT storage_class FROM core_domain WHERE name = 'default'") == (
        "storages.backends.s3.S3Storage"
    )
    # ...and the operator created no database or Redis of its own.
    absent: list[tuple[Any, str]] = [
        (StatefulSet, names.database(NAME)),
        (Service, names.database_service(NAME)),
        (Secret, names.postgres_configuration(NAME)),
        (Deployment, names.redis(NAME)),
        (Service, names.redis_service(NAME)),
        (PersistentVolumeClaim, names.redis_data(NAME)),
    ]
    for cls, obj_name in absent:
        with pytest.raises(ApiError) as exc:
            env.client.get(cls, obj_name, namespace=NAMESPACE)
        assert exc.value.status.code == 404, obj_name
    assert not list(env.client.list(StatefulSet, namespace=NAMESPACE))
    owned: dict[str, Any] = {names.OWNED_LABEL: NAME}
    deployments = {
        d.metadata.name
        for d in env.client.list(Deployment, namespace=NAMESPACE, labels=owned)
        if d.metadata
    }
    assert deployments == {f"{NAME}-{c}" for c in (*PULPCORE, "web")}
    assert not list(env.client.list(PersistentVolumeClaim, namespace=NAMESPACE))


def test_s3_upload_in_bucket_served_by_content_app(env: Env) -> None:
    """simple.s3.ci.yaml's shape: s3-region in the Secret, the endpoint as the custom setting
    aws_s3_endpoint_url; redirect_to_object_storage off (the default)."""
    payload, url, artifact = env.upload("s3-proxied")
    stored = env.s3.client().get_object(Bucket=BUCKET, Key=artifact)["Body"].read()
    assert stored == payload
    assert (env.s3.root / BUCKET / artifact).is_file()  # versitygw's posix folder: the real bytes
    assert_served_by_content_app(url, payload)
    # The second answer comes from the content cache in the external Redis (its database 3).
    _, headers, _ = fetch(url)
    assert headers.get("X-PULP-CACHE") == "HIT", headers
    assert int(env.redis.cli("DBSIZE")) > 0
    assert int(env.db.sql("SELECT count(*) FROM core_artifact")) >= 1


def test_s3_endpoint_in_secret_and_redirect(env: Env) -> None:
    """Upstream #882: s3-endpoint in the Secret, no s3-region and no custom setting; with
    redirect_to_object_storage the content app sends clients to a URL presigned for that
    endpoint."""

    def change() -> None:
        data = s3_ci_secret(env.s3)
        del data["s3-region"]
        env.replace_secret(STORAGE_SECRET, {**data, "s3-endpoint": env.s3.endpoint})
        env.client.patch(
            ConfigMap,
            "settings",
            {"data": {"aws_s3_endpoint_url": None}},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
        )
        env.patch_spec({"redirect_to_object_storage": True})

    env.reconfigure(change)
    payload, url, artifact = env.upload("s3-redirect")
    assert env.s3.client().get_object(Bucket=BUCKET, Key=artifact)["Body"].read() == payload
    location = assert_redirected_to(url, payload, f"{env.s3.endpoint}/{BUCKET}")
    assert "X-Amz-Signature=" in location


def test_azure_redirect_then_content_app(env: Env) -> None:
    """simple.azure.ci.yaml with its ci-assets Secret (Azurite's account and connection string)."""
    azure = env.azure

    def to_azure() -> None:
        env.replace_secret(
            "azure-storage",
            {
                "azure-account-name": azure.account,
                "azure-account-key": azure.key,
                "azure-container": AZURE_CONTAINER,
                "azure-container-path": AZURE_PATH,
                "azure-connection-string": azure.connection_string,
            },
        )
        env.patch_spec(
            {"object_storage_s3_secret": None, "object_storage_azure_secret": "azure-storage"}
        )

    env.reconfigure(to_azure)
    assert env.db.sql("SELECT storage_class FROM core_domain WHERE name = 'default'") == (
        "storages.backends.azure_storage.AzureStorage"
    )
    payload, url, artifact = env.upload("azure-redirect")
    blob = azure.client().get_blob_client(AZURE_CONTAINER, f"{AZURE_PATH}/{artifact}")
    assert blob.download_blob().readall() == payload
    location = assert_redirected_to(url, payload, f"{azure.blob_endpoint}/{AZURE_CONTAINER}")
    assert "sig=" in location

    env.reconfigure(lambda: env.patch_spec({"redirect_to_object_storage": False}))
    payload, url, artifact = env.upload("azure-proxied")
    assert (
        azure.client()
        .get_blob_client(AZURE_CONTAINER, f"{AZURE_PATH}/{artifact}")
        .download_blob()
        .readall()
        == payload
    )
    assert_served_by_content_app(url, payload)


def test_gcs_content_app_then_redirect(env: Env) -> None:
    """upstream's GCS keys (gcs-bucket-name, gcs-querystring-auth, ...) and no key file; the pods
    reach fake-gcs-server through STORAGE_EMULATOR_HOST (env_vars), where Google's client uses
    anonymous credentials: URLs cannot be signed, so gcs-querystring-auth is false (public
    object URLs) for the redirect."""
    emulator = [{"name": "STORAGE_EMULATOR_HOST", "value": env.gcs.endpoint}]

    def to_gcs() -> None:
        env.replace_secret(
            "gcs-storage",
            {
                "gcs-bucket-name": BUCKET,
                "gcs-querystring-auth": "false",
                "gcs-file-overwrite": "true",
            },
        )
        env.patch_spec(
            {
                "object_storage_azure_secret": None,
                "object_storage_gcs_secret": "gcs-storage",
                **{c: {"env_vars": emulator} for c in PULPCORE},
            }
        )

    env.reconfigure(to_gcs)
    payload, url, artifact = env.upload("gcs-proxied")
    assert artifact in env.gcs.object_names(BUCKET)
    assert env.gcs.download(BUCKET, artifact) == payload
    assert_served_by_content_app(url, payload)

    env.reconfigure(lambda: env.patch_spec({"redirect_to_object_storage": True}))
    payload, url, artifact = env.upload("gcs-redirect")
    assert env.gcs.download(BUCKET, artifact) == payload
    assert_redirected_to(url, payload, f"{env.gcs.endpoint}/{BUCKET}")


def remote_folder(folder: Path, count: int = 2) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    files = {f"f{i}.bin": secrets.token_bytes(40_000 + i) for i in range(count)}
    lines = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        lines.append(f"{name},{hashlib.sha256(data).hexdigest()},{len(data)}")
    (folder / "PULP_MANIFEST").write_text("\n".join(lines) + "\n")
    return files


def sync_repository(env: Env, name: str, url: str, policy: str) -> subprocess.CompletedProcess[str]:
    env.pulp("file", "remote", "create", "--name", name, "--url", url, "--policy", policy)
    env.pulp("file", "repository", "create", "--name", name, "--remote", name)
    return env.run_pulp("file", "repository", "sync", "--name", name)


def distribute(env: Env, name: str) -> None:
    publication = env.pulp("file", "publication", "create", "--repository", name)
    env.pulp(
        "file",
        "distribution",
        "create",
        "--name",
        name,
        "--base-path",
        name,
        "--publication",
        publication["pulp_href"],
    )


def test_trusted_ca_without_a_configmap_key(env: Env) -> None:
    """mount_trusted_ca alone: the operator creates N-user-ca-bundle for OpenShift's CNO; here
    the test plays the CNO's part and puts a local CA's bundle there."""
    ca = servers.Authority("pulp-e2e-ca-one")
    cert, key = ca.issue(env.node_ip, env.workdir / "tls-one")
    files = remote_folder(env.workdir / "remote-one")
    with servers.https_files(env.node_ip, env.workdir / "remote-one", cert, key) as remote:
        manifest = f"{remote.url}/PULP_MANIFEST"
        # The content app serves in these tests (the object-storage tests end redirecting).
        env.patch_spec({"mount_trusted_ca": True, "redirect_to_object_storage": False})
        bundle = names.trusted_ca_bundle(NAME)
        cm = wait(
            f"ConfigMap {bundle}",
            lambda: env.client.get(ConfigMap, bundle, namespace=NAMESPACE),
            120,
        )
        assert cm.metadata.labels[INJECT_LABEL] == "true"
        wait(
            "a condition naming the empty bundle",
            lambda: bundle in env.condition("Ready").get("message", ""),
            120,
        )
        # Not trusted yet: the sync fails on the certificate.
        refused = sync_repository(env, "tls-refused", manifest, "immediate")
        assert refused.returncode != 0
        assert "certificate" in (refused.stdout + refused.stderr).lower(), refused

        env.reconfigure(
            lambda: env.client.patch(
                ConfigMap,
                bundle,
                {"data": {"ca-bundle.crt": ca.pem}},
                namespace=NAMESPACE,
                patch_type=PatchType.MERGE,
            )
        )
        synced = env.run_pulp("file", "repository", "sync", "--name", "tls-refused")
        assert synced.returncode == 0, synced.stderr + synced.stdout
        assert {f"/{n}" for n in files} <= set(remote.requests)  # immediate: the worker fetched
        distribute(env, "tls-refused")
        assert_served_by_content_app(f"{BASE_URL}/pulp/content/tls-refused/f0.bin", files["f0.bin"])


def test_trusted_ca_from_a_configmap_key(env: Env) -> None:
    """mount_trusted_ca_configmap_key (simple-trust-manager.yaml's field) with another CA: the
    worker syncs on demand and the content app streams from the TLS remote."""
    ca = servers.Authority("pulp-e2e-ca-two")
    cert, key = ca.issue(env.node_ip, env.workdir / "tls-two")
    files = remote_folder(env.workdir / "remote-two")
    with servers.https_files(env.node_ip, env.workdir / "remote-two", cert, key) as remote:
        manifest = f"{remote.url}/PULP_MANIFEST"
        still_untrusted = sync_repository(env, "tls-lazy", manifest, "on_demand")
        assert still_untrusted.returncode != 0  # the bundle of the first CA is what is trusted
        create(
            env.client,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "trusted-ca-bundle", "namespace": NAMESPACE},
                "data": {"ca.pem": ca.pem},
            },
        )
        env.reconfigure(
            lambda: env.patch_spec({"mount_trusted_ca_configmap_key": "trusted-ca-bundle:ca.pem"})
        )
        synced = env.run_pulp("file", "repository", "sync", "--name", "tls-lazy")
        assert synced.returncode == 0, synced.stderr + synced.stdout
        assert not [p for p in remote.requests if p.endswith(".bin")]  # on demand: nothing yet
        distribute(env, "tls-lazy")
        assert_served_by_content_app(f"{BASE_URL}/pulp/content/tls-lazy/f1.bin", files["f1.bin"])
        assert remote.requests.count("/f1.bin") == 1  # streamed by the content app over TLS
    # The bundle ConfigMap of the first mode is kept: its data may be someone's.
    kept = env.client.get(ConfigMap, names.trusted_ca_bundle(NAME), namespace=NAMESPACE)
    assert "ca-bundle.crt" in (kept.data or {})
