"""The real-node tier's time budget (tests/e2e/budget.py): which modules start under a deadline."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.budget import (
    MODULE_ORDER,
    NODE_START,
    UNKNOWN_MODULE,
    Budget,
    order_key,
    read_estimates,
)

ESTIMATES = {NODE_START: 100.0, "test_a.py": 300.0, "test_b.py": 60.0}


def test_without_a_deadline_every_module_runs() -> None:
    budget = Budget(None, dict(ESTIMATES))
    assert budget.admit("test_a.py", uses_node=True, now=1e9) is None
    assert budget.admit("test_unknown.py", uses_node=True, now=1e9) is None
    assert budget.skipped == {}


def test_a_module_that_does_not_fit_is_skipped_whole_and_a_smaller_one_still_runs() -> None:
    budget = Budget(1000.0, dict(ESTIMATES))
    # 300 s + 100 s node start > 250 s left
    reason = budget.admit("test_a.py", uses_node=True, now=750.0)
    assert reason is not None
    assert "test_a.py" in reason
    assert "7 min" in reason
    # every later test of the skipped module is skipped too, even with time left
    assert budget.admit("test_a.py", uses_node=True, now=0.0) == reason
    # 60 s + 100 s fits in 250 s
    assert budget.admit("test_b.py", uses_node=True, now=750.0) is None


def test_a_started_module_runs_to_its_end_past_the_deadline() -> None:
    budget = Budget(1000.0, dict(ESTIMATES))
    assert budget.admit("test_b.py", uses_node=False, now=0.0) is None
    assert budget.admit("test_b.py", uses_node=False, now=5000.0) is None


def test_the_node_start_counts_only_until_the_node_runs_and_only_for_modules_using_it() -> None:
    budget = Budget(1000.0, dict(ESTIMATES))
    assert budget.admit("test_a.py", uses_node=True, now=650.0) is not None  # 400 > 350
    assert budget.admit("test_b.py", uses_node=False, now=935.0) is None  # 60 < 65
    other = Budget(1000.0, dict(ESTIMATES), node_started=True)
    assert other.admit("test_a.py", uses_node=True, now=650.0) is None  # 300 < 350


def test_an_unmeasured_module_is_assumed_long() -> None:
    budget = Budget(1000.0, {})
    left = UNKNOWN_MODULE - 1
    assert budget.admit("test_new.py", uses_node=False, now=1000.0 - left) is not None


def test_measured_durations_are_merged_into_the_file_and_win_over_the_checked_in_ones(
    tmp_path: Path,
) -> None:
    checked_in = tmp_path / "durations.json"
    checked_in.write_text(json.dumps({"test_a.py": 300, "test_b.py": 60}))
    measured = tmp_path / "cache" / "measured.json"
    budget = Budget(None, {})
    budget.add("test_b.py", 20.0)
    budget.add("test_b.py", 22.5)
    budget.save(measured)
    assert json.loads(measured.read_text()) == {"test_b.py": 42.5}
    assert read_estimates(checked_in, measured) == {"test_a.py": 300.0, "test_b.py": 42.5}
    # broken or missing files are ignored, bad values dropped
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "odd.json").write_text(json.dumps({"test_a.py": "long", "test_c.py": -1}))
    assert read_estimates(tmp_path / "missing.json", tmp_path / "broken.json") == {}
    assert read_estimates(tmp_path / "odd.json") == {}


def test_every_module_of_the_tier_has_a_place_and_an_estimate() -> None:
    here = Path(__file__).parents[1] / "e2e"
    modules = sorted(p.name for p in here.glob("test_*.py"))
    assert sorted(MODULE_ORDER) == modules
    assert [m for m in sorted(modules, key=order_key)] == list(MODULE_ORDER)
    estimates = read_estimates(here / "durations.json")
    assert set(estimates) == {*modules, NODE_START}


def test_a_module_that_did_not_run_whole_is_not_remembered(tmp_path: Path) -> None:
    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps({"test_install.py": 660.0}))
    budget = Budget(None, {})
    budget.add("test_install.py", 0.1)  # its setup errored at once
    budget.add("test_pulp.py", 280.0)
    budget.unrepresentative("test_install.py")
    budget.save(measured)
    assert json.loads(measured.read_text()) == {"test_install.py": 660.0, "test_pulp.py": 280.0}
    assert budget.kept() == {"test_pulp.py": 280.0}
