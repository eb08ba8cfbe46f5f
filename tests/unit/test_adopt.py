"""Immutable fields come from the live object; foreign objects are replaced; kept data unowned."""

from __future__ import annotations

import copy
from typing import Any

from pulp_operator import adopt, desired, names
from pulp_operator.api.pulp import PulpSpec

from .desired_samples import container, find, inputs

N = "example-pulp"
UID = "uid-1"
OWNER = {"apiVersion": "v1", "kind": "Pulp", "name": N, "uid": UID, "controller": True}


def statefulset() -> dict[str, Any]:
    return copy.deepcopy(
        find(desired.build(inputs("simple.yaml")).objects, "StatefulSet", f"{N}-database")
    )


def live_sts(template: str, service: str | None, size: str = "8Gi") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": names.selector(N, "database")},
        "podManagementPolicy": "OrderedReady",
        "volumeClaimTemplates": [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": template},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": size}},
                    "storageClassName": "standard",
                    "volumeMode": "Filesystem",
                },
                "status": {"phase": "Pending"},
            }
        ],
    }
    if service:
        spec["serviceName"] = service
    return {"metadata": {"name": f"{N}-database", "labels": {}}, "spec": spec}


def mount_names(sts: dict[str, Any]) -> list[str]:
    return [m["name"] for m in container(sts)["volumeMounts"]]


def test_new_statefulset_is_built_as_upstream_builds_it() -> None:
    carried = adopt.carry_immutable(statefulset(), None)
    assert carried.manifest is not None
    assert adopt.claim_template_name(carried.manifest) == f"{N}-postgres"
    assert "serviceName" not in carried.manifest["spec"]


def test_upstream_statefulset_keeps_its_fields_and_grows_elsewhere() -> None:
    desired_sts = statefulset()
    desired_sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] = {
        "storage": "20Gi"
    }
    live = live_sts(f"{N}-postgres", None)
    carried = adopt.carry_immutable(desired_sts, live)
    assert carried.manifest is not None
    assert carried.problems == ()
    spec = carried.manifest["spec"]
    assert spec["volumeClaimTemplates"] == live["spec"]["volumeClaimTemplates"]  # 8Gi stays
    assert "serviceName" not in spec
    assert mount_names(carried.manifest) == [f"{N}-postgres"]


def test_statefulset_of_an_earlier_release_keeps_postgres_and_its_service() -> None:
    live = live_sts("postgres", f"{N}-database-svc")
    carried = adopt.carry_immutable(statefulset(), live)
    assert carried.manifest is not None
    spec = carried.manifest["spec"]
    assert spec["serviceName"] == f"{N}-database-svc"
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["postgres"]
    assert mount_names(carried.manifest) == ["postgres"]
    # the pod template is ours: only the immutable parts come from the live object
    assert container(carried.manifest)["env"] == container(statefulset())["env"]


def test_switch_to_a_database_pvc_cannot_touch_the_statefulset() -> None:
    built = desired.build(inputs("simple.yaml", spec_update={"database": {"pvc": "mine"}}))
    sts = find(built.objects, "StatefulSet", f"{N}-database")
    carried = adopt.carry_immutable(sts, live_sts(f"{N}-postgres", None))
    assert carried.manifest is None
    (problem,) = carried.problems
    assert problem.reason == "ImmutableField"
    assert "spec.database.pvc" in problem.message


def test_deployment_keeps_a_different_live_selector() -> None:
    built = desired.build(inputs("simple.yaml"))
    api = find(built.objects, "Deployment", f"{N}-api")
    old_selector = {"matchLabels": {"app": "pulp-api", "legacy": "yes"}}
    carried = adopt.carry_immutable(api, {"spec": {"selector": old_selector}})
    assert carried.manifest is not None
    assert carried.manifest["spec"]["selector"] == old_selector
    labels = carried.manifest["spec"]["template"]["metadata"]["labels"]
    assert labels["legacy"] == "yes"
    assert labels[names.PULP_CR_LABEL] == N


def test_claim_keeps_its_bound_fields() -> None:
    built = desired.build(inputs("simple.yaml"))
    pvc = find(built.objects, "PersistentVolumeClaim", f"{N}-file-storage")
    live = {
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard",
            "volumeMode": "Filesystem",
            "volumeName": "pv-1",
            "resources": {"requests": {"storage": "10Gi"}},
        }
    }
    carried = adopt.carry_immutable(pvc, live)
    assert carried.manifest is not None
    spec = carried.manifest["spec"]
    assert spec["accessModes"] == ["ReadWriteOnce"]  # was ReadWriteMany in the spec
    assert "volumeName" not in spec  # not ours to set: applying leaves it


