"""Golden `render` outputs of every upstream sample: an operator upgrade must not restart Pulp
pods needlessly, so any change in what the operator renders shows up here.

A deliberate change: `make golden` rewrites the files, and CHANGELOG.md says which pods it rolls.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulp_operator.render import dump, load_documents, render

from ..samples import SAMPLES, pulp_sample_files

GOLDEN = Path(__file__).resolve().parent / "golden"
NAMESPACE = "golden"
UPDATE = os.environ.get("PULP_OPERATOR_UPDATE_GOLDEN") == "1"


def rendered(sample: str) -> str:
    path = SAMPLES / sample
    return dump(render(load_documents(path.read_text(), str(path)), namespace=NAMESPACE).objects)


RENDERABLE = pulp_sample_files()  # every valid v1 Pulp sample


@pytest.mark.parametrize("sample", RENDERABLE)
def test_render_matches_the_golden_output(sample: str) -> None:
    golden = GOLDEN / sample
    text = rendered(sample)
    if UPDATE:
        golden.write_text(text)
    assert golden.is_file(), f"{golden} missing: run `make golden`"
    assert text == golden.read_text(), (
        f"render of {sample} changed: if deliberate, run `make golden` and say in CHANGELOG.md"
        " which pods the change rolls"
    )


def test_every_golden_file_has_its_sample() -> None:
    stale = sorted({p.name for p in GOLDEN.glob("*.yaml")} - set(RENDERABLE))
    assert not stale, f"golden files without a sample: {stale}"
