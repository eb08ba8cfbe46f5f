"""The reconciler against a real kube-apiserver: objects, updates, drift, bad input, no-ops."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    PersistentVolumeClaim,
    Secret,
    Service,
)
from lightkube.types import PatchType

from pulp_operator import names
from pulp_operator.kube import OWNED_KINDS, Kube, kind_key
from pulp_operator.reconciler import Reconciler
from pulp_operator.render import render

from .pulps import (
    condition,
    create_all,
    get_pulp,
    load_sample,
    patch_spec,
    rejected,
    sample_files,
)

pytestmark = pytest.mark.apiserver


async def owned(kube: Kube, namespace: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for cls in OWNED_KINDS:
        for obj in await kube.list_owned(cls, namespace, name):
            out[(kind_key(cls), obj["metadata"]["name"])] = obj
    return out


def rendered_keys(docs: list[dict[str, Any]], namespace: str, name: str) -> set[tuple[str, str]]:
    result = render(
        [d for d in docs if d.get("kind") != "Pulp" or d["metadata"]["name"] == name],
        namespace=namespace,
    )
    return {job_stem(o["kind"], o["metadata"]["name"]) for o in result.objects}


def job_stem(kind: str, name: str) -> tuple[str, str]:
    """Jobs are named after a hash of what they do (which for the admin password involves a
    generated key): compare them by the name without it."""
    return (kind, name.rsplit("-", 1)[0] if kind == "Job" else name)


@pytest.mark.parametrize("sample", sample_files())
async def test_sample_yields_the_rendered_objects(
    kube: Kube, api_namespace: str, sample: str
) -> None:
    docs = load_sample(sample)
    pulps = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    for name in pulps:
        outcome = await reconciler.reconcile(api_namespace, name)
        pulp = await get_pulp(kube, api_namespace, name)
        if pulp["spec"].get("ingress_type", "").lower() == "route":
            # no route.openshift.io here: a clear condition instead of Routes
            ready = condition(pulp, "Ready")
            assert ready["reason"] == "RouteUnsupported"
            assert "spec.ingress_type" in ready["message"]
            continue
        assert not outcome.problems, outcome.problems
        live = set(await owned(kube, api_namespace, name))
        # what `render` prints is what the operator applies (generated secrets included)
        assert rendered_keys(docs, api_namespace, name) <= {job_stem(*k) for k in live}
        assert ("Deployment", names.api(name)) in live
        assert ("Service", names.content_service(name)) in live
        assert pulp["status"]["observedGeneration"] == pulp["metadata"]["generation"]
        assert condition(pulp, "Ready")["status"] == "False"  # no pods run on this tier


async def test_noop_pass_writes_nothing(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    before = {
        k: v["metadata"]["resourceVersion"]
        for k, v in (await owned(kube, api_namespace, name)).items()
    }
    pulp_rv = (await get_pulp(kube, api_namespace, name))["metadata"]["resourceVersion"]
    kube.writes.clear()

    outcome = await reconciler.reconcile(api_namespace, name)

    assert sum(kube.writes.values()) == 0, (kube.writes, outcome)
    after = {
        k: v["metadata"]["resourceVersion"]
        for k, v in (await owned(kube, api_namespace, name)).items()
    }
    assert after == before
    assert (await get_pulp(kube, api_namespace, name))["metadata"]["resourceVersion"] == pulp_rv


async def test_updates_converge(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)

    await patch_spec(kube, api_namespace, name, {"worker": {"replicas": 3}})
    await reconciler.reconcile(api_namespace, name)
    worker = await kube.get(Deployment, names.worker(name), api_namespace)
    assert worker is not None
    assert worker["spec"]["replicas"] == 3

    # cache off: the managed Redis goes away
    await patch_spec(kube, api_namespace, name, {"cache": {"enabled": False}})
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Deployment, names.redis(name), api_namespace) is None
    assert await kube.get(Service, names.redis_service(name), api_namespace) is None

    # ingress with an nginx controller: no pulp-web any more
    await patch_spec(
        kube,
        api_namespace,
        name,
        {"ingress_type": "ingress", "ingress_host": "pulp.example.com", "is_nginx_ingress": True},
    )
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Deployment, names.web(name), api_namespace) is None
    live = await owned(kube, api_namespace, name)
    assert ("Ingress", names.ingress(name)) in live

    # settings change: new settings.py and new config hash on the pods
    api_before = await kube.get(Deployment, names.api(name), api_namespace)
    assert api_before is not None
    settings = await kube.get(ConfigMap, "settings", api_namespace)
    assert settings is not None
    await kube.client.patch(
        ConfigMap, "settings", {"data": {"analytics": "True"}}, namespace=api_namespace
    )
    await reconciler.reconcile(api_namespace, name)
    api_after = await kube.get(Deployment, names.api(name), api_namespace)
    assert api_after is not None
    assert config_hash(api_after) != config_hash(api_before)


async def test_image_change_waits_for_migration(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    jobs = [k for k in await owned(kube, api_namespace, name) if k[0] == "Job"]
    assert jobs, "a fresh Pulp runs its migrations"

    # pretend the first migration finished (no controllers run on this tier)
    for _, job_name in jobs:
        await complete_job(kube, api_namespace, job_name)
    await reconciler.reconcile(api_namespace, name)
    pulp = await get_pulp(kube, api_namespace, name)
    old_image = pulp["status"]["image"]
    assert pulp["status"]["migrated_image"] == old_image

    await patch_spec(
        kube, api_namespace, name, {"image_version": "3.999.0", "image_web_version": "3.999.0"}
    )
    await reconciler.reconcile(api_namespace, name)
    api = await kube.get(Deployment, names.api(name), api_namespace)
    assert api is not None
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == old_image
    new_jobs = [
        o
        for (k, _), o in (await owned(kube, api_namespace, name)).items()
        if k == "Job"
        and o["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":3.999.0")
    ]
    assert len(new_jobs) == 1
    pulp = await get_pulp(kube, api_namespace, name)
    assert condition(pulp, "MigrationsComplete")["status"] == "False"

    await complete_job(kube, api_namespace, new_jobs[0]["metadata"]["name"])
    await reconciler.reconcile(api_namespace, name)
    api = await kube.get(Deployment, names.api(name), api_namespace)
    assert api is not None
    assert api["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":3.999.0")


def config_hash(deployment: dict[str, Any]) -> str:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    return str(annotations[names.CONFIG_HASH_ANNOTATION])


async def complete_job(kube: Kube, namespace: str, name: str) -> None:
    now = "2026-01-01T00:00:00Z"
    await kube.client.patch(
        Job.Status,
        name,
        {
            "status": {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "lastTransitionTime": now},
                ],
            }
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


async def test_drift_is_repaired(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)

    await kube.client.delete(Deployment, names.api(name), namespace=api_namespace)
    await kube.client.patch(
        Deployment, names.content(name), {"spec": {"replicas": 7}}, namespace=api_namespace
    )
    await kube.client.patch(
        StatefulSet,
        names.database(name),
        {"spec": {"template": {"spec": {"containers": [{"name": "postgres", "image": "evil:1"}]}}}},
        namespace=api_namespace,
    )
    await reconciler.reconcile(api_namespace, name)

    assert await kube.get(Deployment, names.api(name), api_namespace) is not None
    content = await kube.get(Deployment, names.content(name), api_namespace)
    assert content is not None
    assert content["spec"]["replicas"] == 1
    db = await kube.get(StatefulSet, names.database(name), api_namespace)
    assert db is not None
    images = [c["image"] for c in db["spec"]["template"]["spec"]["containers"]]
    assert "evil:1" not in images


async def test_missing_secret_is_a_condition_and_recovers(kube: Kube, api_namespace: str) -> None:
    docs = [d for d in load_sample("simple.yaml") if d["kind"] != "Secret"]
    (name,) = await create_all(kube, api_namespace, docs, stand_ins=False)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)

    pulp = await get_pulp(kube, api_namespace, name)
    ready = condition(pulp, "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "SecretNotFound"
    assert ready["message"] == (
        "Secret example-pulp-admin-password referenced by spec.admin_password_secret"
        f" not found in namespace {api_namespace}"
    )
    assert await kube.get(Deployment, names.api(name), api_namespace) is None

    await create_all(
        kube, api_namespace, [d for d in load_sample("simple.yaml") if d["kind"] == "Secret"]
    )
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Deployment, names.api(name), api_namespace) is not None
    assert (
        condition(await get_pulp(kube, api_namespace, name), "Ready")["reason"] != "SecretNotFound"
    )


async def test_bad_edit_keeps_what_runs(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    server = await kube.get(Secret, names.server_settings(name), api_namespace)
    assert server is not None

    await kube.client.patch(
        ConfigMap, "settings", {"data": {"token_server": "not python ("}}, namespace=api_namespace
    )
    await reconciler.reconcile(api_namespace, name)
    pulp = await get_pulp(kube, api_namespace, name)
    ready = condition(pulp, "Ready")
    assert ready["status"] == "False"
    assert "token_server" in ready["message"]
    still = await kube.get(Secret, names.server_settings(name), api_namespace)
    assert still is not None
    assert still["data"] == server["data"]
    assert await kube.get(Deployment, names.api(name), api_namespace) is not None


async def test_generated_secrets_are_never_regenerated(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("minimal.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    keys = {
        n: await kube.get(Secret, n, api_namespace)
        for n in (
            names.db_fields_encryption(name),
            names.postgres_configuration(name),
            names.admin_password(name),
            names.secret_key(name),
        )
    }
    assert all(v is not None for v in keys.values()), keys
    await reconciler.reconcile(api_namespace, name)
    for secret_name, before in keys.items():
        after = await kube.get(Secret, secret_name, api_namespace)
        assert after is not None
        assert before is not None
        assert after["data"] == before["data"], secret_name
    # data-protecting secrets carry no ownerReference: they survive deletion of the Pulp
    fernet = keys[names.db_fields_encryption(name)]
    assert fernet is not None
    assert not fernet["metadata"].get("ownerReferences")
    # nor does the admin password: a Pulp created again keeps it (clients stored it)
    admin = keys[names.admin_password(name)]
    assert admin is not None
    assert not admin["metadata"].get("ownerReferences")
    django_key = keys[names.secret_key(name)]
    assert django_key is not None
    assert django_key["metadata"]["ownerReferences"][0]["kind"] == "Pulp"


async def test_admission_rejects_what_cel_can_express(kube: Kube, api_namespace: str) -> None:
    base = {
        "apiVersion": "repo-manager.pulpproject.org/v1",
        "kind": "Pulp",
        "metadata": {"name": "bad"},
    }
    message = await rejected(
        kube, api_namespace, {**base, "spec": {"pvc": "a", "object_storage_s3_secret": "b"}}
    )
    assert "exactly one storage type must be set" in message
    message = await rejected(
        kube, api_namespace, {**base, "spec": {"pvc": "a", "ingress_type": "Ingress"}}
    )
    assert "ingress_host is required" in message
    message = await rejected(
        kube, api_namespace, {**base, "spec": {"pvc": "a", "api": {"replicas": -1}}}
    )
    assert "replicas" in message
    long_name = {**base, "metadata": {"name": "x" * 50}, "spec": {"pvc": "a"}}
    assert "at most 40 characters" in await rejected(kube, api_namespace, long_name)


async def test_unmanaged_changes_nothing(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    await patch_spec(kube, api_namespace, name, {"unmanaged": True, "worker": {"replicas": 5}})
    await reconciler.reconcile(api_namespace, name)
    worker = await kube.get(Deployment, names.worker(name), api_namespace)
    assert worker is not None
    assert worker["spec"]["replicas"] == 1
    assert condition(await get_pulp(kube, api_namespace, name), "Ready")["reason"] == "Unmanaged"


async def test_autoscaling_and_disruption_budgets(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    await patch_spec(
        kube,
        api_namespace,
        name,
        {
            "content": {
                "hpa": {"enabled": True, "min_replicas": 2, "max_replicas": 5},
                "pdb": {"minAvailable": 1},
            }
        },
    )
    await reconciler.reconcile(api_namespace, name)
    live = await owned(kube, api_namespace, name)
    hpa = live[("HorizontalPodAutoscaler", names.content(name))]
    assert hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["scaleTargetRef"]["name"] == names.content(name)
    pdb = live[("PodDisruptionBudget", names.content(name))]
    assert pdb["spec"]["selector"]["matchLabels"] == names.selector(name, "content")
    # the HPA owns the replicas now: the operator's field manager no longer sets them
    content = live[("Deployment", names.content(name))]
    managers = {
        m["manager"]: m for m in content["metadata"]["managedFields"] if m["operation"] == "Apply"
    }
    assert '"f:replicas"' not in str(managers[names.MANAGER]["fieldsV1"])

    await patch_spec(kube, api_namespace, name, {"content": {"hpa": None, "pdb": None}})
    await reconciler.reconcile(api_namespace, name)
    live = await owned(kube, api_namespace, name)
    assert ("HorizontalPodAutoscaler", names.content(name)) not in live
    assert ("PodDisruptionBudget", names.content(name)) not in live


async def test_admin_password_change_runs_a_reset_job(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    prefix = names.admin_password_job(name, "")

    def reset_jobs(live: dict[tuple[str, str], Any]) -> set[str]:
        return {n for k, n in live if k == "Job" and n.startswith(prefix)}

    first = reset_jobs(await owned(kube, api_namespace, name))
    assert len(first) == 1
    await complete_job(kube, api_namespace, next(iter(first)))
    await reconciler.reconcile(api_namespace, name)
    assert reset_jobs(await owned(kube, api_namespace, name)) == set()  # done, pruned

    await kube.client.patch(
        Secret,
        "example-pulp-admin-password",
        {"stringData": {"password": "a-new-password"}},
        namespace=api_namespace,
    )
    await reconciler.reconcile(api_namespace, name)
    second = reset_jobs(await owned(kube, api_namespace, name))
    assert len(second) == 1
    assert second != first
    job = (await owned(kube, api_namespace, name))[("Job", next(iter(second)))]
    assert "a-new-password" not in str(job)  # by reference, never by value


async def test_storage_type_and_cache_switches(kube: Kube, api_namespace: str) -> None:
    docs = load_sample("simple.yaml")
    (name,) = await create_all(kube, api_namespace, docs)
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)

    def volumes(dep: dict[str, Any]) -> set[str]:
        return {v["name"] for v in dep["spec"]["template"]["spec"].get("volumes", [])}

    api = await kube.get(Deployment, names.api(name), api_namespace)
    assert api is not None
    assert "file-storage" in volumes(api)

    # file storage -> S3: no file volume any more, STORAGES in settings.py, the PVC (data) kept
    await create_all(
        kube,
        api_namespace,
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3"},
                "stringData": {
                    "s3-access-key-id": "id",
                    "s3-secret-access-key": "s3-secret-value-417",
                    "s3-bucket-name": "bucket",
                    "s3-region": "eu-west-1",
                },
            }
        ],
    )
    await patch_spec(
        kube,
        api_namespace,
        name,
        {
            "file_storage_storage_class": None,
            "file_storage_size": None,
            "file_storage_access_mode": None,
            "object_storage_s3_secret": "s3",
        },
    )
    outcome = await reconciler.reconcile(api_namespace, name)
    assert not outcome.problems, outcome.problems
    api = await kube.get(Deployment, names.api(name), api_namespace)
    assert api is not None
    assert "file-storage" not in volumes(api)
    server = await kube.get(Secret, names.server_settings(name), api_namespace)
    assert server is not None
    settings_py = base64.b64decode(server["data"]["settings.py"]).decode()
    assert "storages.backends.s3" in settings_py
    assert "s3-secret-value-417" not in settings_py  # reaches the pods by reference
    assert await kube.get(PersistentVolumeClaim, names.file_storage(name), api_namespace)
    pulp = await get_pulp(kube, api_namespace, name)
    assert pulp["status"]["storage_type"] == "S3"

    # cache off, then on again
    await patch_spec(kube, api_namespace, name, {"cache": {"enabled": False}})
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Deployment, names.redis(name), api_namespace) is None
    await patch_spec(kube, api_namespace, name, {"cache": {"enabled": True}})
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Deployment, names.redis(name), api_namespace) is not None
    assert await kube.get(Service, names.redis_service(name), api_namespace) is not None


async def test_telemetry_pulp_converges_without_warnings(kube: Kube, api_namespace: str) -> None:
    """The collector ConfigMap, Service and sidecar apply in one pass, with no Warning event (no
    field is reported as unsupported any more), and a second pass writes nothing."""
    (name,) = await create_all(kube, api_namespace, load_sample("simple.telemetry.yaml"))
    reconciler = Reconciler(kube)
    await reconciler.reconcile(api_namespace, name)
    assert await kube.get(Service, names.otel_collector_service(name), api_namespace) is not None
    events = [e async for e in kube.client.list(Event, namespace=api_namespace)]
    assert [e.reason for e in events if e.type == "Warning"] == []
    kube.writes.clear()
    await reconciler.reconcile(api_namespace, name)
    assert sum(kube.writes.values()) == 0, kube.writes
