"""The operator as a process of its own (`pulp-operator run`), for tests that kill it, restart
the API server under it or run two replicas: its health endpoints, its user, its log."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOG_TAIL = 150
"""Lines of each operator's log printed when a test fails."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProc:
    kubeconfig: Path
    namespaces: Sequence[str]
    log_path: Path
    extra: Sequence[str] = ()
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProc:
        args = [sys.executable, "-m", "pulp_operator.cli", "run"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += [
            "--health-address",
            f"http://127.0.0.1:{self.health_port}/healthz",
            "--metrics-port",
            "0",
            *self.extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def endpoint(self, path: str) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of /healthz or /readyz (0, {} while nothing answers)."""
        url = f"http://127.0.0.1:{self.health_port}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return 0, {}

    def leading(self) -> bool | None:
        """Whether it leads, as its health endpoint says (None: it does not answer)."""
        status, body = self.endpoint("healthz")
        return bool(body["leader"]["leading"]) if status else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no release of anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def operators() -> Iterator[list[OperatorProc]]:
    """Operators started within are stopped at the end, whatever happens."""
    started: list[OperatorProc] = []
    try:
        yield started
    except BaseException:
        # what each operator said is the only trace of why, once the test's tmp dir is gone
        for op in started:
            lines = op.log().splitlines() if op.log_path.exists() else []
            print(f"--- last {min(len(lines), LOG_TAIL)} lines of {op.log_path.name} ---")
            print("\n".join(lines[-LOG_TAIL:]))
        raise
    finally:
        for op in started:
            op.stop()


def wait_for(what: str, check: Callable[[], Any], within: float = 60.0, every: float = 0.1) -> Any:
    """Poll until `check` returns something true; returns it."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


def kubeconfig_via(kubeconfig: Path, server: str, path: Path) -> Path:
    """A copy of a kubeconfig that reaches the API server at `server` (e.g. through a proxy)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


class Partition:
    """A TCP proxy to the API server that can cut the line: while `cut`, whatever either side
    sends is dropped (as a network partition drops packets) and the connections stay open."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        self._listener.setblocking(False)
        sel.register(self._listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            for key, _ in sel.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    try:
                        upstream = socket.create_connection(self.target, timeout=5)
                    except OSError:
                        client.close()
                        continue
                    for a, b in ((client, upstream), (upstream, client)):
                        a.setblocking(True)
                        peers[a] = b
                        sel.register(a, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    other = peers.pop(sock, None)
                    for s in (sock, other):
                        if s is not None:
                            peers.pop(s, None)
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(s)
                            s.close()
                    continue
                if not self.cut.is_set():
                    with contextlib.suppress(OSError, KeyError):
                        peers[sock].sendall(data)
        for s in list(peers):
            s.close()
