"""Object storage settings, the migrations they need, and the trusted CA bundle (desired.build)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from pulp_operator import desired, names
from pulp_operator.api.pulp import PulpStatus
from pulp_operator.desired.inputs import Inputs, JobState
from pulp_operator.desired.trust import CA_BUNDLE, INJECT_LABEL

from .desired_samples import SAMPLES, container, find, inputs
from .test_desired_build import settings_of

N = "example-pulp"
SECRET = "example-pulp-object-storage"


def ci_secret(kind: str) -> dict[str, str]:
    doc = yaml.safe_load(
        (SAMPLES / "ci-assets" / f"pulp-object-storage.{kind}.secret.yaml").read_text()
    )
    return {k: str(v) for k, v in doc["stringData"].items()}


def with_secret(data: Inputs, name: str, values: dict[str, str]) -> Inputs:
    return replace(data, secrets={**data.secrets, name: values})


def env_of(built: desired.Desired, component: str = "api") -> dict[str, dict[str, Any]]:
    dep = find(built.objects, "Deployment", f"{N}-{component}")
    return {e["name"]: e for e in container(dep)["env"]}


def volumes_of(built: desired.Desired, component: str = "api") -> dict[str, dict[str, Any]]:
    dep = find(built.objects, "Deployment", f"{N}-{component}")
    return {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}


def mounts_of(built: desired.Desired, component: str = "api") -> dict[str, dict[str, Any]]:
    dep = find(built.objects, "Deployment", f"{N}-{component}")
    return {m["mountPath"]: m for m in container(dep)["volumeMounts"]}


def s3_sample(**secret_changes: str | None) -> Inputs:
    values = {**ci_secret("aws"), **secret_changes}
    return with_secret(
        inputs("simple.s3.ci.yaml"), SECRET, {k: v for k, v in values.items() if v is not None}
    )


def test_s3_upstream_ci_shape() -> None:
    """s3-region in the Secret and the endpoint as the custom setting aws_s3_endpoint_url."""
    built = desired.build(s3_sample())
    assert built.problems == []
    settings = settings_of(built)
    assert settings["STORAGES"]["default"] == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "addressing_style": "path",
            "bucket_name": "pulp3",
            "region_name": "us-east-1",
            "signature_version": "s3v4",
        },
    }
    # django-storages takes an option it is not given from the AWS_* setting of the same meaning
    assert settings["AWS_S3_ENDPOINT_URL"] == "http://pulp_minio:9000"
    assert settings["MEDIA_ROOT"] == ""
    assert settings["REDIRECT_TO_OBJECT_STORAGE"] is False
    env = env_of(built)
    assert env["SECRET_STORAGES__default__OPTIONS__access_key"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET,
        "key": "s3-access-key-id",
    }
    assert env["SECRET_STORAGES__default__OPTIONS__secret_key"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET,
        "key": "s3-secret-access-key",
    }
    text = find(built.objects, "Secret", names.server_settings(N))["stringData"]["settings.py"]
    assert "REDACTED" not in text  # the key pair is not written into settings.py
    assert not [o for o in built.objects if o["kind"] == "PersistentVolumeClaim"]
    mounts = mounts_of(built)
    assert "/var/lib/pulp" not in mounts
    assert "/var/lib/pulp/tmp" in mounts  # uploads and task files


def test_s3_endpoint_without_region_or_keys() -> None:
    """Upstream #882: s3-endpoint alone is enough; without a key pair boto3 finds credentials
    itself (IRSA, instance profiles), so none is required."""
    built = desired.build(
        s3_sample(
            **{
                "s3-endpoint": "http://10.0.0.1:7070",
                "s3-region": None,
                "s3-access-key-id": None,
                "s3-secret-access-key": None,
                "s3-addressing-style": "virtual",
            }
        )
    )
    assert built.problems == []
    options = settings_of(built)["STORAGES"]["default"]["OPTIONS"]
    assert options["endpoint_url"] == "http://10.0.0.1:7070"
    assert options["addressing_style"] == "virtual"
    assert "region_name" not in options
    assert not [e for e in env_of(built) if e.startswith("PULP_STORAGES__")]


def test_s3_backend_name_before_pulpcore_3_49() -> None:
    built = desired.build(
        with_secret(
            inputs("simple.s3.ci.yaml", spec_update={"image_version": "3.45.0"}),
            SECRET,
            ci_secret("aws"),
        )
    )
    backend = settings_of(built)["STORAGES"]["default"]["BACKEND"]
    assert backend == "storages.backends.s3boto3.S3Boto3Storage"


def test_azure_upstream_ci_shape() -> None:
    built = desired.build(with_secret(inputs("simple.azure.ci.yaml"), SECRET, ci_secret("azure")))
    assert built.problems == []
    settings = settings_of(built)
    assert settings["STORAGES"]["default"] == {
        "BACKEND": "storages.backends.azure_storage.AzureStorage",
        "OPTIONS": {
            "account_name": "devstoreaccount1",
            "azure_container": "pulp-test",
            "expiration_secs": 60,
            "location": "pulp3",
            "overwrite_files": True,
        },
    }
    env = env_of(built, "content")
    assert env["SECRET_STORAGES__default__OPTIONS__account_key"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET,
        "key": "azure-account-key",
    }
    assert env["SECRET_STORAGES__default__OPTIONS__connection_string"]["valueFrom"][
        "secretKeyRef"
    ] == {"name": SECRET, "key": "azure-connection-string"}


def gcs_inputs(values: dict[str, str]) -> Inputs:
    data = inputs(
        "simple.s3.ci.yaml",
        spec_update={"object_storage_s3_secret": None, "object_storage_gcs_secret": "gcs"},
    )
    return with_secret(data, "gcs", values)


def test_gcs_upstream_keys_and_workload_identity() -> None:
    """Upstream's keys (gcs-bucket-name, gcs-iam-sign-blob, gcs-querystring-auth,
    gcs-file-overwrite) and no key file: Workload Identity, as upstream documents."""
    built = desired.build(
        gcs_inputs(
            {
                "gcs-bucket-name": "pulp-bucket",
                "gcs-iam-sign-blob": "True",
                "gcs-querystring-auth": "false",
                "gcs-file-overwrite": "true",
            }
        )
    )
    assert built.problems == []
    assert settings_of(built)["STORAGES"]["default"] == {
        "BACKEND": "storages.backends.gcloud.GoogleCloudStorage",
        "OPTIONS": {
            "bucket_name": "pulp-bucket",
            "file_overwrite": True,
            "iam_sign_blob": True,
            "querystring_auth": False,
        },
    }
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env_of(built)
    sources = volumes_of(built)["keys"]["projected"]["sources"]
    assert not [s for s in sources if s["secret"]["name"] == "gcs"]


def test_gcs_service_account_key_file() -> None:
    built = desired.build(gcs_inputs({"gcs-bucket-name": "b", "gcs-key.json": "{}"}))
    assert built.problems == []
    env = env_of(built, "worker")
    assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == "/etc/pulp/keys/gcs-key.json"
    sources = volumes_of(built, "worker")["keys"]["projected"]["sources"]
    assert {
        "secret": {"name": "gcs", "items": [{"key": "gcs-key.json", "path": "gcs-key.json"}]}
    } in (sources)


def test_gcs_flag_that_is_not_a_boolean() -> None:
    built = desired.build(gcs_inputs({"gcs-bucket-name": "b", "gcs-querystring-auth": "sometimes"}))
    assert [(p.reason, p.condition) for p in built.problems] == [("InvalidSetting", "StorageReady")]
    assert "gcs-querystring-auth" in built.problems[0].message
    assert "querystring_auth" not in settings_of(built)["STORAGES"]["default"]["OPTIONS"]


def migrated(data: Inputs) -> Inputs:
    """The Pulp of data with the migrations of its spec done."""
    status = PulpStatus(
        image=desired.spec_image(data.spec),
        migrated_image=desired.spec_image(data.spec),
        migrated_settings=desired.migration_settings(data.spec),
    )
    return replace(data, status=status)


def test_redirect_change_runs_the_migrations_without_holding_the_pods() -> None:
    """pulpcore copies the storage backend and the redirect flag into its default domain only
    when it migrates: changing them must run the migrations again."""
    before = migrated(s3_sample())
    assert desired.build(before).migration_job is None
    flipped = replace(
        before, spec=before.spec.model_copy(update={"redirect_to_object_storage": True})
    )
    built = desired.build(flipped)
    assert built.migration_job is not None
    assert built.image == desired.spec_image(flipped.spec)  # same image: nothing to hold back
    assert settings_of(built)["REDIRECT_TO_OBJECT_STORAGE"] is True
    done = replace(flipped, jobs={built.migration_job: JobState(built.migration_job, "succeeded")})
    assert desired.build(done).problems == []
    # With file storage the flag means nothing to pulpcore: no migration for it.
    file_pulp = migrated(inputs("simple.yaml"))
    toggled = file_pulp.spec.model_copy(update={"redirect_to_object_storage": True})
    assert desired.build(replace(file_pulp, spec=toggled)).migration_job is None


def test_storage_backend_change_runs_the_migrations() -> None:
    before = migrated(s3_sample())
    azure = before.spec.model_copy(
        update={"object_storage_s3_secret": None, "object_storage_azure_secret": "az"}
    )
    after = with_secret(replace(before, spec=azure), "az", ci_secret("azure"))
    assert desired.build(after).migration_job is not None


def trust_inputs(**spec: Any) -> Inputs:
    return inputs("simple.yaml", spec_update=spec)


def test_trusted_ca_without_a_key_waits_for_the_bundle() -> None:
    data = trust_inputs(mount_trusted_ca=True)
    cm_name = names.trusted_ca_bundle(N)
    built = desired.build(data)
    cm = find(built.objects, "ConfigMap", cm_name)
    assert cm["metadata"]["labels"][INJECT_LABEL] == "true"
    assert "data" not in cm  # the CNO (or a user) writes it; server-side apply leaves it alone
    assert ("ConfigMap", cm_name) in built.keep
    assert names.KEEP_ANNOTATION in cm["metadata"]["annotations"]
    assert "trusted-ca" not in volumes_of(built)
    assert [p.reason for p in built.problems] == ["TrustedCABundleEmpty"]
    assert cm_name in built.problems[0].message

    filled = replace(data, config_maps={**data.config_maps, cm_name: {"ca-bundle.crt": "PEM-1"}})
    ready = desired.build(filled)
    assert ready.problems == []
    for component in ("api", "content", "worker"):
        assert volumes_of(ready, component)["trusted-ca"]["configMap"] == {
            "name": cm_name,
            "items": [{"key": "ca-bundle.crt", "path": "ca-bundle.crt"}],
        }
        assert mounts_of(ready, component)[CA_BUNDLE]["subPath"] == "ca-bundle.crt"
    annotation = names.CONFIG_HASH_ANNOTATION

    def config_hash(b: desired.Desired) -> str:
        dep = find(b.objects, "Deployment", f"{N}-api")
        return str(dep["spec"]["template"]["metadata"]["annotations"][annotation])

    rotated = replace(data, config_maps={**data.config_maps, cm_name: {"ca-bundle.crt": "PEM-2"}})
    assert config_hash(ready) != config_hash(desired.build(rotated)) != config_hash(built)


def test_trusted_ca_configmap_key_forms() -> None:
    one_key = trust_inputs(mount_trusted_ca=True, mount_trusted_ca_configmap_key="bundle")
    one_key = replace(one_key, config_maps={**one_key.config_maps, "bundle": {"ca.pem": "PEM"}})
    built = desired.build(one_key)
    assert built.problems == []
    assert volumes_of(built)["trusted-ca"]["configMap"]["items"] == [
        {"key": "ca.pem", "path": "ca-bundle.crt"}
    ]
    assert not [
        o for o in built.objects if o["kind"] == "ConfigMap" and "user-ca" in o["metadata"]["name"]
    ]

    several = replace(one_key, config_maps={**one_key.config_maps, "bundle": {"a": "1", "b": "2"}})
    built = desired.build(several)
    assert [p.reason for p in built.problems] == ["TrustedCAKeyAmbiguous"]
    assert "trusted-ca" not in volumes_of(built)

    explicit = trust_inputs(mount_trusted_ca=True, mount_trusted_ca_configmap_key="bundle:b")
    explicit = replace(
        explicit, config_maps={**explicit.config_maps, "bundle": {"a": "1", "b": "2"}}
    )
    assert volumes_of(desired.build(explicit))["trusted-ca"]["configMap"]["items"] == [
        {"key": "b", "path": "ca-bundle.crt"}
    ]
