"""OpenPGP keys given in Secrets: what the operator needs to know of them (pysequoia, the
OpenPGP library pulpcore itself uses)."""

from __future__ import annotations

from pysequoia import Tsk

_SECRET_ARMOR = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


def secret_key_fingerprint(armored: str) -> str:
    """Upper-case fingerprint of the primary key of an OpenPGP secret key (passphrase-protected
    or not: the fingerprint is public); ValueError when the text is no such key."""
    try:
        key = Tsk.from_bytes(armored.encode())
    except Exception as exc:  # pysequoia raises plain exceptions with sequoia's message
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"not an OpenPGP key ({first})") from None
    # A certificate without secret key material parses too; armoured again it is a public key.
    if not str(key).startswith(_SECRET_ARMOR):
        raise ValueError("an OpenPGP public key only: the secret key is needed to sign")
    return str(key.extract_certificate().fingerprint).upper()
