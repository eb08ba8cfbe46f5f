"""desired.build on the upstream sample CRs: objects, pods, settings.py, secrets, determinism."""

from __future__ import annotations

import ast
import json
import random
from dataclasses import replace
from typing import Any

import pytest

from pulp_operator import desired, names
from pulp_operator.desired.inputs import Manifest

from ..samples import pulp_sample_files
from .desired_samples import container, dump, find, inputs, kinds_names

N = "example-pulp"
VALID_SAMPLES = pulp_sample_files()


def settings_of(built: desired.Desired, name: str = N) -> dict[str, Any]:
    text = find(built.objects, "Secret", names.server_settings(name))["stringData"]["settings.py"]
    values: dict[str, Any] = {}
    exec(compile(text, "settings.py", "exec"), {}, values)
    return values


def by_kind(built: desired.Desired, kind: str) -> list[Manifest]:
    return [o for o in built.objects if o["kind"] == kind]


def test_simple_objects() -> None:
    built = desired.build(inputs("simple.yaml"))
    assert built.problems == []
    got = kinds_names(built.objects)
    migration = built.migration_job
    assert migration is not None
    assert migration.startswith(f"{N}-pulpcore-migration-")
    assert got == [
        ("ServiceAccount", N),
        ("Role", N),
        ("RoleBinding", N),
        ("Secret", f"{N}-server"),
        ("PersistentVolumeClaim", f"{N}-file-storage"),
        ("Service", f"{N}-database-svc"),
        ("StatefulSet", f"{N}-database"),
        ("PersistentVolumeClaim", f"{N}-redis-data"),
        ("Service", f"{N}-redis-svc"),
        ("Deployment", f"{N}-redis"),
        ("Deployment", f"{N}-api"),
        ("Service", f"{N}-api-svc"),
        ("Job", migration),
        ("Deployment", f"{N}-content"),
        ("Service", f"{N}-content-svc"),
        ("Deployment", f"{N}-worker"),
        ("Job", built.admin_password_job),
        ("ConfigMap", f"{N}-configmap"),
        ("Deployment", f"{N}-web"),
        ("Service", f"{N}-web-svc"),
    ]
    assert built.image == "quay.io/pulp/pulp-minimal:stable"
    assert built.url == "http://nodeport.local:30000"
    assert built.keep == {
        ("PersistentVolumeClaim", f"{N}-file-storage"),
        ("PersistentVolumeClaim", f"{N}-redis-data"),
    }


def test_simple_services_and_storage() -> None:
    built = desired.build(inputs("simple.yaml"))
    web_svc = find(built.objects, "Service", f"{N}-web-svc")["spec"]
    assert web_svc["type"] == "NodePort"
    assert web_svc["ports"] == [
        {
            "name": "web-8080",
            "port": 24880,
            "protocol": "TCP",
            "targetPort": 8080,
            "nodePort": 30000,
        }
    ]
    db_svc = find(built.objects, "Service", f"{N}-database-svc")["spec"]
    assert db_svc["clusterIP"] == "None"
    assert db_svc["ports"][0]["port"] == 5432
    assert find(built.objects, "Service", f"{N}-api-svc")["spec"]["ports"][0]["port"] == 24817
    assert find(built.objects, "Service", f"{N}-content-svc")["spec"]["ports"][0]["port"] == 24816
    assert find(built.objects, "Service", f"{N}-redis-svc")["spec"]["ports"][0]["port"] == 6379
    pvc = find(built.objects, "PersistentVolumeClaim", f"{N}-file-storage")["spec"]
    assert pvc == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "2Gi"}},
        "storageClassName": "standard",
    }
    redis_pvc = find(built.objects, "PersistentVolumeClaim", f"{N}-redis-data")["spec"]
    assert redis_pvc["resources"]["requests"]["storage"] == "1Gi"
    assert redis_pvc["storageClassName"] == "standard"


def test_every_object_is_labelled_and_namespaced() -> None:
    built = desired.build(inputs("simple.yaml"))
    for obj in built.objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "pulp-ns"
        assert meta["labels"][names.OWNED_LABEL] == N
        assert "ownerReferences" not in meta
        assert "status" not in obj


