"""kopf's watch streams outlive the errors that would end them (operator._unending)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching
from kopf._core.reactor import queueing

from pulp_operator import operator
from pulp_operator.kube import Kube
from pulp_operator.workqueue import WorkQueue


def not_found() -> kopf_errors.APINotFoundError:
    return kopf_errors.APINotFoundError("the server could not find", status=404, headers={})


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


def flaky_stream(script: list[Any]) -> Any:
    """A stand-in for kopf's stream: each call plays the next scripted attempt (its events, then
    the exception that ends it; the last attempt ends without one, as kopf's test mode does)."""
    calls: list[dict[str, Any]] = []

    async def stream(**kwargs: Any) -> AsyncIterator[Any]:
        calls.append(kwargs)
        attempt = script.pop(0)
        for item in attempt:
            if isinstance(item, BaseException):
                raise item
            yield item

    stream.calls = calls  # type: ignore[attr-defined]
    return stream


async def test_a_404_or_an_error_event_starts_the_stream_again(no_sleep: list[float]) -> None:
    stream = flaky_stream(
        [
            ["a", not_found()],
            [kopf_watching.WatchingError("Error in the watch-stream: {'code': 500}")],
            ["b", "c"],
        ]
    )
    wrapped = operator._unending(stream)
    events = [e async for e in wrapped(resource="pulps", namespace="ns")]
    assert events == ["a", "b", "c"]
    assert len(stream.calls) == 3
    assert all(c == {"resource": "pulps", "namespace": "ns"} for c in stream.calls)
    assert no_sleep == [1, 1], "restarts wait with the operator's backoff"


async def test_the_backoff_grows_while_failing_and_resets_after_an_event(
    no_sleep: list[float],
) -> None:
    stream = flaky_stream(
        [[not_found()] for _ in range(7)] + [["x", not_found()], [not_found()], ["y"]]
    )
    events = [e async for e in operator._unending(stream)(resource="pulps")]
    assert events == ["x", "y"]
    assert no_sleep == [1, 1, 2, 3, 5, 8, 8, 1, 1]


async def test_unauthorized_is_left_to_kopfs_re_login() -> None:
    refused = kopf_errors.APIUnauthorizedError("Unauthorized", status=401, headers={})
    stream = flaky_stream([[refused]])
    with pytest.raises(kopf_errors.APIUnauthorizedError):
        async for _ in operator._unending(stream)(resource="pulps"):
            pass


async def test_other_exceptions_are_not_swallowed() -> None:
    stream = flaky_stream([[ValueError("a bug")]])
    with pytest.raises(ValueError, match="a bug"):
        async for _ in operator._unending(stream)(resource="pulps"):
            pass


def test_kopfs_watcher_uses_the_wrapped_stream_and_wrapping_is_done_once() -> None:
    assert operator.install_unending_watches()
    first = kopf_watching.infinite_watch
    assert getattr(first, "unending", False)
    assert operator.install_unending_watches()
    assert kopf_watching.infinite_watch is first, "wrapped twice"
    # kopf's watcher task looks the stream up on the module at every call: the wrapper is used
    assert queueing.watching is kopf_watching  # type: ignore[attr-defined]


async def test_a_failing_watch_is_recorded_while_it_fails_and_forgotten_when_it_works() -> None:
    during: list[dict[str, tuple[float, str]]] = []
    stream = flaky_stream([[not_found()], [not_found()], ["event"]])

    async def observed(**kwargs: Any) -> AsyncIterator[Any]:
        during.append(dict(operator.FAILING_WATCHES))
        async for event in stream(**kwargs):
            yield event

    events = [e async for e in operator._unending(observed)(resource="pulps", namespace="ns")]
    assert events == ["event"]
    assert during[0] == {}
    assert list(during[1]) == list(during[2]) == ["pulps@ns"]
    assert during[1]["pulps@ns"][0] == during[2]["pulps@ns"][0], "since the first failure"
    assert during[2]["pulps@ns"][1].startswith("APINotFoundError: ")
    assert "pulps@ns" not in operator.FAILING_WATCHES, "forgotten once it delivers"


async def test_a_watch_that_stops_while_failing_leaves_no_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stopped(delay: float) -> None:
        assert "pulps@ns" in operator.FAILING_WATCHES
        raise asyncio.CancelledError  # the operator stops while the stream waits to retry

    monkeypatch.setattr(asyncio, "sleep", stopped)
    stream = flaky_stream([[not_found()], ["never"]])
    with pytest.raises(asyncio.CancelledError):
        async for _ in operator._unending(stream)(resource="pulps", namespace="ns"):
            pass
    assert "pulps@ns" not in operator.FAILING_WATCHES


async def test_readiness_fails_for_a_watch_failing_over_a_minute_liveness_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulp_operator import health

    async def ping() -> None:
        return None

    async def handle(key: tuple[str, str]) -> None:
        return None

    runtime = operator.Runtime(operator.RunOptions())
    runtime.kube = Kube.__new__(Kube)  # never asked: the API contact below pings nothing
    runtime.kube.last_contact = None
    runtime.queue = WorkQueue(handle)  # type: ignore[arg-type]
    checks = operator._health(runtime)
    checks.api = health.ApiContact(runtime.kube, ping)
    now = time.monotonic()
    monkeypatch.setitem(operator.FAILING_WATCHES, "pulps@ns", (now - 5, "APINotFoundError: x"))
    assert (await checks.ready())[0] == [], "a watch failing for seconds is not a problem yet"
    monkeypatch.setitem(operator.FAILING_WATCHES, "pulps@ns", (now - 61, "APINotFoundError: x"))
    problems, body = await checks.ready()
    assert problems == ["streams: watches failing for over 60s: pulps@ns"]
    assert body["watches"]["failing"]["pulps@ns"]["error"] == "APINotFoundError: x"
    assert (await checks.live())[0] == [], "a restart does not mend a watch the API refuses"
