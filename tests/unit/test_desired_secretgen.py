"""secretgen: the values of the generated Secrets."""

from __future__ import annotations

import re

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pulp_operator import secretgen
from pulp_operator.api.pulp import PulpSpec

SPEC = PulpSpec.model_validate({"file_storage_storage_class": "standard"})


def gen(kind: secretgen.Kind, spec: PulpSpec = SPEC) -> dict[str, str]:
    return secretgen.generate(kind, name="p", namespace="ns", spec=spec)


def test_admin_password() -> None:
    values = {gen("admin-password")["password"] for _ in range(5)}
    assert len(values) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", v) for v in values)


def test_secret_key() -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{50}", gen("secret-key")["secret_key"])


def test_fernet_key_is_usable() -> None:
    key = gen("fernet-key")["database_fields.symmetric.key"]
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_container_token_pair_matches() -> None:
    spec = PulpSpec.model_validate(
        {
            "file_storage_storage_class": "standard",
            "container_auth_private_key_name": "priv.pem",
            "container_auth_public_key_name": "pub.pem",
        }
    )
    data = gen("container-token", spec)
    assert set(data) == {"priv.pem", "pub.pem"}
    private = serialization.load_pem_private_key(data["priv.pem"].encode(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.decode() == data["pub.pem"]


def test_postgres() -> None:
    spec = PulpSpec.model_validate(
        {
            "file_storage_storage_class": "standard",
            "database": {"postgres_port": 6543, "postgres_ssl_mode": "require"},
        }
    )
    data = gen("postgres", spec)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", data.pop("password"))
    assert data == {
        "username": "pulp",
        "database": "pulp",
        "port": "6543",
        "host": "p-database-svc",
        "sslmode": "require",
        "type": "managed",
    }
