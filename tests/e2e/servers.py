"""Real servers on this machine for the end-to-end tests, next to the real node: an S3 gateway
(versitygw), Azure Blob (Azurite), Google Cloud Storage (fake-gcs-server), PostgreSQL, Redis and
an HTTPS file server with certificates from a local CA.

They listen on the node's IP (the bridge gateway), which pods reach and so does this machine:
a URL one of these servers is known by works from a pod and from the test alike (presigned
object storage URLs included). Each is a context manager that starts its process, waits until it
answers and stops it (and removes its files) at the end. `hack/services/build.sh` (`make
services`) installs them; a missing one fails with that advice.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CACHE = Path(os.environ.get("PULP_OPERATOR_CACHE", Path.home() / ".cache/pulp-operator"))
VERSITYGW = CACHE / "versitygw/v1.8.0/versitygw"
FAKE_GCS_SERVER = CACHE / "fake-gcs-server/v1.56.1/fake-gcs-server"
AZURITE_BLOB = CACHE / "azurite/3.37.0/node_modules/.bin/azurite-blob"


def _require(path: Path) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} missing: run `make services`", pytrace=False)
    return path


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL (Debian's postgresql) missing: run `make services`", pytrace=False)
    return found[-1].parent


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} does not listen on {host}:{port}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _process(
    args: list[str], what: str, host: str, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        wait_port(host, port, proc, what, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    root: Path = Path()

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )


@contextlib.contextmanager
def versitygw(host: str, workdir: Path) -> Iterator[S3Server]:
    """versitygw's S3 gateway over a posix folder; the root key pair comes by environment."""
    binary = _require(VERSITYGW)
    port = free_port(host)
    root = workdir / "s3"
    root.mkdir(parents=True)
    server = S3Server(f"http://{host}:{port}", secrets.token_hex(10), secrets.token_hex(20), root)
    env = {"ROOT_ACCESS_KEY_ID": server.access_key, "ROOT_SECRET_ACCESS_KEY": server.secret_key}
    args = [str(binary), "--port", f"{host}:{port}", "posix", "--nometa", str(root)]
    with _process(args, "versitygw", host, port, workdir / "versitygw.log", env):
        yield server


