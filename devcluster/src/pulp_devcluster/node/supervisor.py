"""The node's child processes (spawned with a log each, dying with this process, waited for,
stopped), the machine-wide node lock and step timings."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pulp_devcluster.errors import DevClusterError
from pulp_devcluster.processes import (
    ProcessRecord,
    make_preexec,
    proc_start_time,
    signal_group,
    tail,
)

log = logging.getLogger("pulp_devcluster.node")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    log_path: Path


def spawn_process(name: str, cmd: Sequence[str], state_dir: Path) -> Proc:
    """Start ``cmd`` in its own process group, logging to <state dir>/logs/<name>.log, without
    the caller's kubeconfig and proxy settings; the state dir is the marker of its record."""
    log_path = state_dir / "logs" / f"{name}.log"
    env = dict(os.environ)
    for var in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                "NO_PROXY", "no_proxy"):  # fmt: skip
        env.pop(var, None)
    env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    with log_path.open("wb") as out:
        out.write(("$ " + shlex.join(cmd) + "\n").encode())
        out.flush()
        popen = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            env=env,
            process_group=0,
            preexec_fn=make_preexec(os.getpid()),
            close_fds=True,
        )
    record = ProcessRecord(
        name=name,
        pid=popen.pid,
        start_time=proc_start_time(popen.pid) or 0,
        marker=str(state_dir),
        log=str(log_path),
    )
    log.debug("started %s (pid %d), log %s", name, popen.pid, log_path)
    return Proc(name=name, popen=popen, record=record, log_path=log_path)


def wait_until(
    what: str,
    ready: Callable[[], bool],
    watched: Iterable[Proc],
    *,
    timeout: float,
    logs_of: Sequence[Proc],
) -> None:
    """Poll ``ready`` until True; raise when a ``watched`` process exits or after ``timeout``
    (with the tails of the logs of ``logs_of``)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error: BaseException | None = None
    watched = list(watched)
    while True:
        for proc in watched:
            code = proc.popen.poll()
            if code is not None:
                raise DevClusterError(
                    f"{proc.name} exited with code {code} while waiting for {what}; "
                    f"log {proc.log_path}:\n{tail(proc.log_path)}"
                )
        try:
            if ready():
                return
        except Exception as exc:  # transient errors while starting
            last_error = exc
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.log_path}:\n{tail(p.log_path, 15)}" for p in logs_of)
            raise DevClusterError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                f" (last error: {last_error!r})\n{logs}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def stop_process(proc: Proc, timeout: float) -> None:
    """SIGTERM, SIGKILL after ``timeout``, then SIGKILL to anything left in its group."""
    if proc.popen.poll() is None:
        signal_group(proc.popen.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM, killing it", proc.name, proc.popen.pid)
    signal_group(proc.popen.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=5)


#: One real node per machine: its bridge, iptables chains, cgroups and NodePorts are global.
MACHINE_LOCK = Path("/run/lock/pulp-devcluster-node.lock")
#: Set by :func:`lock_holder_env` for a child process: its parent holds the lock for it.
LOCK_HOLDER_ENV = "PULP_DEVCLUSTER_NODE_LOCK_HOLDER"

_lock_guard = threading.Lock()
_lock_handle: IO[bytes] | None = None
_lock_count = 0


def acquire_machine_lock() -> None:
    """Hold the machine-wide node lock, waiting for a node run of another process to finish
    first. Reentrant within this process (a test session takes it once for all its nodes and
    checks); a child process started with :func:`lock_holder_env` uses its parent's. Every
    acquire needs a :func:`release_machine_lock`."""
    global _lock_handle, _lock_count
    with _lock_guard:
        if _lock_count == 0 and os.environ.get(LOCK_HOLDER_ENV) != str(os.getppid()):
            MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
            handle = MACHINE_LOCK.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("another real node runs here; waiting for it to stop (%s)", MACHINE_LOCK)
                fcntl.flock(handle, fcntl.LOCK_EX)
            _lock_handle = handle
        _lock_count += 1


def release_machine_lock() -> None:
    global _lock_handle, _lock_count
    with _lock_guard:
        if _lock_count == 0:
            return
        _lock_count -= 1
        if _lock_count == 0 and _lock_handle is not None:
            _lock_handle.close()  # closing the file releases the flock
            _lock_handle = None


def lock_holder_env() -> dict[str, str]:
    """Environment for a child process that runs a node under this process's lock (held)."""
    if _lock_count == 0:
        raise DevClusterError("this process does not hold the machine's node lock")
    return {LOCK_HOLDER_ENV: str(os.getpid())}


class StepTimer:
    """``with step("x"):`` records the duration in ``timings[prefix + "x"]`` (debug-logged)."""

    def __init__(self, timings: dict[str, float], prefix: str) -> None:
        self.timings = timings
        self.prefix = prefix

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[self.prefix + name] = elapsed = time.monotonic() - t0
            log.debug("%s%s took %.2fs", self.prefix, name, elapsed)
