"""`pulp-operator convert`: the original operator's CRs as v1 CRs, what has no equivalent noted."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulp_operator.api.pulp import PulpSpec
from pulp_operator.convert import Converted, ConvertError, convert, python_literal

from ..samples import SAMPLES

ANSIBLE_ERA = SAMPLES / "ansible-era"
DEFAULT_CRS = sorted(ANSIBLE_ERA.glob("*.default.yaml"))

# The original default CR (deploy/crds/pulpproject_v1alpha1_pulp_cr.default.yaml) with every
# commented value set.
V1ALPHA1_FULL = """
apiVersion: pulp.pulpproject.org/v1alpha1
kind: Pulp
metadata:
  name: example-pulp
  namespace: pulp
spec:
  registry: quay.io
  project: pulp
  image: pulp
  tag: "3.9"
  pulp_settings:
    databases:
      default:
        HOST: postgres
        ENGINE: django.db.backends.postgresql_psycopg2
        NAME: pulp
        USER: pulp
        PASSWORD: s3cret
        PORT: 5432
        CONN_MAX_AGE: 0
    debug: "True"
    redis_host: redis
    redis_port: 6379
    redis_password: ''
    content_origin: http://myserver.fqdn:24816
  database_connection:
    username: pulp
    password: s3cret
    admin_password: rootpw
  pulp_file_storage:
    access_mode: ReadWriteOnce
    size: 50Gi
  pulp_api:
    replicas: 1
    log_level: INFO
  pulp_content:
    replicas: 2
    log_level: DEBUG
  pulp_worker:
    replicas: 3
  pulp_resource_manager:
    replicas: 1
"""

V1BETA1_FULL = """
apiVersion: pulp.pulpproject.org/v1beta1
kind: Pulp
metadata:
  name: example-pulp
spec:
  deployment_type: pulp
  image: quay.io/pulp/pulp
  image_version: "3.15.2"
  pulp_settings:
    debug: "True"
    allowed_export_paths: ["/tmp"]
  admin_password_secret: my-admin
  postgres_configuration_secret: pg-ext
  storage_type: S3
  object_storage_s3_secret: my-s3
  file_storage_access_mode: ReadWriteMany
  postgres_storage_requirements:
    requests:
      storage: 20Gi
  api:
    replicas: 2
    resource_requirements:
      requests: {cpu: 200m, memory: 512Mi}
  content:
    replicas: 2
  worker:
    replicas: 2
  resource_manager:
    replicas: 2
  ingress_type: Ingress
  hostname: pulp.example.com
  ingress_annotations: |
    kubernetes.io/ingress.class: nginx
---
apiVersion: v1
kind: Secret
metadata:
  name: pg-ext
stringData:
  host: db.example.com
  port: "5433"
  username: pulpuser
  password: dbpass
  database: pulpdb
  sslmode: require
  type: unmanaged
