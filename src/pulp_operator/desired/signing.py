"""Signing services: the signing key in the worker pods and the Job that registers the services.

signing_secret holds an ASCII-armored OpenPGP secret key (signing_service.gpg; passphrase-protected
or not, with the passphrase in signing_service.passphrase), signing_scripts the scripts. The worker
pods import the key into an emptyDir GnuPG home (init container gpg-config) and get the scripts at
/var/lib/pulp/scripts/<key> (the upstream operator's paths, which pulpcore stores per service);
PULP_SIGNING_KEY_FINGERPRINT names the key and PULP_SIGNING_KEY_PASSPHRASE_FILE its passphrase.

A Job named after a hash of the key and the scripts registers one signing service per script
(upstream's names and classes). It is idempotent: a service that already has this key and script
is validated again (pulpcore runs the script and checks the signature), one with another key is
replaced. When it succeeded, status.signing_services_hash records the hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names, openpgp
from .common import container_security_context, digest, env_value, resources
from .context import Ctx

KEY_DIR = "/etc/pulp/keys/signing"
KEY_FILE = "signing_service.gpg"
PASSPHRASE_FILE = "signing_service.passphrase"
SCRIPT_DIR = "/var/lib/pulp/scripts"
GNUPG_HOME = "/var/lib/pulp/.gnupg"
PASSPHRASE_ENV = "PULP_SIGNING_KEY_PASSPHRASE_FILE"
FINGERPRINT_ENV = "PULP_SIGNING_KEY_FINGERPRINT"


@dataclass(frozen=True)
class Service:
    script: str
    """Key of the script in signing_scripts."""
    name: str
    """Name of the signing service in Pulp."""
    cls: str
    """pulpcore-manager add-signing-service --class."""


DETACHED = "core:AsciiArmoredDetachedSigningService"
SERVICES = (
    Service("collection_script.sh", "collection-signing-service", DETACHED),
    Service("container_script.sh", "container-signing-service", "container:ManifestSigningService"),
    Service("apt_script.sh", "apt-signing-service", "deb:AptReleaseSigningService"),
    Service("rpm_script.sh", "rpm-signing-service", DETACHED),
)

IMPORT_KEY = (
    f"gpg --batch --import {KEY_DIR}/{KEY_FILE}"
    f' && echo "${FINGERPRINT_ENV}:6:" | gpg --batch --import-ownertrust'
)

# Run by `pulpcore-manager shell -c` in the Job (no single quotes: it goes in a '...' argument).
REGISTER = """
import os
from django.apps import apps
from django.core.management import call_command
from pulpcore.app.models.content import SigningService
key = os.environ["PULP_SIGNING_KEY_FINGERPRINT"]
for entry in os.environ["SIGNING_SERVICES"].split():
    name, script, cls = entry.split(",")
    model = apps.get_model(*cls.split(":"))
    old = SigningService.objects.filter(name=name).first()
    same = old is not None and old.pubkey_fingerprint.upper() == key and old.script == script
    if same and model.objects.filter(pk=old.pk).exists():
        model.objects.get(pk=old.pk).validate()
        print(f"signing service {name}: key {key} and script {script} unchanged, validated")
        continue
    if old is not None:
        call_command("remove-signing-service", name)
    call_command("add-signing-service", name, script, key, "--class", cls)
