"""Tests cannot silently stop testing: missing upstream samples and empty parameter lists are
collection errors (pytest fails), never skips."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .. import samples

REPO = Path(__file__).resolve().parents[2]


def _pytest_on(tests: Path) -> subprocess.CompletedProcess[str]:
    """pytest with the project's configuration on a tree of tests elsewhere."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tests.parent), str(tests)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_missing_samples_are_a_collection_error(tmp_path: Path) -> None:
    tests = tmp_path / "repo" / "tests"  # no ../shared/upstream-samples beside this repo
    tests.mkdir(parents=True)
    (tests / "__init__.py").touch()
    shutil.copy(samples.__file__, tests / "samples.py")
    (tests / "test_uses_samples.py").write_text(
        "import pytest\n\nfrom .samples import pulp_sample_files\n\n\n"
        "@pytest.mark.parametrize('sample', pulp_sample_files())\n"
        "def test_sample(sample):\n    pass\n"
    )
    result = _pytest_on(tests)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # interrupted: errors during collection
    assert "error during collection" in out
    assert f"no *.yaml in {tmp_path / 'shared' / 'upstream-samples'}" in out
    assert "skipped" not in out


def test_an_empty_parameter_list_is_a_collection_error(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_empty.py").write_text(
        "import pytest\n\n\n@pytest.mark.parametrize('x', [])\ndef test_x(x):\n    pass\n"
    )
    result = _pytest_on(tests)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "error during collection" in out
    assert "skipped" not in out


def test_the_samples_are_found() -> None:
    assert REPO.parent / "shared" / "upstream-samples" == samples.SAMPLES
    assert {"simple.yaml", "minimal.yaml"} <= set(samples.pulp_sample_files())