@pytest.mark.parametrize(
    ("kind", "name", "component"),
    [
        ("Deployment", f"{N}-api", "api"),
        ("Deployment", f"{N}-content", "content"),
        ("Deployment", f"{N}-worker", "worker"),
        ("Deployment", f"{N}-web", "web"),
        ("Deployment", f"{N}-redis", "cache"),
        ("StatefulSet", f"{N}-database", "database"),
    ],
)
def test_selectors(kind: str, name: str, component: str) -> None:
    built = desired.build(inputs("simple.yaml"))
    obj = find(built.objects, kind, name)
    selector = names.selector(N, component)
    assert obj["spec"]["selector"] == {"matchLabels": selector}
    pod_labels = obj["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    svc_names = {
        "api": f"{N}-api-svc",
        "content": f"{N}-content-svc",
        "web": f"{N}-web-svc",
        "cache": f"{N}-redis-svc",
        "database": f"{N}-database-svc",
    }
    if component in svc_names:
        assert find(built.objects, "Service", svc_names[component])["spec"]["selector"] == selector


def test_pulpcore_pods() -> None:
    built = desired.build(inputs("simple.yaml"))
    api = find(built.objects, "Deployment", f"{N}-api")
    pod = api["spec"]["template"]["spec"]
    main = container(api)
    assert main["command"] == [
        "pulpcore-api", "--bind", "[::]:24817", "--name", "pulp-api", "--timeout", "90",
        "--graceful-timeout", "90", "--workers", "2", "--access-logfile", "-",
    ]  # fmt: skip
    # a terminating pod keeps serving while its endpoint is withdrawn, then drains gracefully
    assert main["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}
    assert pod["terminationGracePeriodSeconds"] == 10 + 90 + 5
    assert api["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }  # fmt: skip
    assert main["image"] == "quay.io/pulp/pulp-minimal:stable"
    assert main["readinessProbe"]["httpGet"] == {
        "path": "/pulp/api/v3/status/", "port": 24817, "scheme": "HTTP",
    }  # fmt: skip
    assert main["livenessProbe"]["httpGet"]["path"] == "/pulp/api/v3/status/"
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsUser"] == 700
    assert pod["securityContext"]["fsGroup"] == 700
    assert pod["serviceAccountName"] == N
    assert api["spec"]["replicas"] == 1
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/etc/pulp/settings.py"]["subPath"] == "settings.py"
    # where the upstream operator mounts it
    assert mounts["/etc/pulp/pulp-admin-password"]["subPath"] == "password"
    assert "/etc/pulp/keys" in mounts
    assert "/var/lib/pulp" in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["settings"]["secret"]["secretName"] == f"{N}-server"
    assert volumes["admin-password"]["secret"]["secretName"] == "example-pulp-admin-password"
    assert volumes["file-storage"]["persistentVolumeClaim"]["claimName"] == f"{N}-file-storage"
    key_secrets = [s["secret"]["name"] for s in volumes["keys"]["projected"]["sources"]]
    assert key_secrets == [f"{N}-db-fields-encryption", f"{N}-container-auth"]
    init = pod["initContainers"][0]
    assert init["command"][-1].startswith("mkdir -p /var/lib/pulp/media")
    assert (
        "/usr/bin/wait_on_postgres.py && /usr/bin/wait_on_database_migrations.sh"
        in init["command"][-1]
    )
    env = {e["name"]: e for e in main["env"]}
    assert env["POSTGRES_SERVICE_HOST"]["value"] == f"{N}-database-svc"
    assert env["REDIS_SERVICE_HOST"]["value"] == f"{N}-redis-svc"
    assert env["SECRET_DATABASES__default__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{N}-postgres-configuration",
        "key": "password",
    }
    assert env["SECRET_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == f"{N}-secret-key"
    # dynaconf reads PULP_* values as TOML: credentials reach their settings as strings, through
    # a variable defined before the setting's (Kubernetes expands only those).
    order = [e["name"] for e in main["env"]]
    for setting in ("DATABASES__default__USER", "DATABASES__default__PASSWORD", "SECRET_KEY"):
        assert env[f"PULP_{setting}"]["value"] == f"@str $(SECRET_{setting})"
        assert order.index(f"SECRET_{setting}") < order.index(f"PULP_{setting}")

    content_deployment = find(built.objects, "Deployment", f"{N}-content")
    content = container(content_deployment)
    assert content["command"][:3] == ["pulpcore-content", "--bind", "[::]:24816"]
    assert "--graceful-timeout" in content["command"]
    assert content["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert content_deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert content["readinessProbe"]["httpGet"]["path"] == "/pulp/content/"
    worker = find(built.objects, "Deployment", f"{N}-worker")
    assert container(worker)["command"] == ["pulpcore-worker"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert "ports" not in container(worker)
    assert "lifecycle" not in container(worker)
    worker_mounts = {m["mountPath"] for m in container(worker)["volumeMounts"]}
    assert "/etc/pulp/pulp-admin-password" not in worker_mounts  # the api's alone


def test_ipv6_disabled_binds_ipv4() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"ipv6_disabled": True}))
    for component, port in (("api", 24817), ("content", 24816)):
        command = container(find(built.objects, "Deployment", f"{N}-{component}"))["command"]
        assert command[1:3] == ["--bind", f"0.0.0.0:{port}"]


def test_web_drains_and_quits_gracefully() -> None:
    built = desired.build(inputs("simple.yaml"))
    web = find(built.objects, "Deployment", f"{N}-web")
    hook = container(web)["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["/bin/sh", "-c"]
    assert hook[2].startswith("sleep 10; nginx -s quit;")
    assert web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 135
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_user_strategy_wins() -> None:
    recreate = {"type": "Recreate"}
    built = desired.build(inputs("simple.yaml", spec_update={"api": {"strategy": recreate}}))
    assert find(built.objects, "Deployment", f"{N}-api")["spec"]["strategy"] == recreate


def test_database_statefulset() -> None:
    built = desired.build(inputs("simple.yaml"))
    sts = find(built.objects, "StatefulSet", f"{N}-database")
    assert sts["spec"]["replicas"] == 1
    # as upstream creates it (both fields are immutable): no serviceName, claim <name>-postgres
    assert "serviceName" not in sts["spec"]
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert vct["metadata"]["name"] == f"{N}-postgres"
    assert names.database_claim(N) == f"{N}-postgres-{N}-database-0"
    assert container(sts)["volumeMounts"][0]["name"] == f"{N}-postgres"
    assert "persistentVolumeClaimRetentionPolicy" not in sts["spec"]  # kept on delete
    assert vct["spec"]["storageClassName"] == "standard"
    assert vct["spec"]["resources"]["requests"]["storage"] == "8Gi"
    pg = container(sts)
    assert pg["image"] == "postgres:15"
    env = {e["name"]: e for e in pg["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        f"{N}-postgres-configuration"
    )
    assert env["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    for var, key in (
        ("POSTGRESQL_USER", "username"),
        ("POSTGRESQL_PASSWORD", "password"),
        ("POSTGRESQL_DATABASE", "database"),
    ):  # for the sclorg/RHEL images, as upstream sets them
        assert env[var]["valueFrom"]["secretKeyRef"] == {
            "name": f"{N}-postgres-configuration",
            "key": key,
        }
    assert env["POSTGRES_HOST_AUTH_METHOD"]["value"] == "scram-sha-256"
    assert "pg_isready" in pg["readinessProbe"]["exec"]["command"][-1]
    assert pg["ports"] == [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}]
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 999


def test_database_storage_class_omitted_when_unset() -> None:
    spec = {"database": {"postgres_storage_requirements": "3Gi"}}
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    (vct,) = find(built.objects, "StatefulSet", f"{N}-database")["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in vct["spec"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "3Gi"


def test_simple_settings() -> None:
    built = desired.build(inputs("simple.yaml"))
    settings = settings_of(built)
    assert settings["CONTENT_ORIGIN"] == "http://nodeport.local:30000"  # custom setting wins
    assert settings["TOKEN_SERVER"] == "http://nodeport.local:30000/token/"
    assert settings["ANALYTICS"] is False
    assert settings["ALLOWED_EXPORT_PATHS"] == ["/tmp"]
    assert settings["API_ROOT"] == "/pulp/"
    assert settings["DB_ENCRYPTION_KEY"] == "/etc/pulp/keys/database_fields.symmetric.key"
    assert settings["PRIVATE_KEY_PATH"] == "/etc/pulp/keys/container_auth_private_key.pem"
    assert settings["CACHE_ENABLED"] is True
    assert settings["REDIS_HOST"] == f"{N}-redis-svc"
    assert settings["REDIS_PORT"] == 6379
    assert settings["DATABASES"] == {
        "default": {
            "CONN_MAX_AGE": 0,
            "ENGINE": "django.db.backends.postgresql",
            "HOST": f"{N}-database-svc",
            "OPTIONS": {"sslmode": "prefer"},
            "PORT": 5432,
        }
    }
    assert "SECRET_KEY" not in settings
    assert "STORAGES" not in settings


def test_content_origin_without_custom_settings() -> None:
    built = desired.build(inputs("minimal.yaml"))
    settings = settings_of(built)
    origin = f"http://{N}-web-svc.pulp-ns.svc.cluster.local:24880"
    assert settings["CONTENT_ORIGIN"] == origin
    assert built.url == origin
    assert settings["TOKEN_SERVER"] == f"http://{N}-api-svc.pulp-ns.svc.cluster.local:24817/token/"


def test_ingress_host_is_content_origin() -> None:
    built = desired.build(inputs("simple.ingress.yaml"))
    assert built.url == "http://ingress.local"
    assert settings_of(built)["TOKEN_SERVER"] == "http://ingress.local/token/"
    tls = inputs("simple.ingress.yaml", spec_update={"ingress_tls_secret": "tls"})
    assert desired.build(tls).url == "https://ingress.local"


def test_external_db_reads_the_users_secret() -> None:
    built = desired.build(inputs("simple-external-db.yaml"))
    assert built.problems == []
    assert not [o for o in built.objects if o["kind"] == "StatefulSet"]
    assert ("Service", f"{N}-database-svc") not in kinds_names(built.objects)
    env = {e["name"]: e for e in container(find(built.objects, "Deployment", f"{N}-api"))["env"]}
    assert env["POSTGRES_SERVICE_HOST"]["valueFrom"]["secretKeyRef"] == {
        "name": "external-database",
        "key": "POSTGRES_HOST",
    }
    assert env["SECRET_DATABASES__default__PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == (
        "POSTGRES_PASSWORD"
    )
    assert "HOST" not in settings_of(built)["DATABASES"]["default"]


def test_external_cache() -> None:
    base = inputs("simple-external-cache.yaml")
    db = {
        "POSTGRES_HOST": "db", "POSTGRES_PORT": "5432", "POSTGRES_USERNAME": "u",
        "POSTGRES_PASSWORD": "dbpass", "POSTGRES_DB_NAME": "pulp", "POSTGRES_SSLMODE": "prefer",
    }  # fmt: skip
    built = desired.build(replace(base, secrets={**base.secrets, "external-database": db}))
    assert built.problems == []
    assert not [n for k, n in kinds_names(built.objects) if "redis" in n]
    settings = settings_of(built, "pulp")
    assert settings["CACHE_ENABLED"] is True
    assert "REDIS_HOST" not in settings
    env = {e["name"]: e for e in container(find(built.objects, "Deployment", "pulp-api"))["env"]}
    assert env["PULP_REDIS_HOST"]["valueFrom"]["secretKeyRef"] == {
        "name": "external-redis",
        "key": "REDIS_HOST",
    }
    assert "PULP_REDIS_PASSWORD" not in env  # empty in the Secret
    assert "PULP_REDIS_DB" not in env


def test_ldap_settings() -> None:
    built = desired.build(inputs("simple.ldap.yaml"))
    assert built.problems == []
    text = find(built.objects, "Secret", f"{N}-server")["stringData"]["settings.py"]
    tree = ast.parse(text)
    assigned = {
        node.targets[0].id: ast.unparse(node.value)  # type: ignore[attr-defined]
        for node in tree.body
        if isinstance(node, ast.Assign)
    }
    assert assigned["AUTH_LDAP_SERVER_URI"] == "'ldap://ldap.pulp-operator-system.svc'"
    assert assigned["AUTH_LDAP_GROUP_TYPE"] == "PosixGroupType(name_attr='cn')"
    assert assigned["AUTH_LDAP_USER_SEARCH"].startswith("LDAPSearch(")
    assert "django_auth_ldap.backend.LDAPBackend" in assigned["AUTHENTICATION_BACKENDS"]
    assert "AUTH_LDAP_BIND_PASSWORD" not in assigned
    assert "'admin'" not in text.split("#### LDAP ####")[1].replace("'cn=admin", "")
    env = {e["name"]: e for e in container(find(built.objects, "Deployment", f"{N}-api"))["env"]}
    assert env["PULP_AUTH_LDAP_BIND_PASSWORD"]["value"] == "@str $(SECRET_AUTH_LDAP_BIND_PASSWORD)"
    assert env["SECRET_AUTH_LDAP_BIND_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pulp-ldap-secret",
        "key": "auth_ldap_bind_password",
    }


def test_ldap_rejects_code() -> None:
    base = inputs("simple.ldap.yaml")
    ldap = {**base.secrets["pulp-ldap-secret"], "auth_ldap_group_type": "__import__('os')"}
    built = desired.build(replace(base, secrets={**base.secrets, "pulp-ldap-secret": ldap}))
    assert any("auth_ldap_group_type" in p.message for p in built.problems)
    text = find(built.objects, "Secret", f"{N}-server")["stringData"]["settings.py"]
    assert "__import__" not in text


SENSITIVE = ("password", "key", "secret")


@pytest.mark.parametrize("sample", VALID_SAMPLES)
def test_no_secret_value_in_manifests(sample: str) -> None:
    data = inputs(sample)
    generated = {g.name for g in desired.generated_secrets(data.name, data.namespace, data.spec)}
    # The samples use values like "password": give the user's secret values unique markers.
    secrets = {
        name: {
            key: (
                value
                if name in generated or not any(w in key.lower() for w in SENSITIVE)
                else f"marker-{name}-{key}-7f3a"
            )
            for key, value in values.items()
        }
        for name, values in data.secrets.items()
    }
    built = desired.build(replace(data, secrets=secrets))
    text = dump(built.objects)
    checked = 0
    for name, values in secrets.items():
        for key, value in values.items():
            sensitive = any(w in key.lower() for w in SENSITIVE)
            if (name in generated and sensitive) or value.startswith("marker-"):
                assert value not in text, f"{name}/{key} leaked"
                assert json.dumps(value)[1:-1] not in text, f"{name}/{key} leaked"
                checked += 1
    assert checked >= 6


@pytest.mark.parametrize("sample", VALID_SAMPLES)
def test_deterministic(sample: str) -> None:
    data = inputs(sample)
    assert dump(desired.build(data).objects) == dump(desired.build(data).objects)


def test_config_map_key_order_does_not_matter() -> None:
    data = inputs("simple.yaml")
    items = list(data.config_maps["settings"].items())
    random.Random(4).shuffle(items)
    shuffled = replace(data, config_maps={"settings": dict(reversed(items))})
    assert dump(desired.build(data).objects) == dump(desired.build(shuffled).objects)


def _hash(built: desired.Desired, deployment: str) -> str:
    obj = find(built.objects, "Deployment", deployment)
    value: str = obj["spec"]["template"]["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION]
    return value


@pytest.mark.parametrize(
    "secret", [f"{N}-postgres-configuration", f"{N}-db-fields-encryption", f"{N}-secret-key"]
)
def test_hash_follows_referenced_secrets(secret: str) -> None:
    data = inputs("simple.yaml")
    before = desired.build(data)
    changed = {k: v + "x" for k, v in data.secrets[secret].items()}
    after = desired.build(replace(data, secrets={**data.secrets, secret: changed}))
    for component in ("api", "content", "worker"):
        assert _hash(before, f"{N}-{component}") != _hash(after, f"{N}-{component}")
    assert _hash(before, f"{N}-web") == _hash(after, f"{N}-web")


def test_hash_follows_settings_and_web_hash_follows_nginx_conf() -> None:
    data = inputs("simple.yaml")
    before = desired.build(data)
    after = desired.build(inputs("simple.yaml", spec_update={"nginx_client_max_body_size": "1g"}))
    assert _hash(before, f"{N}-web") != _hash(after, f"{N}-web")
    conf = find(after.objects, "ConfigMap", f"{N}-configmap")["data"]["nginx.conf"]
    assert "client_max_body_size 1g;" in conf
    assert f"server {N}-api-svc:24817;" in conf
    assert "location /pulp/content/ {" in conf
    assert "include /opt/app-root/etc/nginx.default.d/*.conf;" in conf
    debug = desired.build(inputs("simple.yaml", spec_update={"enable_debugging": True}))
    assert _hash(before, f"{N}-api") != _hash(debug, f"{N}-api")
    assert settings_of(debug)["LOGGING"]["loggers"][""]["level"] == "DEBUG"


def test_web_deployment() -> None:
    built = desired.build(inputs("simple.yaml"))
    web = find(built.objects, "Deployment", f"{N}-web")
    main = container(web)
    assert main["image"] == "quay.io/pulp/pulp-web:stable"
    assert main["ports"][0]["containerPort"] == 8080
    assert main["readinessProbe"]["httpGet"]["port"] == 8080
    assert web["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1001
    assert web["spec"]["replicas"] == 1