def test_database_claim_template_for_a_new_statefulset() -> None:
    upstream, legacy = f"{N}-postgres", "postgres"
    assert adopt.database_claim_template(N, None, set()) == upstream
    assert adopt.database_claim_template(N, None, {f"postgres-{N}-database-0"}) == legacy
    both = {f"postgres-{N}-database-0", f"{upstream}-{N}-database-0"}
    assert adopt.database_claim_template(N, None, both) == upstream
    assert adopt.database_claim_template(N, live_sts("postgres", None), set()) == legacy


def test_rename_claim_template_renames_mounts() -> None:
    renamed = adopt.rename_claim_template(statefulset(), "postgres")
    assert adopt.claim_template_name(renamed) == "postgres"
    assert mount_names(renamed) == ["postgres"]


def test_foreign() -> None:
    assert not adopt.foreign(None, N)
    assert adopt.foreign({"metadata": {"labels": {"pulp_cr": N}}}, N)
    assert not adopt.foreign({"metadata": {"labels": {names.OWNED_LABEL: N}}}, N)
    assert adopt.foreign({"metadata": {"labels": {names.OWNED_LABEL: "other"}}}, N)


def test_takeover_patch_replaces_everything_but_the_frame() -> None:
    built = desired.build(inputs("simple.yaml"))
    api = find(built.objects, "Deployment", f"{N}-api")
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{N}-api",
            "resourceVersion": "42",
            "labels": {"x": "y"},
            "annotations": {"deployment.kubernetes.io/revision": "3"},
            "ownerReferences": [OWNER, {"uid": "someone-else"}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "api", "args": ["-c", "x"]}]}}},
        "status": {"replicas": 1},
        "extra": {"left": "over"},
    }
    ops = adopt.takeover_patch(api, live, UID)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    by_path = {o["path"]: o for o in ops}
    assert by_path["/spec"]["value"] == api["spec"]  # the whole spec: no upstream args left
    assert by_path["/metadata/labels"]["value"] == {"x": "y", **api["metadata"]["labels"]}
    assert by_path["/metadata/annotations"]["value"]["deployment.kubernetes.io/revision"] == "3"
    assert by_path["/metadata/managedFields"]["value"] == [{}]
    # the Pulp's reference goes (the manifest has none: kept data), the others' stay
    assert by_path["/metadata/ownerReferences"]["value"] == [{"uid": "someone-else"}]
    assert by_path["/extra"] == {"op": "remove", "path": "/extra"}
    assert "/status" not in by_path


def test_takeover_patch_of_a_claim_leaves_its_spec() -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "c", "labels": {"a": "b"}}, "spec": {"x": 1}}  # fmt: skip
    ops = adopt.takeover_patch(pvc, {"metadata": {"resourceVersion": "1"}, "spec": {"x": 1}}, UID)
    assert "/spec" not in {o["path"] for o in ops}


def test_secret_adoption() -> None:
    labels = names.labels(N, "secrets")
    upstream = {
        "metadata": {
            "labels": {names.PULP_CR_LABEL: N, "app.kubernetes.io/managed-by": "pulp-operator"},
            "ownerReferences": [OWNER, {"uid": "someone-else"}],
        }
    }
    patch = adopt.secret_adoption(upstream, labels, OWNER, keep=True)
    assert patch == {"metadata": {"labels": labels, "ownerReferences": [{"uid": "someone-else"}]}}
    ours = {"metadata": {"labels": labels, "ownerReferences": []}}
    assert adopt.secret_adoption(ours, labels, OWNER, keep=True) is None
    released = adopt.secret_adoption(ours, labels, OWNER, keep=False)
    assert released == {"metadata": {"ownerReferences": [OWNER]}}


def test_upstream_defaulted_secret_names_are_generated_ones() -> None:
    spec = PulpSpec.model_validate(
        {
            "file_storage_storage_class": "standard",
            "admin_password_secret": f"{N}-admin-password",
            "pulp_secret_key": f"{N}-secret-key",
            "db_fields_encryption_secret": "my-own-key",
        }
    )
    named = adopt.defaulted_secret_fields(N, spec)
    assert named == {
        "admin_password_secret": f"{N}-admin-password",
        "pulp_secret_key": f"{N}-secret-key",
    }
    generated = {names.PULP_CR_LABEL: N, "app.kubernetes.io/managed-by": "pulp-operator"}
    user_made: dict[str, str] = {}
    out = adopt.generated_secret_spec(
        N, spec, {"admin_password_secret": generated, "pulp_secret_key": user_made}
    )
    assert out.admin_password_secret is None  # generated by an operator: ours now
    assert out.pulp_secret_key == f"{N}-secret-key"  # the user's: stays a reference
    assert out.db_fields_encryption_secret == "my-own-key"
