"""The pulp-operator command line: crds, render, errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pulp_operator.api.crd import all_crds

from ..samples import SAMPLES


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulp_operator.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_crds_prints_the_generated_crds() -> None:
    out = cli("crds")
    assert out.returncode == 0
    assert [d for d in yaml.safe_load_all(out.stdout) if d] == all_crds()


@pytest.mark.parametrize("command", [[], ["run"], ["crds"], ["render"]])
def test_help_says_what_each_command_does(command: list[str]) -> None:
    out = cli(*command, "--help")
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) > 3


def test_render_sample_redacts_generated_secrets() -> None:
    out = cli("render", "-f", str(SAMPLES / "simple.yaml"))
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    generated = [d for d in docs if d["metadata"]["name"] == "example-pulp-db-fields-encryption"]
    assert generated
    assert all(v.startswith("<redacted") for v in generated[0]["stringData"].values())
    assert all("namespace" not in d["metadata"] for d in docs)  # kubectl apply -n NS works
    shown = cli("render", "-f", str(SAMPLES / "simple.yaml"), "--show-secrets")
    key = next(
        d
        for d in yaml.safe_load_all(shown.stdout)
        if d and d["metadata"]["name"] == "example-pulp-db-fields-encryption"
    )["stringData"]["database_fields.symmetric.key"]
    assert len(key) == 44  # a Fernet key
    # the user's own password appears nowhere in the output
    assert "'password'" not in shown.stdout.replace("password: '<", "")


def test_render_warns_about_objects_assumed_to_exist() -> None:
    out = cli("render", "-f", str(SAMPLES / "simple.s3.ci.yaml"))
    assert out.returncode == 0, out.stderr
    assert "warning: Secret" in out.stderr
    assert "assuming it exists" in out.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2", "is not valid YAML (line"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "no Pulp"),
        (
            "apiVersion: repo-manager.pulpproject.org/v1\nkind: Pulp\nmetadata: {name: p}\n"
            "spec: {pvc: x, api: {replicas: -2}}\n",
            "Pulp p: spec.api.replicas: Input should be greater than or equal to 0",
        ),
        (
            "apiVersion: repo-manager.pulpproject.org/v1\nkind: Pulp\nmetadata: {name: p}\n"
            "spec: {file_storage_size: 1Gi}\n",
            "exactly one storage type must be set",
        ),
        (
            "apiVersion: pulp.pulpproject.org/v1beta1\nkind: Pulp\nmetadata: {name: p}\n",
            "apiVersion pulp.pulpproject.org/v1beta1 is not supported",
        ),
    ],
)
def test_render_bad_input_is_one_line(text: str, message: str) -> None:
    out = cli("render", "-f", "-", stdin=text)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_render_missing_file() -> None:
    out = cli("render", "-f", "/nonexistent.yaml")
    assert out.returncode != 0
    assert out.stderr.startswith("error: cannot read /nonexistent.yaml")


def test_render_of_telemetry_warns_of_nothing() -> None:
    """Every field is acted on: no "not supported" warnings (the collector objects come out)."""
    out = cli("render", "-f", str(SAMPLES / "simple.telemetry.yaml"))
    assert out.returncode == 0, out.stderr
    assert "not supported" not in out.stderr
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out.stdout) if d}
    assert ("Service", "example-pulp-otel-collector-svc") in kinds
    assert ("ConfigMap", "example-pulp-otel-collector-config") in kinds
