"""Deciding whether an object needs applying: stamps, defaults, quantities, drift."""

from __future__ import annotations

import copy
from typing import Any

from pulp_operator.diff import contains, normalise_secret, stamped, up_to_date


def deployment(replicas: int = 1, cpu: str = "500m") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x-api", "labels": {"a": "b"}},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {"containers": [{"name": "api", "resources": {"requests": {"cpu": cpu}}}]}
            },
        },
    }


def live_from(desired: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(desired)
    live["metadata"]["resourceVersion"] = "7"
    live["spec"]["progressDeadlineSeconds"] = 600  # a server default
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    return live


def test_unchanged_object_is_up_to_date() -> None:
    want = stamped(deployment())
    assert up_to_date(live_from(want), want)


def test_missing_object_is_not_up_to_date() -> None:
    assert not up_to_date(None, stamped(deployment()))


def test_spec_change_changes_the_stamp() -> None:
    live = live_from(stamped(deployment(replicas=1)))
    assert not up_to_date(live, stamped(deployment(replicas=2)))


def test_hand_edit_is_drift() -> None:
    want = stamped(deployment())
    live = live_from(want)
    live["spec"]["replicas"] = 5
    assert not up_to_date(live, want)
    live = live_from(want)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert not up_to_date(live, want)


def test_quantities_compare_by_value() -> None:
    assert contains({"cpu": "0.5"}, {"cpu": "500m"})
    assert contains({"memory": "1073741824"}, {"memory": "1Gi"})
    assert not contains({"memory": "1G"}, {"memory": "1Gi"})
    assert contains({"port": 8080}, {"port": "8080"})
    assert not contains({"flag": True}, {"flag": 1})


def test_empty_desired_values_match_absent_live_ones() -> None:
    assert contains({"metadata": {}}, {"metadata": {"annotations": {}}})


def test_secret_string_data_is_compared_as_data() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"k": "value"},
    }
    normal = normalise_secret(secret)
    assert normal["data"] == {"k": "dmFsdWU="}
    assert "stringData" not in normal
