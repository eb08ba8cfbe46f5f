"""The kube-apiserver's audit log, for counting the API requests a process makes.

``ControlPlane(audit=True)`` starts kube-apiserver with a policy that logs every request at level
``Metadata`` (who, what, where; no bodies) as JSON lines to ``<state dir>/audit.log``, in
``blocking-strict`` mode: an event is written before the next one of its request is processed,
synchronously with the request. Stage ``RequestReceived`` is left out, so a request gives one
event when it completes (``ResponseComplete``), plus ``ResponseStarted`` first for a long-running
request (a watch); :class:`AuditLog` counts each request once, where it first appears.

A request's last event is written right after its response, so a client could read the log a
moment too early; :meth:`AuditLog.mark` therefore sends a request of its own and waits until it
is logged: every request answered before the call is in the log before the mark. Count between
two marks::

    audit = AuditLog.of(cluster)
    before = audit.mark()
    ...  # the requests to count
    after = audit.mark()
    verbs = audit.count(since=before, until=after, username="operator")  # {"get": 2, ...}
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pulp_devcluster.errors import DevClusterError

if TYPE_CHECKING:
    from pulp_devcluster.controlplane.plane import ClusterInfo

AUDIT_LOG = "audit.log"
AUDIT_POLICY = "audit-policy.yaml"
#: User agent of the requests of :meth:`AuditLog.mark` (never counted).
MARK_USER_AGENT = "pulp-devcluster-audit-mark/"


def write_audit_policy(path: Path) -> Path:
    policy = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata"}],
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def audit_args(policy: Path, log: Path) -> list[str]:
    """kube-apiserver arguments for the audit log (no rotation: offsets stay valid)."""
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking-strict",
        "--audit-log-maxsize=0",
    ]


@dataclass(frozen=True)
class AuditEntry:
    """One API request as the audit log records it."""

    audit_id: str
    stage: str
    verb: str
    uri: str
    username: str
    user_agent: str
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    api_group: str | None
    code: int | None
    received: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> AuditEntry:
        ref = event.get("objectRef") or {}
        status = event.get("responseStatus") or {}
        return cls(
            audit_id=str(event.get("auditID", "")),
            stage=str(event.get("stage", "")),
            verb=str(event.get("verb", "")),
            uri=str(event.get("requestURI", "")),
            username=str((event.get("user") or {}).get("username", "")),
            user_agent=str(event.get("userAgent", "")),
            resource=ref.get("resource"),
            subresource=ref.get("subresource"),
            namespace=ref.get("namespace"),
            name=ref.get("name"),
            api_group=ref.get("apiGroup") or None,
            code=status.get("code"),
            received=str(event.get("requestReceivedTimestamp", "")),
        )


class AuditLog:
    """Reads an audit log as it grows. Positions in the log (``mark()``, ``since``, ``until``)
    are byte offsets at line boundaries."""

    def __init__(
        self,
        path: Path,
        *,
        server: str | None = None,
        token: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.path = path
        self._server, self._token, self._ca_file = server, token, ca_file
        self._parsed_to = 0
        self._seen: set[str] = set()
        #: (offset of the line, entry) of the first event of every request, in log order
        self._entries: list[tuple[int, AuditEntry]] = []

    @classmethod
    def of(cls, cluster: ClusterInfo) -> AuditLog:
        """The audit log of a control plane started with ``audit=True``."""
        if cluster.audit_log is None:
            raise DevClusterError("this control plane has no audit log: start it with audit=True")
        return cls(
            cluster.audit_log, server=cluster.server, token=cluster.token, ca_file=cluster.ca_file
        )

    def mark(self, timeout: float = 10.0) -> int:
        """A position after every request answered so far (a request of its own, waited for
        until logged); without a server to ask, the end of what is written now."""
        if self._server is None:
            self._parse()
            return self._parsed_to
        agent = MARK_USER_AGENT + secrets.token_hex(8)
        self._send_mark(agent)
        deadline = time.monotonic() + timeout
        while True:
            end = self._parse(stop_at=lambda e: e.user_agent == agent)
            if end is not None:
                return end
            if time.monotonic() > deadline:
                raise DevClusterError(f"the audit mark did not reach {self.path} in {timeout}s")
            time.sleep(0.01)

    def requests(
        self,
        since: int = 0,
        until: int | None = None,
        *,
        username: str | None = None,
        user_agent_prefix: str | None = None,
    ) -> list[AuditEntry]:
        """The requests first logged in [since, until) (until None: up to now), without the
        marks, optionally only those of ``username`` / with a user agent starting with
        ``user_agent_prefix``."""
        self._parse()
        return [
            entry
            for offset, entry in self._entries
            if offset >= since
            and (until is None or offset < until)
            and not entry.user_agent.startswith(MARK_USER_AGENT)
            and (username is None or entry.username == username)
            and (user_agent_prefix is None or entry.user_agent.startswith(user_agent_prefix))
        ]

    def count(
        self,
        since: int = 0,
        until: int | None = None,
        *,
        username: str | None = None,
        user_agent_prefix: str | None = None,
    ) -> Counter[str]:
        """How many requests of each verb :meth:`requests` finds."""
        found = self.requests(since, until, username=username, user_agent_prefix=user_agent_prefix)
        return Counter(entry.verb for entry in found)

    # -- internals ------------------------------------------------------------------------

    def _parse(self, stop_at: Callable[[AuditEntry], bool] | None = None) -> int | None:
        """Read the complete lines written since the last call; returns the end offset of the
        line of the first event matching ``stop_at`` (the rest is read on the next call)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._parsed_to)
                data = fh.read()
        except FileNotFoundError:
            return None
        offset = self._parsed_to
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # being written
            start, offset = offset, offset + len(line)
            self._parsed_to = offset
            entry = AuditEntry.from_event(json.loads(line))
            if entry.audit_id not in self._seen:
                self._seen.add(entry.audit_id)
                self._entries.append((start, entry))
            if stop_at is not None and stop_at(entry):
                return offset
        return None

    def _send_mark(self, agent: str) -> None:
        assert self._server is not None
        req = urllib.request.Request(f"{self._server}/version", headers={"User-Agent": agent})
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        context = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(req, timeout=10) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DevClusterError(f"audit mark request to {self._server} failed: {exc}") from exc
