"""Values of the Secrets the operator generates: the only source of randomness of the operator.

The reconciler creates a generated Secret only when it does not exist and never regenerates it.
"""

from __future__ import annotations

import secrets
import string
from typing import Literal

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import names
from .api.pulp import PulpSpec

Kind = Literal["admin-password", "secret-key", "fernet-key", "container-token", "postgres"]

_ALNUM = string.ascii_letters + string.digits
# No quotes, $, @ or brackets: the key reaches pulpcore through a dynaconf environment variable,
# which would interpret some of them.
_SECRET_KEY_CHARS = _ALNUM + "-_"


def random_string(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def container_token_keys() -> tuple[str, str]:
    """An ECDSA P-256 key pair (ES256 container tokens) as PEM: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def generate(kind: Kind, *, name: str, namespace: str, spec: PulpSpec) -> dict[str, str]:
    """The stringData of a generated Secret of this kind."""
    if kind == "admin-password":
        return {"password": random_string(32)}
    if kind == "secret-key":
        return {"secret_key": random_string(50, _SECRET_KEY_CHARS)}
    if kind == "fernet-key":
        return {"database_fields.symmetric.key": Fernet.generate_key().decode()}
    if kind == "container-token":
        private, public = container_token_keys()
        return {
            spec.container_auth_private_key_name: private,
            spec.container_auth_public_key_name: public,
        }
    if kind == "postgres":
        db = spec.database
        return {
            "username": "pulp",
            "password": random_string(32),
            "database": "pulp",
            "port": str(db.postgres_port),
            "host": names.database_service(name),
            "sslmode": db.postgres_ssl_mode,
            "type": "managed",
        }
    raise ValueError(f"unknown generated secret kind {kind!r}")