@dataclass
class AzureServer:
    account: str
    key: str = field(repr=False)
    blob_endpoint: str = ""

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def client(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


@contextlib.contextmanager
def azurite(host: str, workdir: Path, account: str = "devstoreaccount1") -> Iterator[AzureServer]:
    """Azurite's blob service with an account key of its own (AZURITE_ACCOUNTS)."""
    binary = _require(AZURITE_BLOB)
    port = free_port(host)
    import base64

    key = base64.b64encode(secrets.token_bytes(64)).decode()
    location = workdir / "azurite"
    location.mkdir(parents=True)
    args = [
        str(binary),
        "--blobHost",
        host,
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--skipApiVersionCheck",
        "--loose",
    ]
    env = {"AZURITE_ACCOUNTS": f"{account}:{key}"}
    with _process(args, "azurite", host, port, workdir / "azurite.log", env):
        yield AzureServer(account, key, f"http://{host}:{port}/{account}")


@dataclass
class GcsServer:
    endpoint: str

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def create_bucket(self, name: str) -> None:
        self.api("POST", "/storage/v1/b?project=pulp", {"name": name})

    def object_names(self, bucket: str) -> list[str]:
        listing = self.api("GET", f"/storage/v1/b/{bucket}/o")
        return [item["name"] for item in listing.get("items", [])]

    def download(self, bucket: str, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        url = f"{self.endpoint}/storage/v1/b/{bucket}/o/{quoted}?alt=media"
        with urllib.request.urlopen(url, timeout=30) as r:
            data: bytes = r.read()
            return data


@contextlib.contextmanager
def fake_gcs_server(host: str, workdir: Path) -> Iterator[GcsServer]:
    """fake-gcs-server over plain HTTP; its public host is its own address, so that public object
    URLs (what django-storages hands out without signing) point back at it."""
    binary = _require(FAKE_GCS_SERVER)
    port = free_port(host)
    args = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        host,
        "-port",
        str(port),
        "-backend",
        "memory",
        "-public-host",
        f"{host}:{port}",
        "-external-url",
        f"http://{host}:{port}",
        "-log-level",
        "warn",
    ]
    with _process(args, "fake-gcs-server", host, port, workdir / "fake-gcs-server.log"):
        yield GcsServer(f"http://{host}:{port}")


@dataclass
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    socket_dir: Path = Path()

    def sql(self, query: str) -> str:
        """Run a query through the Unix socket as the superuser; the output unaligned."""
        out = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(_postgres_bin() / "psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-d",
                self.database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                query,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


@contextlib.contextmanager
def postgres(host: str, pod_cidr: str) -> Iterator[Postgres]:
    """A PostgreSQL cluster of Debian's postgresql (as the postgres user, in a folder of its own),
    listening on host with scram-sha-256 password logins from the pods' network."""
    bindir = _postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="pulp-e2e-pg-"))
    shutil.chown(workdir, "postgres", "postgres")
    data = workdir / "data"
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
    run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(bindir / "initdb"),
            "-D",
            str(data),
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
        ]
    )
    port = free_port(host)
    db = Postgres(host, port, "pulp", "pulp-admin", secrets.token_urlsafe(18), workdir)
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {pod_cidr} scram-sha-256\nhost all all {host}/32 scram-sha-256\n")
    args = ["runuser", "-u", "postgres", "--", str(bindir / "postgres"), "-D", str(data)]
    args += ["-c", f"listen_addresses={host}", "-p", str(port)]
    args += ["-c", f"unix_socket_directories={workdir}", "-c", "fsync=off"]
    log = workdir / "postgres.log"
    log.touch()
    shutil.chown(log, "postgres", "postgres")
    try:
        with _process(args, "postgres", host, port, log):
            # The password goes through psql's stdin, never a command line.
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(bindir / "psql"),
                    "-h",
                    str(workdir),
                    "-p",
                    str(port),
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                ],
                input=(
                    f"CREATE ROLE \"{db.user}\" LOGIN PASSWORD '{db.password}';\n"
                    f'CREATE DATABASE {db.database} OWNER "{db.user}";\n'
                ),
                text=True,
                check=True,
                capture_output=True,
                timeout=60,
            )
            yield db
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Redis:
    host: str
    port: int
    password: str = field(repr=False)
    db: int = 0

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", self.host, "-p", str(self.port), "-n", str(self.db), *args],
            env={**os.environ, "REDISCLI_AUTH": self.password},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip()


@contextlib.contextmanager
def redis(host: str, workdir: Path, db: int = 3) -> Iterator[Redis]:
    """Debian's redis-server with a password (in its config file, not on the command line)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server (Debian) missing: run `make services`", pytrace=False)
    port = free_port(host)
    server = Redis(host, port, secrets.token_urlsafe(18), db)
    folder = workdir / "redis"
    folder.mkdir(parents=True)
    conf = folder / "redis.conf"
    conf.write_text(
        f"bind {host}\nport {port}\nrequirepass {server.password}\nprotected-mode no\n"
        f'dir {folder}\nsave ""\nappendonly no\n'
    )
    conf.chmod(0o600)
    with _process(["redis-server", str(conf)], "redis-server", host, port, folder / "log"):
        yield server


@dataclass
class Authority:
    """A local certificate authority (ECDSA P-256)."""

    name: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, ip: str, folder: Path) -> tuple[Path, Path]:
        """A server certificate for an IP address; (certificate chain file, key file)."""
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / f"{self.name}.crt", folder / f"{self.name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return cert_file, key_file


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class TlsFileServer:
    url: str
    requests: list[str]


@contextlib.contextmanager
def https_files(host: str, folder: Path, cert: Path, key: Path) -> Iterator[TlsFileServer]:
    """HTTPS over a folder with the given certificate; records the paths asked for."""
    requests: list[str] = []

    class Handler(_Quiet):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        (host, 0), functools.partial(Handler, directory=str(folder))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsFileServer(f"https://{host}:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()
