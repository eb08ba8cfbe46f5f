"""Child processes: dying with their parent, identity checks by pid + start time, signals,
free ports and HTTP probes (shared by the control plane and the node)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def make_preexec(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent (SIGKILL on its death).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is only set when
    spawning from the main thread; otherwise the runs registry still cleans up after a crash.
    """
    libc = _load_libc() if threading.current_thread() is threading.main_thread() else None

    def preexec() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def proc_start_time(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def proc_cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    return proc_start_time(pid) is not None


@dataclass
class ProcessRecord:
    """A child process as recorded in state.json and in the runs registry."""

    name: str
    pid: int
    start_time: int
    marker: str  # must appear in /proc/<pid>/cmdline before we ever signal the pid
    log: str

    def matches(self) -> bool:
        """Whether ``pid`` is still this very process (not a reused pid)."""
        return proc_start_time(self.pid) == self.start_time and self.marker in proc_cmdline(
            self.pid
        )


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_records(records: Sequence[ProcessRecord], timeout: float) -> list[ProcessRecord]:
    """SIGTERM (then SIGKILL) processes we do not own as children; returns those still alive."""
    targets = [r for r in records if r.matches()]
    for rec in targets:
        signal_group(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(r.matches() for r in targets):
        time.sleep(0.1)
    for rec in targets:
        if rec.matches():
            signal_group(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(r.matches() for r in targets):
        time.sleep(0.05)
    return [r for r in targets if r.matches()]


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """``count`` distinct currently free TCP ports on 127.0.0.1."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (TIME_WAIT connections do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def probe(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, str]:
    """GET ``url``; returns (status, body), status 0 when nothing answered."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    handler = urllib.request.HTTPSHandler(context=_insecure_context())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""
