"""Version changes: downgrade refusal, the upgrade phases, the status and events they give."""

from __future__ import annotations

from typing import Any

import pytest

from pulp_operator import desired, status
from pulp_operator.api.pulp import Condition, PulpStatus
from pulp_operator.desired import upgrade
from pulp_operator.desired.inputs import JobState

from .desired_samples import container, find, inputs

N = "example-pulp"
IMAGE = "quay.io/pulp/pulp-minimal"
OLD, NEW = f"{IMAGE}:3.122.2", f"{IMAGE}:3.123.1"
RUNNING = PulpStatus(image=OLD, migrated_image=OLD, version="3.122.2")


def build(version: str, status: PulpStatus = RUNNING, **changes: Any) -> desired.Desired:
    spec = {"image_version": version, "image_web_version": version, **changes.pop("spec", {})}
    return desired.build(inputs("simple.yaml", spec_update=spec, status=status, **changes))


def images(built: desired.Desired) -> dict[str, str]:
    return {
        c: container(find(built.objects, "Deployment", f"{N}-{c}"))["image"]
        for c in ("api", "content", "worker", "web")
    }


def live_rolled(built: desired.Desired, done: set[str]) -> dict[tuple[str, str], Any]:
    """Live Deployments: those in `done` fully rolled to the built image, the others still on
    their old ReplicaSet (one new pod surged, the old one still there)."""
    live: dict[tuple[str, str], Any] = {}
    for obj in built.objects:
        if obj["kind"] != "Deployment":
            continue
        name = obj["metadata"]["name"]
        rolled = name.removeprefix(f"{N}-") in done
        status = (
            {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
            if rolled
            else {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                  "availableReplicas": 1}
        )  # fmt: skip
        live[("Deployment", name)] = {
            "metadata": {"generation": 2},
            "spec": {"replicas": 1, "template": obj["spec"]["template"]},
            "status": status,
        }
    return live


def compute(
    version: str, previous: PulpStatus, done: set[str], **changes: Any
) -> tuple[desired.Desired, PulpStatus]:
    """One pass: build from `previous`, then the status after it, with the Deployments in `done`
    rolled out to what was built (status.compute, as the reconciler runs it)."""
    spec = {"image_version": version, "image_web_version": version, **changes.pop("spec", {})}
    data = inputs("simple.yaml", spec_update=spec, status=previous, **changes)
    built = desired.build(data)
    new = status.compute(data, live_rolled(built, done), built, built.problems, "now")
    return built, new


def progressing(s: PulpStatus) -> Condition:
    return next(c for c in s.conditions if c.type == "Progressing")


ALL = {"api", "content", "worker", "web"}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("3.122.2", (3, 122, 2)), ("3.13", (3, 13)), ("3.13.0", (3, 13)), ("v3.9.1", (3, 9, 1)),
     ("stable", None), ("latest", None), ("", None), (None, None)],
)  # fmt: skip
def test_release(tag: str | None, expected: tuple[int, ...] | None) -> None:
    assert upgrade.release(tag) == expected


def test_image_tag() -> None:
    assert upgrade.image_tag("quay.io/pulp/pulp-minimal:3.1") == "3.1"
    assert upgrade.image_tag("registry:5000/pulp/pulp-minimal") is None
    assert upgrade.image_tag("registry:5000/pulp:3.1") == "3.1"
    assert upgrade.image_tag("quay.io/pulp/pulp@sha256:abc") is None
    assert upgrade.image_tag(None) is None


def test_migrations_run_first_and_every_pulp_pod_waits() -> None:
    built = build("3.123.1")
    got = images(built)
    assert [got[c] for c in ("api", "content", "worker")] == [OLD, OLD, OLD]
    job = find(built.objects, "Job", built.migration_job or "")
    assert container(job)["image"] == NEW
    # no web image recorded yet (status written by an older release): nothing to hold it on
    assert got["web"] == "quay.io/pulp/pulp-web:3.123.1"


def test_web_waits_for_the_migrations_too() -> None:
    status = RUNNING.model_copy(update={"web_image": "quay.io/pulp/pulp-web:3.122.2"})
    waiting = build("3.123.1", status)
    assert images(waiting)["web"] == "quay.io/pulp/pulp-web:3.122.2"
    job = waiting.migration_job or ""
    moved = build("3.123.1", status, jobs={job: JobState(job, "succeeded")})
    assert images(moved) == {
        "api": NEW, "content": NEW, "worker": NEW, "web": "quay.io/pulp/pulp-web:3.123.1",
    }  # fmt: skip


def test_phases_status_and_events() -> None:
    built, migrating = compute("3.123.1", RUNNING, ALL)
    assert (migrating.upgrade_phase, migrating.version, migrating.target_version) == (
        "Migrating", "3.122.2", "3.123.1",
    )  # fmt: skip
    cond = progressing(migrating)
    assert (cond.status, cond.reason) == ("True", "Upgrading")
    assert built.migration_job is not None
    assert built.migration_job in cond.message
    assert upgrade.phase_events(RUNNING, migrating) == [("UpgradeMigrating", cond.message, False)]
    assert upgrade.phase_events(migrating, migrating) == []  # once per phase

    job = built.migration_job or ""
    jobs = {job: JobState(job, "succeeded")}
    _, half = compute("3.123.1", migrating, {"api", "worker"}, jobs=jobs)
    assert (half.upgrade_phase, half.version, half.target_version) == (
        "Rolling", "3.122.2", "3.123.1",
    )  # fmt: skip
    message = progressing(half).message
    assert f"{N}-content" in message
    assert f"{N}-web" in message
    assert f"{N}-api," not in message
    assert upgrade.phase_events(migrating, half)[0][0] == "UpgradeRolling"

    recorded = half.model_copy(update={"migrated_image": NEW})
    _, done = compute("3.123.1", recorded, ALL)
    assert (done.upgrade_phase, done.version, done.target_version) == (None, "3.123.1", None)
    assert done.schema_version == "3.123.1"
    assert done.web_image == "quay.io/pulp/pulp-web:3.123.1"
    assert progressing(done).reason != "Upgrading"
    assert upgrade.phase_events(half, done) == [
        ("UpgradeComplete", "every pod runs 3.123.1", False)
    ]


