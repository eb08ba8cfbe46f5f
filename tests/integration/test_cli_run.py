"""`pulp-operator run` as a process: health and metrics endpoints, reconciling, clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pulp_devcluster import ClusterInfo

pytestmark = pytest.mark.apiserver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_run_serves_health_and_metrics(apiserver: ClusterInfo, api_namespace: str) -> None:
    health, metrics = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulp_operator.cli",
            "run",
            "--namespace",
            api_namespace,
            "--health-address",
            f"http://127.0.0.1:{health}/healthz",
            "--metrics-port",
            str(metrics),
        ],
        env=apiserver.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status, body = get(f"http://127.0.0.1:{health}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "the operator exited early"
            time.sleep(0.5)
        assert status == 200
        assert "queue" in body
        status, text = get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200
        assert "pulp_operator_queue_depth" in text
        assert "pulp_operator_reconcile_duration_seconds" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output