"""


def run(text: str, **kw: Any) -> Converted:
    return convert([d for d in yaml.safe_load_all(text) if d], **kw)


def objects(result: Converted, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in result.objects if o["kind"] == kind}


def pulp(result: Converted) -> dict[str, Any]:
    (only,) = objects(result, "Pulp").values()
    assert only["apiVersion"] == "repo-manager.pulpproject.org/v1"
    PulpSpec.model_validate(only["spec"])  # what it prints applies
    return only


@pytest.mark.parametrize("path", DEFAULT_CRS, ids=lambda p: p.name)
def test_the_original_default_crs(path: Path) -> None:
    assert path.is_file()
    result = run(path.read_text())
    spec = pulp(result)["spec"]
    # the original operator's defaults, which v1 does not share
    assert spec["content"] == {"replicas": 2}
    assert spec["worker"] == {"replicas": 2}
    assert spec["file_storage_size"] == "100Gi"
    assert spec["file_storage_access_mode"] == "ReadWriteMany"
    assert spec["file_storage_storage_class"] == "standard"
    assert spec["cache"] == {"enabled": True}  # it always ran Redis
    assert any("no image set" in n for n in result.notes)
    assert any("--storage-class" in n for n in result.notes)


def test_seed_default_crs_are_the_ansible_era_ones() -> None:
    assert len(DEFAULT_CRS) == 2, "ansible-era default CRs missing from ../shared/upstream-samples"


def test_v1alpha1_with_every_field() -> None:
    result = run(V1ALPHA1_FULL, storage_class="fast")
    p = pulp(result)
    spec = p["spec"]
    assert p["metadata"] == {"name": "example-pulp", "namespace": "pulp"}
    assert spec["image"] == "quay.io/pulp/pulp"
    assert spec["image_version"] == spec["image_web_version"] == "3.9"
    assert spec["image_web"] == "quay.io/pulp/pulp-web"
    assert spec["api"] == {"replicas": 1}
    assert spec["content"] == {"replicas": 2}
    assert spec["worker"] == {"replicas": 3}
    assert spec["file_storage_storage_class"] == "fast"
    assert spec["file_storage_size"] == "50Gi"
    assert spec["file_storage_access_mode"] == "ReadWriteOnce"
    assert spec["cache"] == {"enabled": True}
    assert "external_db_secret" not in spec.get("database", {})
    # the database credentials the old CR held inline: where v1 reads them, never regenerated
    secret = objects(result, "Secret")["example-pulp-postgres-configuration"]
    assert secret["metadata"]["namespace"] == "pulp"
    assert secret["stringData"]["password"] == "s3cret"
    assert secret["stringData"]["username"] == "pulp"
    assert secret["stringData"]["host"] == "example-pulp-database-svc"
    settings = objects(result, "ConfigMap")["example-pulp-settings"]
    assert spec["custom_pulp_settings"] == "example-pulp-settings"
    assert settings["data"] == {
        "content_origin": "'http://myserver.fqdn:24816'",
        "debug": "True",
    }
    notes = "\n".join(result.notes)
    assert "admin_password" in notes
    assert "pulp_content.log_level DEBUG" in notes


def test_v1beta1_with_object_storage_external_database_and_ingress() -> None:
    result = run(V1BETA1_FULL)
    spec = pulp(result)["spec"]
    assert spec["image"] == "quay.io/pulp/pulp"
    assert spec["image_version"] == "3.15.2"
    assert spec["object_storage_s3_secret"] == "my-s3"
    assert "file_storage_storage_class" not in spec
    assert spec["admin_password_secret"] == "my-admin"
    assert spec["api"]["replicas"] == 2
    assert spec["api"]["resource_requirements"] == {"requests": {"cpu": "200m", "memory": "512Mi"}}
    assert spec["ingress_type"] == "ingress"
    assert spec["ingress_host"] == "pulp.example.com"
    assert spec["ingress_annotations"] == {"kubernetes.io/ingress.class": "nginx"}
    # an unmanaged postgres_configuration_secret becomes an external database
    assert spec["database"] == {"external_db_secret": "example-pulp-external-database"}
    external = objects(result, "Secret")["example-pulp-external-database"]["stringData"]
    assert external == {
        "POSTGRES_HOST": "db.example.com", "POSTGRES_PORT": "5433",
        "POSTGRES_USERNAME": "pulpuser", "POSTGRES_PASSWORD": "dbpass",
        "POSTGRES_DB_NAME": "pulpdb", "POSTGRES_SSLMODE": "require",
    }  # fmt: skip
    assert objects(result, "ConfigMap")["example-pulp-settings"]["data"] == {
        "allowed_export_paths": "['/tmp']",
        "debug": "True",
    }
    notes = "\n".join(result.notes)
    assert "spec.deployment_type has no v1 equivalent" in notes
    assert "resource_manager.replicas 2" in notes
    assert "spec.file_storage_access_mode is unused with object storage" in notes
    assert "spec.postgres_storage_requirements is unused with an external database" in notes
    # the Secret passes through too (it is what the old CR referenced)
    assert "pg-ext" in objects(result, "Secret")


def test_external_database_and_redis_from_pulp_settings() -> None:
    text = """
apiVersion: pulpproject.org/v1alpha1
kind: Pulp
metadata: {name: p}
spec:
  pulp_settings:
    databases: {default: {HOST: db.corp, PORT: 6432, NAME: pulp, USER: u, PASSWORD: pw}}
    redis_host: cache.corp
    redis_port: 6380
    redis_password: rpw
