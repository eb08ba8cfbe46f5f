"""desired.build across changes: upgrades and migrations, admin password, problems, topology."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pulp_operator import desired, names
from pulp_operator.api.pulp import PulpStatus
from pulp_operator.desired.inputs import ClusterFacts, JobState

from .desired_samples import container, find, inputs, kinds_names

N = "example-pulp"
OLD = "quay.io/pulp/pulp-minimal:3.85.0"
NEW = "quay.io/pulp/pulp-minimal:3.90.0"


def pulpcore_images(built: desired.Desired) -> set[str]:
    return {
        container(find(built.objects, "Deployment", f"{N}-{c}"))["image"]
        for c in ("api", "content", "worker")
    }


def jobs(built: desired.Desired) -> list[str]:
    return [n for k, n in kinds_names(built.objects) if k == "Job"]


def upgrade_inputs(**changes: Any) -> desired.Inputs:
    """simple.yaml running 3.85.0 (migrated), whose spec now asks for 3.90.0."""
    changes.setdefault("status", PulpStatus(image=OLD, migrated_image=OLD))
    spec_update = {
        "image_version": "3.90.0",
        "image_web_version": "3.90.0",
        **changes.pop("spec_update", {}),
    }
    return inputs("simple.yaml", spec_update=spec_update, **changes)


def test_fresh_install_runs_spec_image_and_migrates() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"image_version": "3.90.0"}))
    assert pulpcore_images(built) == {NEW}
    assert built.image == NEW
    assert built.migration_job in jobs(built)


def test_upgrade_waits_for_migration() -> None:
    built = desired.build(upgrade_inputs())
    assert pulpcore_images(built) == {OLD}
    assert built.image == OLD
    assert built.spec_image == NEW
    job = find(built.objects, "Job", built.migration_job or "")
    assert container(job)["image"] == NEW
    assert container(job)["command"] == [
        "/bin/sh",
        "-c",
        "/usr/bin/wait_on_postgres.py && pulpcore-manager migrate --noinput",
    ]
    assert job["spec"]["backoffLimit"] == 2
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert built.problems == []


def test_upgrade_moves_once_migration_succeeded() -> None:
    job = desired.build(upgrade_inputs()).migration_job or ""
    done = desired.build(upgrade_inputs(jobs={job: JobState(job, "succeeded")}))
    assert pulpcore_images(done) == {NEW}
    status = PulpStatus(
        image=OLD,
        migrated_image=NEW,
        migrated_settings=desired.migration_settings(upgrade_inputs().spec),
    )
    recorded = desired.build(upgrade_inputs(status=status))
    assert pulpcore_images(recorded) == {NEW}
    assert recorded.migration_job is None
    assert jobs(recorded) == [recorded.admin_password_job]


def test_failed_migration_is_a_problem_and_old_image_serves() -> None:
    job = desired.build(upgrade_inputs()).migration_job or ""
    failed = desired.build(upgrade_inputs(jobs={job: JobState(job, "failed", "BackoffLimit")}))
    assert pulpcore_images(failed) == {OLD}
    (problem,) = failed.problems
    assert problem.reason == "MigrationFailed"
    assert problem.condition == "MigrationsComplete"
    assert job in problem.message


def test_migration_job_name_follows_image_and_storage() -> None:
    a = desired.build(inputs("simple.yaml")).migration_job
    b = desired.build(inputs("simple.yaml", spec_update={"image_version": "3.90.0"})).migration_job
    assert a
    assert b
    assert a != b
    assert a.startswith(names.migration_job(N, ""))


def test_disable_migrations() -> None:
    built = desired.build(upgrade_inputs(spec_update={"disable_migrations": True}))
    assert built.migration_job is None
    assert not [j for j in jobs(built) if "migration" in j]


def test_admin_password_job() -> None:
    data = inputs("simple.yaml")
    built = desired.build(data)
    name = built.admin_password_job
    assert name == names.admin_password_job(N, built.admin_password_hash or "")
    job = find(built.objects, "Job", name)
    main = container(job)
    assert '--password "$PULP_ADMIN_PASSWORD"' in main["command"][-1]
    env = {e["name"]: e for e in main["env"]}
    assert env["PULP_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{N}-admin-password",
        "key": "password",
    }
    done = desired.build(
        replace(data, status=PulpStatus(admin_password_hash=built.admin_password_hash))
    )
    assert done.admin_password_job is None
    assert not [j for j in jobs(done) if "admin-password" in j]
    secrets = {**data.secrets, f"{N}-admin-password": {"password": "another-one"}}
    changed = desired.build(
        replace(
            data, secrets=secrets, status=PulpStatus(admin_password_hash=built.admin_password_hash)
        )
    )
    assert changed.admin_password_job not in (None, name)
    assert "another-one" not in str(changed.objects)


def test_missing_referenced_secret_is_a_problem() -> None:
    data = inputs("simple.yaml")
    secrets = {k: v for k, v in data.secrets.items() if k != f"{N}-admin-password"}
    built = desired.build(replace(data, secrets=secrets))
    assert any(
        p.message
        == f"Secret {N}-admin-password referenced by spec.admin_password_secret not found in"
        " namespace pulp-ns"
        for p in built.problems
    )
    assert built.admin_password_job is None


def test_invalid_custom_setting() -> None:
    data = inputs("simple.yaml")
    config = {**data.config_maps["settings"], "token_server": "http://not-quoted"}
    built = desired.build(replace(data, config_maps={"settings": config}))
    (problem,) = built.problems
    assert problem.reason == "InvalidSetting"
    assert "ConfigMap settings" in problem.message
    assert "token_server" in problem.message
    assert ("Secret", f"{N}-server") not in kinds_names(built.objects)
    assert ("Deployment", f"{N}-api") in kinds_names(built.objects)


def test_missing_custom_settings_config_map() -> None:
    built = desired.build(replace(inputs("simple.yaml"), config_maps={}))
    assert [p.reason for p in built.problems] == ["ConfigMapNotFound"]
    assert "ConfigMap settings referenced by spec.custom_pulp_settings" in built.problems[0].message
    assert ("Secret", f"{N}-server") not in kinds_names(built.objects)


def test_pulpcore_3_13_resource_manager() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"image_version": "3.13.0"}))
    rm = find(built.objects, "Deployment", f"{N}-resource-manager")
    assert rm["spec"]["replicas"] == 1
    assert rm["spec"]["strategy"] == {"type": "Recreate"}
    command = container(rm)["command"]
    assert command[:2] == ["python3", "-c"]
    assert command[3:] == ["pulpcore-worker", "--resource-manager"]
    compile(command[2], "resource-manager-guard", "exec")  # the guard is valid Python
    assert "pg_try_advisory_lock" in command[2]
    assert container(find(built.objects, "Deployment", f"{N}-worker"))["command"] == [
        "pulpcore-worker"
    ]
    api = container(find(built.objects, "Deployment", f"{N}-api"))["command"]
    assert api[:2] == ["gunicorn", "pulpcore.app.wsgi:application"]
    content = container(find(built.objects, "Deployment", f"{N}-content"))["command"]
    assert content[:4] == [
        "gunicorn",
        "pulpcore.content:server",
        "--worker-class",
        "aiohttp.GunicornWebWorker",
    ]
    rm_selector = rm["spec"]["selector"]["matchLabels"]
    assert rm_selector == names.selector(N, "resource-manager")


def test_resource_manager_hot_spares() -> None:
    spec = {"image_version": "3.13", "resource_manager": {"replicas": 2}}
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    rm = find(built.objects, "Deployment", f"{N}-resource-manager")
    assert rm["spec"]["replicas"] == 2
    assert container(rm)["command"][3:] == ["pulpcore-worker", "--resource-manager"]
    # ignored where there is no resource manager
    spec["image_version"] = "3.123.1"
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    assert ("Deployment", f"{N}-resource-manager") not in kinds_names(built.objects)


def test_rq_era_worker_and_cache_requirement() -> None:
    built = desired.build(inputs("minimal.yaml", spec_update={"image_version": "3.12.2"}))
    worker = container(find(built.objects, "Deployment", f"{N}-worker"))["command"]
    assert worker[:2] == ["rq", "worker"]
    rm = container(find(built.objects, "Deployment", f"{N}-resource-manager"))["command"]
    assert rm[-2:] == ["-n", "resource-manager"]
    assert [p.reason for p in built.problems] == ["CacheRequired"]


def test_new_releases_have_no_resource_manager() -> None:
    for version in ("3.16.0", "3.85.1", "stable", "latest"):
        built = desired.build(inputs("simple.yaml", spec_update={"image_version": version}))
        assert ("Deployment", f"{N}-resource-manager") not in kinds_names(built.objects)


def test_hpa_leaves_replicas_to_the_autoscaler() -> None:
    spec = {
        "api": {"replicas": 2, "hpa": {"enabled": True, "min_replicas": 2, "max_replicas": 5}},
        "content": {
            "hpa": {"enabled": True, "max_replicas": 4, "target_memory_utilization_percentage": 70}
        },
    }
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    assert "replicas" not in find(built.objects, "Deployment", f"{N}-api")["spec"]
    assert find(built.objects, "Deployment", f"{N}-worker")["spec"]["replicas"] == 1
    hpa = find(built.objects, "HorizontalPodAutoscaler", f"{N}-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{N}-api",
    }
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    content_hpa = find(built.objects, "HorizontalPodAutoscaler", f"{N}-content")
    assert [m["resource"]["name"] for m in content_hpa["spec"]["metrics"]] == ["memory"]
    assert ("HorizontalPodAutoscaler", f"{N}-worker") not in kinds_names(built.objects)


def test_pdb_selector_is_forced() -> None:
    spec = {"worker": {"pdb": {"minAvailable": 1, "selector": {"matchLabels": {"x": "y"}}}}}
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    pdb = find(built.objects, "PodDisruptionBudget", f"{N}-worker")
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": names.selector(N, "worker")},
    }


def test_nodeport_to_nginx_ingress_drops_web() -> None:
    nodeport = desired.build(inputs("simple.yaml"))
    assert ("Deployment", f"{N}-web") in kinds_names(nodeport.objects)
    spec = {
        "ingress_type": "ingress",
        "ingress_host": "pulp.example.com",
        "ingress_class_name": "nginx",
        "is_nginx_ingress": True,
        "nodeport_port": None,
    }
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    got = kinds_names(built.objects)
    assert not [n for _, n in got if n.startswith(f"{N}-web") or n == f"{N}-configmap"]
    ingress = find(built.objects, "Ingress", N)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "pulp.example.com"
    backends = {
        p["path"]: (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    }
    api, content = (f"{N}-api-svc", 24817), (f"{N}-content-svc", 24816)
    assert backends == {
        "/pulp/content/": content,
        "/pulp/api/v3/": api,
        # the plugins' routes (checked against the image by tests/e2e/test_plugin_routes.py)
        "/pulp_ansible/galaxy/": api,
        "/v2/": api,
        "/extensions/v2/": api,
        "/pulp/container/": content,
        "/token/": api,
        "/pypi/": api,
        "/": api,
    }
    assert [p["path"] for p in rule["http"]["paths"]][-1] == "/"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "120"


def test_other_ingress_goes_through_web() -> None:
    spec = {
        "ingress_type": "ingress",
        "ingress_host": "pulp.example.com",
        "ingress_tls_secret": "t",
    }
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    web_svc = find(built.objects, "Service", f"{N}-web-svc")
    assert web_svc["spec"]["type"] == "ClusterIP"
    ingress = find(built.objects, "Ingress", N)
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": f"{N}-web-svc", "port": {"number": 24880}}
    assert ingress["spec"]["tls"] == [{"hosts": ["pulp.example.com"], "secretName": "t"}]


def test_loadbalancer_and_none() -> None:
    lb = desired.build(inputs("simple.yaml", spec_update={"ingress_type": "LoadBalancer"}))
    svc = find(lb.objects, "Service", f"{N}-web-svc")["spec"]
    assert svc["type"] == "LoadBalancer"
    assert [p["port"] for p in svc["ports"]] == [24880, 80]
    none = desired.build(inputs("minimal.yaml"))
    assert find(none.objects, "Service", f"{N}-web-svc")["spec"]["type"] == "ClusterIP"
    assert not [k for k, _ in kinds_names(none.objects) if k in ("Ingress", "Route")]


def test_route_needs_openshift() -> None:
    plain = desired.build(inputs("simple-ocp.yaml"))
    assert [p.reason for p in plain.problems] == ["RouteUnsupported"]
    assert "spec.ingress_type" in plain.problems[0].message
    assert not [k for k, _ in kinds_names(plain.objects) if k == "Route"]
    ocp = desired.build(inputs("simple-ocp.yaml", cluster=ClusterFacts(has_routes=True)))
    assert ocp.problems == []
    route = find(ocp.objects, "Route", N)
    assert route["spec"]["host"] == "route_host_placeholder"
    assert route["spec"]["to"]["name"] == f"{N}-web-svc"
    assert ocp.url == "https://route_host_placeholder"


def test_cache_off_has_no_redis() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"cache": {"enabled": False}}))
    assert not [n for _, n in kinds_names(built.objects) if "redis" in n]
    env = {e["name"] for e in container(find(built.objects, "Deployment", f"{N}-api"))["env"]}
    assert "REDIS_SERVICE_HOST" not in env
    minimal = desired.build(inputs("minimal.yaml"))
    assert not [n for _, n in kinds_names(minimal.objects) if "redis" in n]


def test_redis_without_storage_class_uses_empty_dir() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"cache": {"enabled": True}}))
    assert ("PersistentVolumeClaim", f"{N}-redis-data") not in kinds_names(built.objects)
    redis = find(built.objects, "Deployment", f"{N}-redis")
    assert redis["spec"]["template"]["spec"]["volumes"] == [{"name": "redis-data", "emptyDir": {}}]
    assert ("PersistentVolumeClaim", f"{N}-redis-data") not in built.keep


def test_keep_data_on_delete_false() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"keep_data_on_delete": False}))
    assert built.keep == frozenset()


def test_user_env_and_probes_replace_defaults() -> None:
    spec = {
        "api": {
            "env_vars": [{"name": "PULP_SECRET_KEY", "value": "mine"}, {"name": "X", "value": "1"}],
            "readinessProbe": {"tcpSocket": {"port": 24817}},
            "gunicorn_workers": 5,
            "gunicorn_access_logformat": "%(h)s",
        }
    }
    built = desired.build(inputs("simple.yaml", spec_update=spec))
    api = container(find(built.objects, "Deployment", f"{N}-api"))
    env = [e for e in api["env"] if e["name"] == "PULP_SECRET_KEY"]
    assert env == [{"name": "PULP_SECRET_KEY", "value": "mine"}]
    assert api["readinessProbe"] == {"tcpSocket": {"port": 24817}}
    assert api["command"][api["command"].index("--workers") + 1] == "5"
    assert api["command"][-2:] == ["--access-logformat", "%(h)s"]


def test_generated_secrets() -> None:
    data = inputs("simple.yaml")
    got = {(g.name, g.kind, g.keep) for g in desired.generated_secrets(N, "ns", data.spec)}
    assert got == {
        (f"{N}-secret-key", "secret-key", False),
        (f"{N}-db-fields-encryption", "fernet-key", True),
        (f"{N}-container-auth", "container-token", True),
        (f"{N}-postgres-configuration", "postgres", True),
    }
    external = inputs("simple-external-db.yaml")
    kinds = {g.kind: g.keep for g in desired.generated_secrets(N, "ns", external.spec)}
    assert kinds == {
        # a Pulp created again keeps its admin password (clients stored it)
        "admin-password": True,
        "secret-key": False,
        "fernet-key": True,
        "container-token": True,
    }


def test_keep_data_on_delete_false_lets_the_database_claim_go() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"keep_data_on_delete": False}))
    sts = find(built.objects, "StatefulSet", f"{N}-database")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }


def test_missing_key_is_a_problem() -> None:
    data = inputs("simple.yaml")
    secrets = {**data.secrets, f"{N}-db-fields-encryption": {"wrong": "x"}}
    built = desired.build(replace(data, secrets=secrets))
    assert [(p.reason, p.message) for p in built.problems] == [
        (
            "SecretKeyNotFound",
            f"Secret {N}-db-fields-encryption generated for spec.db_fields_encryption_secret"
            " has no key database_fields.symmetric.key",
        )
    ]


def test_trusted_ca_is_mounted_and_hashed() -> None:
    data = inputs("simple-trust-manager.yaml")
    bundle = {"example-pulp-trusted-ca-bundle": {"ca-bundle.crt": "CERT-1"}}
    first = desired.build(replace(data, config_maps={**data.config_maps, **bundle}))
    api = find(first.objects, "Deployment", f"{N}-api")
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert volumes["trusted-ca"]["configMap"] == {
        "name": "example-pulp-trusted-ca-bundle",
        "items": [{"key": "ca-bundle.crt", "path": "ca-bundle.crt"}],
    }
    rotated = {"example-pulp-trusted-ca-bundle": {"ca-bundle.crt": "CERT-2"}}
    second = desired.build(replace(data, config_maps={**data.config_maps, **rotated}))
    annotation = names.CONFIG_HASH_ANNOTATION
    assert (
        api["spec"]["template"]["metadata"]["annotations"][annotation]
        != find(second.objects, "Deployment", f"{N}-api")["spec"]["template"]["metadata"][
            "annotations"
        ][annotation]
    )


def test_container_token_secret_without_its_keys_is_one_problem() -> None:
    data = inputs("simple.yaml", spec_update={"container_token_secret": "tokens"})
    built = desired.build(replace(data, secrets={**data.secrets, "tokens": {"other": "x"}}))
    assert [(p.field, p.reason, p.message) for p in built.problems] == [
        (
            "spec.container_token_secret",
            "SecretKeyNotFound",
            "Secret tokens referenced by spec.container_token_secret has no key"
            " container_auth_public_key.pem, container_auth_private_key.pem",
        )
    ]
    assert built.problems[0].blocks_apply


def test_only_missing_references_block_the_apply() -> None:
    data = inputs("simple.yaml")
    bad_setting = {**data.config_maps["settings"], "token_server": "http://not-quoted"}
    built = desired.build(replace(data, config_maps={"settings": bad_setting}))
    assert [(p.kind, p.blocks_apply) for p in built.problems] == [("setting", False)]
    missing = desired.build(replace(data, config_maps={}))
    assert [(p.kind, p.reason, p.blocks_apply) for p in missing.problems] == [
        ("reference", "ConfigMapNotFound", True)
    ]
