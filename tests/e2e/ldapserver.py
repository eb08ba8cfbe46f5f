"""A real OpenLDAP server for the end-to-end tests: Debian's slapd with a throwaway configuration,
serving ldaps:// with a certificate of a CA made here, on the node's address (the pods reach it).

`hack/ldap/install.sh` installs slapd (make slapd).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .common import wait

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"


@dataclass(frozen=True)
class Tls:
    ca_pem: str
    cert_pem: str
    key_pem: str


def make_tls(ip: str) -> Tls:
    """A CA and a server certificate for `ip` signed by it (EC P-256, one day)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pulp-operator e2e LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Tls(
        ca_pem=ca.public_bytes(pem).decode(),
        cert_pem=cert.public_bytes(pem).decode(),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


@dataclass(frozen=True)
class User:
    uid: str
    password: str
    uid_number: int


@dataclass(frozen=True)
class LdapServer:
    uri: str
    admin_password: str
    tls: Tls
    ca_file: Path


def _config_ldif(state: Path, admin_password: str) -> str:
    schemas = "".join(
        f"include: file:///etc/ldap/schema/{s}.ldif\n\n"
        for s in ("core", "cosine", "nis", "inetorgperson")
    )
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {state}/slapd.pid
olcTLSCACertificateFile: {state}/ca.crt
olcTLSCertificateFile: {state}/server.crt
olcTLSCertificateKeyFile: {state}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {admin_password}
olcDbDirectory: {state}/data
olcAccess: {{0}}to attrs=userPassword by self read by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"""


def _data_ldif(users: list[User], groups: dict[str, list[str]]) -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "dc: example\no: Example\n",
        f"dn: ou=users,{SUFFIX}\nobjectClass: organizationalUnit\nou: users\n",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for user in users:
        parts.append(
            f"dn: uid={user.uid},ou=users,{SUFFIX}\nobjectClass: inetOrgPerson\n"
            f"objectClass: posixAccount\nuid: {user.uid}\ncn: {user.uid}\nsn: {user.uid}\n"
            f"uidNumber: {user.uid_number}\ngidNumber: {user.uid_number}\n"
            f"homeDirectory: /home/{user.uid}\nuserPassword: {user.password}\n"
        )
    for number, (group, members) in enumerate(sorted(groups.items()), start=20000):
        lines = "".join(f"memberUid: {m}\n" for m in members)
        parts.append(
            f"dn: cn={group},ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: {group}\n"
            f"gidNumber: {number}\n{lines}"
        )
    return "\n".join(parts)


def check_slapd() -> None:
    if not (os.access(SLAPD, os.X_OK) and shutil.which("ldapwhoami")):
        raise AssertionError("slapd or ldap-utils is missing: run `make slapd` (as root)")


def _free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_slapd(
    state: Path, ip: str, admin_password: str, users: list[User], groups: dict[str, list[str]]
) -> Iterator[LdapServer]:
    """slapd on ldaps://ip:<free port> with the users and posixGroups given, until the end."""
    check_slapd()
    tls = make_tls(ip)
    for name, text in (("ca.crt", tls.ca_pem), ("server.crt", tls.cert_pem)):
        (state / name).write_text(text)
    key = state / "server.key"
    key.write_text(tls.key_pem)
    key.chmod(0o600)
    (state / "slapd.d").mkdir()
    (state / "data").mkdir()
    (state / "config.ldif").write_text(_config_ldif(state, admin_password))
    (state / "data.ldif").write_text(_data_ldif(users, groups))
    for args in (
        ["-n0", "-F", str(state / "slapd.d"), "-l", str(state / "config.ldif")],
        ["-n1", "-F", str(state / "slapd.d"), "-l", str(state / "data.ldif")],
    ):
        subprocess.run(["/usr/sbin/slapadd", *args], check=True, capture_output=True, timeout=60)
    uri = f"ldaps://{ip}:{_free_port(ip)}"
    log = (state / "slapd.log").open("wb")
    # -d keeps slapd in the foreground (a child of this process), level 0 logs nothing extra.
    proc = subprocess.Popen(
        [SLAPD, "-d", "0", "-h", f"{uri}/", "-F", str(state / "slapd.d")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LdapServer(uri, admin_password, tls, state / "ca.crt")
    try:
        env = {**os.environ, "LDAPTLS_CACERT": str(state / "ca.crt")}

        def answers() -> bool:
            assert proc.poll() is None, f"slapd exited: {(state / 'slapd.log').read_text()}"
            out = subprocess.run(
                ["ldapwhoami", "-x", "-H", uri, "-D", ADMIN_DN, "-y", str(state / "pw")],
                env=env,
                capture_output=True,
                timeout=10,
                check=False,
            )
            return out.returncode == 0

        (state / "pw").write_text(admin_password)
        wait("slapd answering over TLS", answers, timeout=30, every=0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
