"""Claims grow where their StorageClass allows it; otherwise, and for a shrink, a problem names
the field."""

from __future__ import annotations

from typing import Any

from pulp_operator import storage_growth
from pulp_operator.api.pulp import PulpSpec

N = "example-pulp"


def spec(**fields: Any) -> PulpSpec:
    return PulpSpec.model_validate(
        {
            "file_storage_storage_class": "standard",
            "file_storage_size": "10Gi",
            "database": {"postgres_storage_requirements": "8Gi"},
            "cache": {
                "enabled": True,
                "redis_storage_class": "standard",
                "redis_resource_requirements": {"requests": {"storage": "1Gi"}},
            },
            **fields,
        }
    )


def pvc(
    size: str,
    *,
    capacity: str | None = None,
    cls: str | None = "standard",
    phase: str = "Bound",
    modes: tuple[str, ...] = ("ReadWriteMany",),
) -> dict[str, Any]:
    live: dict[str, Any] = {
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}},
        "status": {"phase": phase, "capacity": {"storage": capacity or size}},
    }
    if cls:
        live["spec"]["storageClassName"] = cls
    return live


def claim(field_suffix: str, s: PulpSpec | None = None) -> storage_growth.Claim:
    found = [c for c in storage_growth.claims(N, s or spec(), "example-pulp-postgres")
             if c.field.endswith(field_suffix)]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def test_the_claims_a_spec_sizes() -> None:
    got = {(c.name, c.field, c.size, c.condition) for c in storage_growth.claims(
        N, spec(), "example-pulp-postgres")}  # fmt: skip
    assert got == {
        (f"{N}-file-storage", "spec.file_storage_size", "10Gi", "StorageReady"),
        (f"{N}-postgres-{N}-database-0", "spec.database.postgres_storage_requirements", "8Gi",
         "DatabaseReady"),
        (f"{N}-redis-data", "spec.cache.redis_resource_requirements.requests.storage", "1Gi",
         "CacheReady"),
    }  # fmt: skip
    legacy = storage_growth.claims(N, spec(), "postgres")
    assert f"postgres-{N}-database-0" in {c.name for c in legacy}
    # claims the user provides are the user's to size
    theirs = spec(file_storage_storage_class=None, file_storage_size=None, pvc="mine",
                  database={"pvc": "db"}, cache={"enabled": True, "pvc": "r"})  # fmt: skip
    assert storage_growth.claims(N, theirs, None) == []


def test_growth_is_a_patch_of_the_size() -> None:
    c = claim("file_storage_size", spec(file_storage_size="20Gi"))
    decision = storage_growth.decide(c, pvc("10Gi"))
    assert (decision.action, decision.size, decision.target) == ("expand", "10Gi", "20Gi")
    assert decision.problems == ()
    # the claim is applied as it is; only the patch grows it
    manifest = {"spec": {"resources": {"requests": {"storage": "9Gi"}}, "accessModes": ["x"]}}
    assert storage_growth.sized(manifest, decision.size)["spec"] == {
        "resources": {"requests": {"storage": "10Gi"}},
        "accessModes": ["x"],
    }
    assert storage_growth.expansion_patch("20Gi") == {
        "spec": {"resources": {"requests": {"storage": "20Gi"}}}
    }
    plan = storage_growth.Plan(None, {c.name: decision})
    assert plan.expansions() == [decision]


def test_growth_refused_names_the_field_and_keeps_the_size() -> None:
    c = claim("postgres_storage_requirements", spec(database={"postgres_storage_requirements":
                                                             "16Gi"}))  # fmt: skip
    decision = storage_growth.decide(c, pvc("8Gi", modes=("ReadWriteOnce",)))
    reason = (
        'persistentvolumeclaims "x" is forbidden: only dynamically provisioned pvc can be resized'
        " and the storageclass that provisions the pvc must support resize"
    )
    problem = storage_growth.refused(decision, reason)
    assert problem.reason == "StorageExpansionUnsupported"
    assert problem.condition == "DatabaseReady"
    assert problem.field == "spec.database.postgres_storage_requirements"
    assert problem.message.startswith("spec.database.postgres_storage_requirements: 16Gi")
    assert "from 8Gi" in problem.message
    assert "the storageclass that provisions the pvc must support resize" in problem.message
    assert "the claim keeps 8Gi" in problem.message


def test_shrink_is_refused() -> None:
    c = claim("redis_resource_requirements.requests.storage", spec(cache={
        "enabled": True, "redis_storage_class": "standard",
        "redis_resource_requirements": {"requests": {"storage": "512Mi"}}}))  # fmt: skip
    decision = storage_growth.decide(c, pvc("1Gi", modes=("ReadWriteOnce",)))
    assert (decision.action, decision.size) == ("refuse", "1Gi")
    (problem,) = decision.problems
    assert problem.reason == "StorageShrinkRefused"
    assert problem.condition == "CacheReady"
    assert "spec.cache.redis_resource_requirements.requests.storage: 512Mi" in problem.message


def test_equal_sizes_in_other_units_are_equal() -> None:
    c = claim("file_storage_size", spec(file_storage_size="10240Mi"))
    decision = storage_growth.decide(c, pvc("10Gi"))
    assert (decision.action, decision.problems) == ("keep", ())


def test_resize_in_progress_and_unbound_claims() -> None:
    c = claim("file_storage_size", spec(file_storage_size="20Gi"))
    resizing = storage_growth.decide(c, pvc("20Gi", capacity="10Gi"))
    assert resizing.action == "keep"
    assert "being expanded to 20Gi" in (resizing.progress or "")
    waiting = storage_growth.decide(c, pvc("10Gi", phase="Pending"))
    assert (waiting.action, waiting.size, waiting.problems) == ("wait", "10Gi", ())
    assert storage_growth.decide(c, None).action == "keep"  # created with the spec's size


def test_class_and_access_mode_cannot_change() -> None:
    c = claim("file_storage_size", spec(file_storage_storage_class="fast",
                                        file_storage_access_mode="ReadWriteOnce"))  # fmt: skip
    decision = storage_growth.decide(c, pvc("10Gi"))
    fields = sorted(p.message.split(":")[0] for p in decision.problems)
    assert fields == ["spec.file_storage_access_mode", "spec.file_storage_storage_class"]
    assert all(p.reason == "ImmutableField" for p in decision.problems)


def test_plan_collects_problems() -> None:
    c = claim("file_storage_size", spec(file_storage_size="1Gi"))
    plan = storage_growth.Plan(None, {c.name: storage_growth.decide(c, pvc("10Gi"))})
    assert [p.reason for p in plan.problems()] == ["StorageShrinkRefused"]
    assert plan.decision("nothing") is None