"""
    result = run(text)
    spec = pulp(result)["spec"]
    assert spec["database"] == {"external_db_secret": "p-external-database"}
    assert spec["cache"] == {"enabled": True, "external_cache_secret": "p-external-redis"}
    secrets = objects(result, "Secret")
    assert secrets["p-external-database"]["stringData"]["POSTGRES_PORT"] == "6432"
    assert secrets["p-external-redis"]["stringData"] == {
        "REDIS_HOST": "cache.corp", "REDIS_PORT": "6380", "REDIS_PASSWORD": "rpw", "REDIS_DB": "0",
    }  # fmt: skip
    assert "custom_pulp_settings" not in spec  # nothing else was in pulp_settings


def test_managed_postgres_configuration_secret_in_the_file() -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg"},
        "data": {k: base64.b64encode(v.encode()).decode()
                 for k, v in {"username": "a", "password": "b", "database": "c",
                              "type": "managed"}.items()},
    }  # fmt: skip
    cr = {
        "apiVersion": "pulp.pulpproject.org/v1beta1",
        "kind": "Pulp",
        "metadata": {"name": "p"},
        "spec": {"postgres_configuration_secret": "pg", "file_storage_storage_class": "x"},
    }
    result = convert([cr, secret])
    converted = objects(result, "Secret")["p-postgres-configuration"]["stringData"]
    assert (converted["username"], converted["password"], converted["database"]) == ("a", "b", "c")
    assert "external_db_secret" not in pulp(result)["spec"].get("database", {})


def test_unknown_fields_are_noted_not_lost() -> None:
    result = run(
        "apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
        "spec: {tolerations: [], api: {replicas: 1, node_selector: {a: b}}, foo: 1}"
    )
    notes = "\n".join(result.notes)
    for path in ("spec.tolerations", "spec.api.node_selector", "spec.foo"):
        assert f"{path} has no v1 equivalent" in notes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: ConfigMap\nmetadata: {name: x}", "no Pulp found"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {}",
         "Pulp: metadata.name is required"),
        ("apiVersion: example.com/v9\nkind: Pulp\nmetadata: {name: p}",
         "Pulp p: apiVersion example.com/v9 is not a version of the original operator"),
        ("apiVersion: repo-manager.pulpproject.org/v1\nkind: Pulp\nmetadata: {name: p}",
         "is current already"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
         "spec: {api: {replicas: two}}",
         "Pulp p: spec.api.replicas: expected an integer, got the string 'two'"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
         "spec: {pulp_settings: [1]}",
         "Pulp p: spec.pulp_settings: expected a mapping, got a list"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
         "spec: {storage_type: nfs}", "Pulp p: spec.storage_type: 'nfs' is not File, S3 or Azure"),
        ("apiVersion: pulpproject.org/v1alpha1\nkind: Pulp\nmetadata: {name: p}\nspec:\n"
         "  pulp_settings: {databases: {default: {PORT: '5432,'}}}",
         "spec.pulp_settings.databases.default.PORT: expected an integer"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
         "spec: {ingress_type: ingress}",
         "Pulp p: the converted spec: ingress_host is required"),
        ("apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n"
         "spec: {api: {replicas: -1}}", "the converted spec.api.replicas"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ConvertError) as caught:
        run(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_python_literal() -> None:
    assert python_literal("True") == "True"
    assert python_literal(True) == "True"
    assert python_literal("x") == "'x'"
    assert python_literal({"a": [1, "b"]}) == "{'a': [1, 'b']}"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulp_operator.cli", "convert", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_prints_v1_and_notes_on_stderr() -> None:
    out = cli("-f", "-", stdin=V1ALPHA1_FULL)
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == ["Secret", "ConfigMap", "Pulp"]
    assert all(line.startswith("note: Pulp example-pulp: ") for line in out.stderr.splitlines())
    assert out.stderr.strip()


def test_cli_errors() -> None:
    bad = cli("-f", "-", stdin="apiVersion: x/v1\nkind: Pulp\nmetadata: {name: p}\n")
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: Pulp p: apiVersion x/v1")
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = cli("-f", "/nonexistent.yaml")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read /nonexistent.yaml")
    broken = cli("-f", "-", stdin="a: [")
    assert broken.returncode == 1
    assert "is not valid YAML" in broken.stderr
