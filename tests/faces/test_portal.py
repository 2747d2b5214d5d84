"""The portal under the faces, without etcd: a runner task runs one call after another under
one cancel scope, so a cancel that arrives after its call has ended must not reach the next
call of that runner, and a cancelled call leaves the runner usable."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from puregrpc_etcd import _awaiting, _face, _pending, _portal
from puregrpc_etcd._pending import ClientClosedError, Pending


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


class Taken:
    """What a lock-taking call returns: something with ``release``."""

    def __init__(self) -> None:
        self.released = threading.Event()

    async def release(self) -> None:
        self.released.set()


async def take_slowly(taken: Taken, seconds: float) -> Taken:
    with trio.CancelScope(shield=True):  # it takes the lock whatever the caller does
        await trio.sleep(seconds)
    return taken


def test_what_a_given_up_call_takes_later_is_released_with_nobody_waiting(
    portal: _portal.Portal,
) -> None:
    taken = Taken()
    call = portal.submit(take_slowly, taken, 0.2)
    released = _face.release_when_taken(portal, call)  # the caller gave up: it waits no more
    assert not released.done
    assert taken.released.wait(10)  # the portal released it by itself
    assert released.wait(10)


def test_a_call_that_took_nothing_has_nothing_released(portal: _portal.Portal) -> None:
    call = portal.submit(noop)
    assert call.outcome.wait(10)
    assert _face.release_when_taken(portal, call).wait(0)  # at once: "quick" has no release


def test_a_lock_taken_as_its_task_is_cancelled_twice_is_released() -> None:
    """The second cancel lands in the bounded wait for the first one's end: the lock the call
    took meanwhile is released all the same (it stayed taken until the client closed)."""
    portal = _portal.Portal(nothing, "test-portal")
    try:
        portal.opened.wait(10)
        taken = Taken()

        async def main() -> None:
            task = asyncio.ensure_future(_awaiting.run_taking(portal, take_slowly, taken, 0.3))
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert taken.released.wait(10)
    finally:
        portal.close()


async def fails_closed() -> None:
    raise ClientClosedError("closed")


def test_a_cancel_for_a_call_left_unsettled_at_exit_spares_the_parked_runner(
    portal: _portal.Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At interpreter exit a ClientClosedError outcome is left unsettled (_pending.exiting): a
    # cancel that comes then found the call "running" and cancelled the runner parked after it
    # (its loop then failed: UnboundLocalError).
    monkeypatch.setattr(_pending, "exiting", True)
    call = portal.submit(fails_closed)
    for _ in range(500):  # bounded wait for the runner to park after the call
        if portal._idle:
            break
        time.sleep(0.01)
    portal.cancel(call)
    done = portal.call_sync(lambda: None)
    assert done.wait(10)
    monkeypatch.setattr(_pending, "exiting", False)
    assert portal._failure is None
    assert run(portal, noop) == "quick"


def _settle_later(pending: Pending, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), pending.succeed("set")))
    thread.start()
    return thread


def test_a_lent_socket_pair_left_with_a_timeout_still_serves_an_untimed_wait() -> None:
    # A timed wait interrupted in its clean-up (a signal) could give its pair back with a
    # timeout on it: the next untimed wait on that pair raised socket.timeout.
    wakeup = _pending._take_wakeup()
    wakeup._receive.settimeout(0.01)
    _pending._give_back(wakeup)
    pending = Pending()
    thread = _settle_later(pending, 0.2)
    assert pending.wait()
    thread.join(10)


def test_the_pool_of_socket_pairs_keeps_a_bounded_number_after_a_burst() -> None:
    pendings = [Pending() for _ in range(_pending._IDLE_WAKEUPS_KEPT + 8)]
    waiters = [threading.Thread(target=pending.wait, args=(10,)) for pending in pendings]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)  # they all wait at once, each on a pair of its own
    for pending in pendings:
        pending.succeed(None)
    for waiter in waiters:
        waiter.join(10)
    assert len(_pending._idle_wakeups) <= _pending._IDLE_WAKEUPS_KEPT