"""


@dataclass(frozen=True)
class Signing:
    fingerprint: str
    services: tuple[Service, ...]
    passphrase: bool
    hash: str
    """Hash of the key, passphrase presence and scripts: names the Job."""


def signing(ctx: Ctx) -> Signing | None:
    """What signing_secret and signing_scripts hold; None (and a Problem) when unusable."""
    spec = ctx.spec
    if not spec.signing_secret:
        if spec.signing_scripts:
            ctx.problems.add(
                "spec.signing_scripts",
                "spec",
                "SigningSecretRequired",
                "spec.signing_scripts is set but spec.signing_secret is not: the signing"
                " services need the key of signing_secret (signing_service.gpg)",
            )
        return None
    key_data = ctx.secret(spec.signing_secret)
    if key_data is None or KEY_FILE not in key_data:  # reported by references.check
        return None
    try:
        fingerprint = openpgp.secret_key_fingerprint(key_data[KEY_FILE])
    except ValueError as exc:
        ctx.problems.add(
            "spec.signing_secret",
            "setting",
            "InvalidSigningKey",
            f"Secret {spec.signing_secret} (spec.signing_secret) key {KEY_FILE}: {exc}",
        )
        return None
    scripts: dict[str, str] = {}
    if spec.signing_scripts:
        data = ctx.secret(spec.signing_scripts)
        if data is None:  # reported by references.check
            return None
        scripts = {s.script: data[s.script] for s in SERVICES if s.script in data}
        if not scripts:
            ctx.problems.add(
                "spec.signing_scripts",
                "setting",
                "SigningScriptsEmpty",
                f"Secret {spec.signing_scripts} referenced by spec.signing_scripts has none of"
                f" the keys {', '.join(s.script for s in SERVICES)}",
            )
    passphrase = PASSPHRASE_FILE in key_data
    return Signing(
        fingerprint=fingerprint,
        services=tuple(s for s in SERVICES if s.script in scripts),
        passphrase=passphrase,
        hash=digest({"key": key_data[KEY_FILE], "passphrase": passphrase, "scripts": scripts}, 16),
    )


def signing_env(sign: Signing) -> list[dict[str, Any]]:
    env = [env_value(FINGERPRINT_ENV, sign.fingerprint), env_value("HOME", "/var/lib/pulp")]
    if sign.passphrase:
        env.append(env_value(PASSPHRASE_ENV, f"{KEY_DIR}/{PASSPHRASE_FILE}"))
    return env


def signing_volumes(ctx: Ctx, sign: Signing) -> list[dict[str, Any]]:
    key_items = [{"key": KEY_FILE, "path": KEY_FILE}]
    if sign.passphrase:
        key_items.append({"key": PASSPHRASE_FILE, "path": PASSPHRASE_FILE})
    volumes: list[dict[str, Any]] = [
        {"name": "signing-gnupg", "emptyDir": {}},
        {
            "name": "signing-key",
            "secret": {"secretName": ctx.spec.signing_secret, "items": key_items},
        },
    ]
    if sign.services:
        volumes.append(
            {
                "name": "signing-scripts",
                "secret": {
                    "secretName": ctx.spec.signing_scripts,
                    "defaultMode": 0o755,
                    "items": [{"key": s.script, "path": s.script} for s in sign.services],
                },
            }
        )
    return volumes


def signing_mounts(sign: Signing) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "signing-gnupg", "mountPath": GNUPG_HOME},
        {"name": "signing-key", "mountPath": KEY_DIR, "readOnly": True},
    ]
    # One subPath mount per script: pulpcore stores the resolved path of a service's script, and
    # a whole-Secret mount resolves to a timestamped directory that changes with the Secret.
    mounts += [
        {
            "name": "signing-scripts",
            "mountPath": f"{SCRIPT_DIR}/{s.script}",
            "subPath": s.script,
            "readOnly": True,
        }
        for s in sign.services
    ]
    return mounts


def gpg_init_container(ctx: Ctx, sign: Signing, image: str) -> dict[str, Any]:
    """Imports the key into the pod's GnuPG home and trusts it."""
    job = ctx.spec.signing_job.container if ctx.spec.signing_job else None
    container: dict[str, Any] = {
        "name": "gpg-config",
        "image": (job.image if job and job.image else None) or image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["/bin/sh", "-c", IMPORT_KEY],
        "env": signing_env(sign),
        "volumeMounts": signing_mounts(sign)[:2],
        "resources": resources(job.resource_requirements if job else None)
        or {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": container_security_context(),
    }
    return container


def signing_job_name(ctx: Ctx, sign: Signing | None) -> str | None:
    if sign is None or not sign.services or sign.hash == ctx.inputs.status.signing_services_hash:
        return None
    return names.signing_job(ctx.name, sign.hash)


def job_script(wait: str) -> str:
    return f"{wait} && {IMPORT_KEY} && pulpcore-manager shell -c '{REGISTER}'"


def job_env(sign: Signing) -> list[dict[str, Any]]:
    services = " ".join(f"{s.name},{SCRIPT_DIR}/{s.script},{s.cls}" for s in sign.services)
    return [*signing_env(sign), env_value("SIGNING_SERVICES", services)]


def failed_job_problem(ctx: Ctx, name: str) -> None:
    state = ctx.inputs.jobs.get(name)
    if state is not None and state.state == "failed":
        detail = f": {state.message}" if state.message else ""
        ctx.problems.add(
            "spec.signing_scripts",
            "setting",
            "SigningJobFailed",
            f"signing Job {name} failed{detail}; its log says why (a plugin missing for a"
            " script's class, a script that does not sign); a change of spec.signing_secret or"
            " spec.signing_scripts starts a new Job, deleting it retries",
        )