def test_failed_migration_keeps_the_old_version_and_says_why() -> None:
    job = build("3.123.1").migration_job or ""
    jobs = {job: JobState(job, "failed", "BackoffLimitExceeded")}
    failed = build("3.123.1", jobs=jobs)
    assert images(failed)["api"] == OLD
    (problem,) = failed.problems
    assert problem.reason == "MigrationFailed"
    assert "BackoffLimitExceeded" in problem.message
    _, after = compute("3.123.1", RUNNING, ALL, jobs=jobs)
    assert (after.upgrade_phase, after.version, after.target_version) == (
        "MigrationFailed", "3.122.2", None,
    )  # fmt: skip
    migrations = next(c for c in after.conditions if c.type == "MigrationsComplete")
    assert (migrations.status, migrations.reason) == ("False", "MigrationFailed")
    (event,) = upgrade.phase_events(RUNNING, after)
    assert event[0] == "UpgradeFailed"
    assert event[2] is True
    assert "BackoffLimitExceeded" in event[1]


def test_downgrade_below_the_schema_is_refused() -> None:
    status = PulpStatus(image=NEW, migrated_image=NEW, version="3.123.1")
    refused = build("3.122.2", status)
    (problem,) = refused.problems
    assert problem.reason == "DowngradeRefused"
    assert problem.condition == "MigrationsComplete"
    assert "spec.image_version 3.122.2" in problem.message
    assert "3.123.1" in problem.message
    assert "spec.allow_downgrade" in problem.message
    assert refused.migration_job is None
    assert images(refused)["api"] == NEW  # what runs keeps running
    _, after = compute("3.122.2", status, ALL)
    assert (after.upgrade_phase, after.version) == ("DowngradeRefused", "3.123.1")
    assert upgrade.phase_events(status, after)[0][0] == "DowngradeRefused"


def test_downgrade_allowed_explicitly() -> None:
    status = PulpStatus(image=NEW, migrated_image=NEW, version="3.123.1")
    allowed = build("3.122.2", status, spec={"allow_downgrade": True})
    assert allowed.problems == []
    assert allowed.migration_job is not None
    # the schema stays the newest one that ran, so a later downgrade is still refused
    after = PulpStatus(image=OLD, migrated_image=OLD, version="3.122.2", schema_version="3.123.1")
    assert upgrade.schema_version(after) == "3.123.1"
    assert build("3.122.0", after).problems[0].reason == "DowngradeRefused"


def test_no_downgrade_refusal_without_versions() -> None:
    status = PulpStatus(image=f"{IMAGE}:stable", migrated_image=f"{IMAGE}:stable")
    assert build("3.100.0", status).problems == []
    assert build("stable", RUNNING).problems == []  # stable counts as the newest
    assert build("3.122.2", PulpStatus()).problems == []  # nothing migrated yet


def test_fresh_install_is_no_upgrade() -> None:
    _, starting = compute("3.123.1", PulpStatus(), set())
    assert (starting.upgrade_phase, starting.version, starting.target_version) == (None,) * 3
    assert upgrade.phase_events(PulpStatus(), starting) == []
    _, running = compute("3.123.1", starting, ALL)
    assert running.version == "3.123.1"


def test_progressing_keeps_its_transition_time_while_upgrading() -> None:
    _, first = compute("3.123.1", RUNNING, set())
    stamp = progressing(first).last_transition_time
    again = status.compute(
        inputs("simple.yaml", spec_update={"image_version": "3.123.1",
                                            "image_web_version": "3.123.1"}, status=first),
        {}, build("3.123.1", first), [], "later",
    )  # fmt: skip
    assert progressing(again).reason == "Upgrading"
    assert progressing(again).last_transition_time == stamp


def test_rolled_out_needs_every_old_pod_gone() -> None:
    template = {"spec": {"containers": [{"image": NEW}]}}
    want = {"spec": {"template": template}}
    base = {"metadata": {"generation": 3}, "spec": {"replicas": 2, "template": template}}
    done = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    assert upgrade.rolled_out(want, {**base, "status": done})
    assert not upgrade.rolled_out(want, {**base, "status": {**done, "replicas": 3}})
    assert not upgrade.rolled_out(want, {**base, "status": {**done, "observedGeneration": 2}})
    assert not upgrade.rolled_out(want, {**base, "status": {**done, "availableReplicas": 1}})
    assert not upgrade.rolled_out(want, None)
    old = {"spec": {"template": {"spec": {"containers": [{"image": OLD}]}}}}
    assert not upgrade.rolled_out(old, {**base, "status": done})
