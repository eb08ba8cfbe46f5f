"""Builders of telemetry, signing services, Keycloak (SSO) and LDAP settings."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from typing import Any

import pytest
from pysequoia import Tsk

from pulp_operator import desired, names, openpgp
from pulp_operator.api.pulp import PulpStatus
from pulp_operator.desired.inputs import JobState, Manifest

from .desired_samples import container, find, inputs

N = "example-pulp"


def pod(obj: Manifest) -> dict[str, Any]:
    result: dict[str, Any] = obj["spec"]["template"]["spec"]
    return result


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def assigned(built: desired.Desired) -> dict[str, str]:
    text = find(built.objects, "Secret", f"{N}-server")["stringData"]["settings.py"]
    return {
        node.targets[0].id: ast.unparse(node.value)  # type: ignore[attr-defined]
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
    }


# --- telemetry ---------------------------------------------------------------------------------


def test_telemetry_sidecar_config_and_service() -> None:
    built = desired.build(inputs("simple.telemetry.yaml"))
    assert built.problems == []
    api = find(built.objects, "Deployment", names.api(N))
    containers = pod(api)["containers"]
    assert [c["name"] for c in containers] == ["api", "otel-collector-sidecar"]
    sidecar = containers[1]
    assert sidecar["image"] == "docker.io/otel/opentelemetry-collector:latest"
    assert sidecar["imagePullPolicy"] == "IfNotPresent"  # :latest would default to Always
    assert sidecar["ports"][0]["containerPort"] == 8889
    assert sidecar["args"] == ["--config", "file:/etc/otelcol-contrib/otel-collector-config.yaml"]
    assert sidecar["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}}
    env = env_of(containers[0])
    assert env["PULP_OTEL_ENABLED"]["value"] == "true"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://localhost:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"

    cm = find(built.objects, "ConfigMap", f"{N}-otel-collector-config")
    config = json.loads(cm["data"]["otel-collector-config.yaml"])
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "localhost:4318"
    assert config["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    volumes = {v["name"]: v for v in pod(api)["volumes"]}
    assert volumes["otel-collector-config"]["configMap"]["name"] == cm["metadata"]["name"]

    svc = find(built.objects, "Service", f"{N}-otel-collector-svc")
    assert svc["spec"]["ports"][0]["port"] == 8889
    assert svc["spec"]["selector"] == names.selector(N, "api")
    for component in ("content", "worker"):
        dep = find(built.objects, "Deployment", f"{N}-{component}")
        assert len(pod(dep)["containers"]) == 1
        assert "PULP_OTEL_ENABLED" not in env_of(container(dep))


def test_telemetry_options_and_off() -> None:
    spec = {
        "telemetry": {
            "enabled": True,
            "exporter_otlp_protocol": "grpc",
            "otel_collector_image": "registry.example/otelcol",
            "otel_collector_image_version": "0.165.0",
            "resource_requirements": {"limits": {"memory": "256Mi"}},
        },
        "api": {"env_vars": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://x:4318"}]},
    }
    built = desired.build(inputs("simple.telemetry.yaml", spec_update=spec))
    api = find(built.objects, "Deployment", names.api(N))
    sidecar = pod(api)["containers"][1]
    assert sidecar["image"] == "registry.example/otelcol:0.165.0"
    assert sidecar["resources"] == {"limits": {"memory": "256Mi"}}
    env = env_of(pod(api)["containers"][0])
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://x:4318"  # the user's wins

    off = desired.build(inputs("simple.telemetry.yaml", spec_update={"telemetry": {}}))
    got = {(o["kind"], o["metadata"]["name"]) for o in off.objects}
    assert ("Service", f"{N}-otel-collector-svc") not in got
    assert ("ConfigMap", f"{N}-otel-collector-config") not in got
    assert len(pod(find(off.objects, "Deployment", names.api(N)))["containers"]) == 1


# --- signing -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> str:
    return str(Tsk.generate("Unit <unit@example.org>"))


SCRIPTS = {
    "collection_script.sh": "#!/bin/sh\necho collection\n",
    "container_script.sh": "#!/bin/sh\necho container\n",
    "apt_script.sh": "#!/bin/sh\necho apt\n",
    "rpm_script.sh": "#!/bin/sh\necho rpm\n",
}


def signing_inputs(key: str, scripts: dict[str, str], **secret: str) -> desired.Inputs:
    base = inputs(
        "simple.yaml", spec_update={"signing_secret": "sign-key", "signing_scripts": "scripts"}
    )
    return replace(
        base,
        secrets={
            **base.secrets,
            "sign-key": {"signing_service.gpg": key, **secret},
            "scripts": scripts,
        },
    )


def test_signing_services_job_and_worker(key: str) -> None:
    fingerprint = openpgp.secret_key_fingerprint(key)
    built = desired.build(signing_inputs(key, SCRIPTS, **{"signing_service.passphrase": "p"}))
    assert built.problems == []
    assert built.signing_key_fingerprint == fingerprint
    jobs = [
        o
        for o in built.objects
        if o["kind"] == "Job" and "signing-metadata" in o["metadata"]["name"]
    ]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["name"].startswith(f"{N}-signing-metadata-")
    job_env = env_of(container(job))
    assert job_env["PULP_SIGNING_KEY_FINGERPRINT"]["value"] == fingerprint
    assert job_env["SIGNING_SERVICES"]["value"].split() == [
        "collection-signing-service,/var/lib/pulp/scripts/collection_script.sh,"
        "core:AsciiArmoredDetachedSigningService",
        "container-signing-service,/var/lib/pulp/scripts/container_script.sh,"
        "container:ManifestSigningService",
        "apt-signing-service,/var/lib/pulp/scripts/apt_script.sh,deb:AptReleaseSigningService",
        "rpm-signing-service,/var/lib/pulp/scripts/rpm_script.sh,"
        "core:AsciiArmoredDetachedSigningService",
    ]
    script = container(job)["command"][2]
    assert "wait_on_database_migrations.sh" in script
    assert "gpg --batch --import /etc/pulp/keys/signing/signing_service.gpg" in script
    assert "add-signing-service" in script
    compile(script.split("shell -c '", 1)[1].rstrip("'"), "register", "exec")

    worker = find(built.objects, "Deployment", names.worker(N))
    inits = pod(worker)["initContainers"]
    assert [c["name"] for c in inits] == ["init-container", "gpg-config"]
    mounts = {m["mountPath"]: m for m in container(worker)["volumeMounts"]}
    for name in SCRIPTS:
        assert mounts[f"/var/lib/pulp/scripts/{name}"]["subPath"] == name
    assert "/var/lib/pulp/.gnupg" in mounts
    env = env_of(container(worker))
    assert env["PULP_SIGNING_KEY_FINGERPRINT"]["value"] == fingerprint
    passphrase_file = env["PULP_SIGNING_KEY_PASSPHRASE_FILE"]["value"]
    assert passphrase_file == "/etc/pulp/keys/signing/signing_service.passphrase"
    volumes = {v["name"]: v for v in pod(worker)["volumes"]}
    assert volumes["signing-scripts"]["secret"]["defaultMode"] == 0o755
    assert {i["key"] for i in volumes["signing-key"]["secret"]["items"]} == {
        "signing_service.gpg",
        "signing_service.passphrase",
    }
    for component in ("api", "content"):  # signing tasks run in the workers only
        dep = find(built.objects, "Deployment", f"{N}-{component}")
        assert "PULP_SIGNING_KEY_FINGERPRINT" not in env_of(container(dep))


def test_signing_job_follows_key_and_scripts(key: str) -> None:
    def job_name(i: desired.Inputs) -> str | None:
        built = desired.build(i)
        found = [
            o["metadata"]["name"]
            for o in built.objects
            if "signing-metadata" in o["metadata"]["name"]
        ]
        return found[0] if found else None

    first = signing_inputs(key, {"rpm_script.sh": "#!/bin/sh\n"})
    name = job_name(first)
    assert name is not None
    assert job_name(first) == name  # deterministic
    assert job_name(signing_inputs(key, {"rpm_script.sh": "#!/bin/sh\n# v2\n"})) != name
    other_key = str(Tsk.generate("Other <o@example.org>"))
    assert job_name(signing_inputs(other_key, {"rpm_script.sh": "#!/bin/sh\n"})) != name
    # once it succeeded (status records its hash) it is not wanted any more
    done = replace(
        first,
        status=PulpStatus(signing_services_hash=name.removeprefix(names.signing_job(N, ""))),
    )
    assert job_name(done) is None
    failed = replace(first, jobs={name: JobState(name, "failed", "BackoffLimitExceeded")})
    problems = desired.build(failed).problems
    assert [p.reason for p in problems] == ["SigningJobFailed"]
    assert name in problems[0].message


def test_signing_problems(key: str) -> None:
    public = str(Tsk.from_bytes(key.encode()).extract_certificate())
    built = desired.build(signing_inputs(public, SCRIPTS))
    assert [p.reason for p in built.problems] == ["InvalidSigningKey"]
    assert "spec.signing_secret" in built.problems[0].message
    assert "public key only" in built.problems[0].message

    built = desired.build(signing_inputs(key, {"other.sh": "#!/bin/sh\n"}))
    assert [p.reason for p in built.problems] == ["SigningScriptsEmpty"]
    assert "rpm_script.sh" in built.problems[0].message

    only_scripts = inputs("simple.yaml", spec_update={"signing_scripts": "scripts"})
    only_scripts = replace(only_scripts, secrets={**only_scripts.secrets, "scripts": SCRIPTS})
    assert [p.reason for p in desired.build(only_scripts).problems] == ["SigningSecretRequired"]


def test_signing_key_without_scripts_still_reaches_the_workers(key: str) -> None:
    base = inputs("simple.yaml", spec_update={"signing_secret": "sign-key"})
    built = desired.build(
        replace(base, secrets={**base.secrets, "sign-key": {"signing_service.gpg": key}})
    )
    assert built.problems == []
    assert not [o for o in built.objects if "signing-metadata" in o["metadata"]["name"]]
    worker = find(built.objects, "Deployment", names.worker(N))
    assert [c["name"] for c in pod(worker)["initContainers"]][-1] == "gpg-config"
    assert "PULP_SIGNING_KEY_PASSPHRASE_FILE" not in env_of(container(worker))


def test_signing_change_rolls_the_workers(key: str) -> None:
    def config_hash(i: desired.Inputs) -> str:
        worker = find(desired.build(i).objects, "Deployment", names.worker(N))
        annotations = worker["spec"]["template"]["metadata"]["annotations"]
        return str(annotations[names.CONFIG_HASH_ANNOTATION])

    a = config_hash(signing_inputs(key, {"rpm_script.sh": "#!/bin/sh\n"}))
    b = config_hash(signing_inputs(key, {"rpm_script.sh": "#!/bin/sh\n# v2\n"}))
    assert a != b


# --- SSO ---------------------------------------------------------------------------------------

SSO = {
    "social_auth_keycloak_key": "pulp",
    "social_auth_keycloak_secret": "s3cr3t-value",
    "social_auth_keycloak_public_key": "MIIBIjAN",
    "keycloak_host": "kc.example.org",
    "keycloak_protocol": "https",
    "keycloak_port": "8443",
    "keycloak_realm": "pulp",
    "keycloak_role_token_claim": "roles",
}


def sso_inputs(data: dict[str, str]) -> desired.Inputs:
    base = inputs("simple.yaml", spec_update={"sso_secret": "sso"})
    return replace(base, secrets={**base.secrets, "sso": data})


def test_sso_settings() -> None:
    built = desired.build(sso_inputs(SSO))
    assert built.problems == []
    values = assigned(built)
    assert values["SOCIAL_AUTH_KEYCLOAK_KEY"] == "'pulp'"
    assert values["KEYCLOAK_HOST"] == "'kc.example.org'"
    assert values["KEYCLOAK_PORT"] == "'8443'"
    assert values["KEYCLOAK_ROLE_TOKEN_CLAIM"] == "'roles'"
    assert "SOCIAL_AUTH_KEYCLOAK_SECRET" not in values
    text = find(built.objects, "Secret", f"{N}-server")["stringData"]["settings.py"]
    assert "s3cr3t-value" not in text
    api = find(built.objects, "Deployment", names.api(N))
    env = env_of(container(api))
    assert env["SECRET_SOCIAL_AUTH_KEYCLOAK_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "sso", "key": "social_auth_keycloak_secret"}
    }
    # a string for dynaconf, whatever it looks like (Kubernetes expands the earlier variable)
    assert env["PULP_SOCIAL_AUTH_KEYCLOAK_SECRET"]["value"] == (
        "@str $(SECRET_SOCIAL_AUTH_KEYCLOAK_SECRET)"
    )
    names_in_order = list(env)
    assert names_in_order.index("SECRET_SOCIAL_AUTH_KEYCLOAK_SECRET") < names_in_order.index(
        "PULP_SOCIAL_AUTH_KEYCLOAK_SECRET"
    )


def test_sso_missing_keys() -> None:
    built = desired.build(sso_inputs({"keycloak_host": "kc"}))
    assert [p.reason for p in built.problems] == ["SecretKeyNotFound"]
    assert "social_auth_keycloak_key" in built.problems[0].message


# --- LDAP --------------------------------------------------------------------------------------


def test_ldap_booleans_and_expressions() -> None:
    base = inputs("simple.ldap.yaml")
    ldap = {
        **base.secrets["pulp-ldap-secret"],
        "auth_ldap_mirror_groups": "True",
        "auth_ldap_bind_as_authenticating_user": "false",
        "auth_ldap_start_tls": "FALSE",
        "auth_ldap_user_flags_by_group": '{"is_superuser": "cn=admins,dc=example,dc=org"}',
        "auth_ldap_user_attr_map": '{"first_name": "givenName"}',
        "auth_ldap_require_group": "cn=pulp,ou=groups,dc=example,dc=org",
        "auth_ldap_deny_group": 'LDAPGroupQuery("cn=a,dc=x") | LDAPGroupQuery("cn=b,dc=x")',
    }
    built = desired.build(replace(base, secrets={**base.secrets, "pulp-ldap-secret": ldap}))
    assert built.problems == []
    values = assigned(built)
    assert values["AUTH_LDAP_MIRROR_GROUPS"] == "True"
    assert values["AUTH_LDAP_BIND_AS_AUTHENTICATING_USER"] == "False"
    assert values["AUTH_LDAP_START_TLS"] == "False"
    assert ast.literal_eval(values["AUTH_LDAP_USER_FLAGS_BY_GROUP"]) == {
        "is_superuser": "cn=admins,dc=example,dc=org"
    }
    assert ast.literal_eval(values["AUTH_LDAP_USER_ATTR_MAP"]) == {"first_name": "givenName"}
    assert values["AUTH_LDAP_REQUIRE_GROUP"] == "'cn=pulp,ou=groups,dc=example,dc=org'"
    assert values["AUTH_LDAP_DENY_GROUP"].startswith("LDAPGroupQuery(")


def test_ldap_ca_mounted_where_the_config_says() -> None:
    base = inputs(
        "simple.ldap.yaml", spec_update={"ldap": {"config": "pulp-ldap-secret", "ca": "ca"}}
    )
    ldap = {**base.secrets["pulp-ldap-secret"], "auth_ldap_ca_file": "/etc/pulp/certs/ldap.crt"}
    built = desired.build(
        replace(base, secrets={**base.secrets, "pulp-ldap-secret": ldap, "ca": {"ca.crt": "PEM"}})
    )
    assert built.problems == []
    for component in ("api", "content", "worker"):
        dep = find(built.objects, "Deployment", f"{N}-{component}")
        mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
        assert mounts["/etc/pulp/certs/ldap.crt"]["subPath"] == "ca.crt"
    values = assigned(built)
    assert "OPT_X_TLS_CACERTFILE: '/etc/pulp/certs/ldap.crt'" in values["AUTH_LDAP_GLOBAL_OPTIONS"]
