"""The portal under the faces, without etcd: a runner task runs one call after another under
one cancel scope, so a cancel that arrives after its call has ended must not reach the next
call of that runner, and a cancelled call leaves the runner usable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from puregrpc_etcd import _portal
from puregrpc_etcd._pending import ClientClosedError


@asynccontextmanager
async def nothing() -> AsyncIterator[object]:
    yield object()


async def slow(seconds: float) -> str:
    await trio.sleep(seconds)
    return "done"


async def noop() -> str:
    return "quick"


@pytest.fixture
def portal() -> _portal.Portal:
    opened = _portal.Portal(nothing, "test-portal")
    opened.opened.wait(10)
    yield opened  # type: ignore[misc]
    opened.close()


def run(portal: _portal.Portal, fn: object, *args: object) -> object:
    call = portal.submit(fn, *args)  # type: ignore[arg-type]
    return _portal.wait(portal, call.outcome, call)


def test_a_late_cancel_spares_the_next_call_of_the_runner(portal: _portal.Portal) -> None:
    first = portal.submit(noop)
    assert first.outcome.wait(10)
    assert first.outcome.result() == "quick"
    second = portal.submit(slow, 0.2)  # the same (only) runner takes it
    portal.cancel(first)  # too late for the first: the second runs on
    assert second.outcome.wait(10)
    assert second.outcome.result() == "done"
    for _ in range(500):  # the runner parks just after settling: bounded wait for it
        if portal._idle:
            break
        time.sleep(0.01)
    assert len(portal._idle) == 1  # the one runner lived on


def test_a_cancelled_call_leaves_the_runner_usable(portal: _portal.Portal) -> None:
    doomed = portal.submit(slow, 60)
    portal.cancel(doomed)
    assert doomed.outcome.wait(10)
    with pytest.raises(ClientClosedError, match="cancelled"):
        doomed.outcome.result()
    assert [run(portal, noop) for _ in range(3)] == ["quick"] * 3
    assert run(portal, slow, 0.01) == "done"
