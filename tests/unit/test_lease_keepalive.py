"""The lease renewal schedule and the keeper task, on trio's MockClock against a simulated server.

The simulated LeaseKeepAlive stream answers like etcd: a renewal restarts the lease's TTL, and a
lease that is unknown or expired is answered with TTL 0.
"""

from __future__ import annotations

import contextlib
import math
from typing import AsyncIterator

import pytest
import trio
import trio.testing

from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.lease._keepalive import (
    KeepAliveSchedule,
    LeaseKeeper,
    cancelled_on_loss,
)

# Schedule: pure bookkeeping, times passed in.


def test_new_lease_is_due_at_once_and_retried_quickly() -> None:
    schedule = KeepAliveSchedule(retry_interval=0.5)
    schedule.add(1, 9, now=100.0)
    assert schedule.due(100.0) == [1]
    assert schedule.due(100.4) == []
    assert schedule.due(100.5) == [1]
    assert schedule.next_deadline() == 109.0


def test_answer_moves_renewal_to_a_third_of_the_ttl() -> None:
    schedule = KeepAliveSchedule(retry_interval=0.5)
    schedule.add(1, 9, now=0.0)
    schedule.due(0.0)
    assert schedule.answered(1, 9, now=0.2)
    # Both count from the send, not the answer: the server restarted the TTL in between.
    assert schedule.next_send() == pytest.approx(3.0)
    assert schedule.next_deadline() == pytest.approx(9.0)
    assert schedule.due(2.9) == []
    assert schedule.due(3.0) == [1]


def test_retry_interval_never_exceeds_a_third_of_the_ttl() -> None:
    schedule = KeepAliveSchedule(retry_interval=5.0)
    schedule.add(1, 3, now=0.0)
    schedule.due(0.0)
    assert schedule.next_send() == pytest.approx(1.0)


def test_deadline_counts_from_the_first_unanswered_send() -> None:
    schedule = KeepAliveSchedule(retry_interval=0.5)
    schedule.add(1, 6, now=0.0)
    schedule.due(0.0)
    schedule.answered(1, 6, now=0.0)
    schedule.due(2.0)
    schedule.due(2.5)
    schedule.due(3.0)
    assert schedule.answered(1, 6, now=3.1)
    assert schedule.next_deadline() == pytest.approx(8.0)


def renewed(ttl: float, *sends: float) -> KeepAliveSchedule:
    """Lease 1 of ``ttl`` added at the first send time and renewed at each one."""
    schedule = KeepAliveSchedule(retry_interval=0.5)
    schedule.add(1, ttl, now=sends[0])
    for when in sends:
        assert schedule.due(when) == [1]
    return schedule


def test_each_late_answer_counts_from_the_renewal_it_answers() -> None:
    schedule = renewed(6, 0.0, 0.5)  # re-sent at 0.5: unanswered for retry_interval
    # Both answers come late, in order: the first answers the send at 0, the second the one
    # at 0.5, whatever their arrival (etcd renewed the lease when each request reached it).
    assert schedule.answered(1, 6, now=2.5)
    assert schedule.next_deadline() == pytest.approx(6.0)
    assert schedule.answered(1, 6, now=2.6)
    assert schedule.next_deadline() == pytest.approx(6.5)
    assert schedule.next_send() == pytest.approx(2.5)


def test_a_pending_renewal_keeps_its_retry_timer_when_an_older_one_is_answered() -> None:
    schedule = renewed(6, 0.0, 0.5)
    assert schedule.answered(1, 6, now=0.7)
    assert schedule.next_send() == pytest.approx(1.0)  # the retry of the send at 0.5


def test_an_answer_after_the_deadline_loses_the_lease() -> None:
    schedule = renewed(3, 0.0)
    assert not schedule.answered(1, 3, now=3.0)
    assert 1 not in schedule


def test_an_answer_without_a_renewal_to_match_keeps_the_deadline() -> None:
    schedule = renewed(6, 0.0)
    schedule.resend_all(1.0)  # a new stream: the old one's renewal will not be answered
    assert schedule.answered(1, 6, now=1.5)
    assert schedule.next_deadline() == pytest.approx(6.0)
    schedule.due(2.0)
    assert schedule.answered(1, 6, now=2.5)
    assert schedule.next_deadline() == pytest.approx(8.0)


def test_answers_of_a_released_lease_are_not_matched_to_its_next_hold() -> None:
    schedule = renewed(6, 0.0)
    schedule.discard(1)
    schedule.add(1, 6, now=1.0)
    schedule.due(1.0)
    assert schedule.answered(1, 6, now=1.1)  # answers the send at 0.0, of the first hold
    assert schedule.next_deadline() == pytest.approx(7.0)
    assert schedule.answered(1, 6, now=1.2)
    assert schedule.next_deadline() == pytest.approx(7.0)


def test_zero_ttl_answer_means_gone() -> None:
    schedule = KeepAliveSchedule()
    schedule.add(1, 5, now=0.0)
    schedule.due(0.0)
    assert not schedule.answered(1, 0, now=0.1)
    assert 1 not in schedule
    assert schedule.next_send() == math.inf


def test_unanswered_lease_expires_at_its_deadline() -> None:
    schedule = KeepAliveSchedule()
    schedule.add(1, 5, now=0.0)
    schedule.add(2, 5, now=0.0, remaining=2.0)
    assert schedule.expired(1.9) == []
    assert schedule.expired(2.0) == [2]
    assert schedule.expired(5.0) == [1]
    assert len(schedule) == 0


def test_resend_all_makes_everything_due() -> None:
    schedule = KeepAliveSchedule()
    schedule.add(1, 9, now=0.0)
    schedule.add(2, 30, now=0.0)
    schedule.due(0.0)
    schedule.answered(1, 9, now=0.0)
    schedule.answered(2, 30, now=0.0)
    schedule.resend_all(1.0)
    assert sorted(schedule.due(1.0)) == [1, 2]


def test_answer_for_unknown_lease_is_ignored() -> None:
    schedule = KeepAliveSchedule()
    assert schedule.answered(42, 5, now=0.0)
    assert len(schedule) == 0


# The keeper task against a simulated server.


class SimulatedLeaseServer:
    """Leases with expiry times on trio's clock, answering renewals like etcd does."""

    def __init__(self) -> None:
        self.expiry: dict[int, float] = {}
        self.ttl: dict[int, int] = {}
        self.renewals: list[tuple[float, int]] = []
        self.answering = True
        self.opens = 0
        self.refuse_opens = 0
        self.streams: list[trio.MemorySendChannel[rpc_pb2.LeaseKeepAliveResponse]] = []
        # Answers spend this long on the way back (delivered in order by tasks of ``nursery``).
        self.reply_delay = 0.0
        self.nursery: trio.Nursery | None = None

    def grant(self, lease_id: int, ttl: int) -> None:
        self.expiry[lease_id] = trio.current_time() + ttl
        self.ttl[lease_id] = ttl

    def alive(self, lease_id: int) -> bool:
        return self.expiry.get(lease_id, -1.0) > trio.current_time()

    def end_streams(self) -> None:
        for channel in self.streams:
            channel.close()
        self.streams.clear()

    @contextlib.asynccontextmanager
    async def open_stream(self) -> AsyncIterator[SimulatedStream]:
        self.opens += 1
        if self.refuse_opens:
            self.refuse_opens -= 1
            raise ConnectionError("simulated: connection refused")
        send, receive = trio.open_memory_channel[rpc_pb2.LeaseKeepAliveResponse](100)
        self.streams.append(send)
        yield SimulatedStream(self, send, receive)


class SimulatedStream:
    def __init__(
        self,
        server: SimulatedLeaseServer,
        send: trio.MemorySendChannel[rpc_pb2.LeaseKeepAliveResponse],
        receive: trio.MemoryReceiveChannel[rpc_pb2.LeaseKeepAliveResponse],
    ) -> None:
        self._server = server
        self._send = send
        self._receive = receive

    async def send_message(self, message: rpc_pb2.LeaseKeepAliveRequest) -> None:
        server = self._server
        server.renewals.append((trio.current_time(), message.ID))
        if not server.answering:
            return
        ttl = 0
        if server.alive(message.ID):
            ttl = server.ttl[message.ID]
            server.expiry[message.ID] = trio.current_time() + ttl
        reply = rpc_pb2.LeaseKeepAliveResponse(ID=message.ID, TTL=ttl)
        if server.reply_delay:
            assert server.nursery is not None
            server.nursery.start_soon(self._deliver, reply, server.reply_delay)
        else:
            await self._deliver(reply, 0.0)

    async def _deliver(self, reply: rpc_pb2.LeaseKeepAliveResponse, delay: float) -> None:
        if delay:
            await trio.sleep(delay)
        with contextlib.suppress(trio.ClosedResourceError):
            self._send.send_nowait(reply)

    def __aiter__(self) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        return self._receive.__aiter__()


@contextlib.asynccontextmanager
async def running_keeper(server: SimulatedLeaseServer) -> AsyncIterator[LeaseKeeper]:
    async with trio.open_nursery() as nursery:
        yield LeaseKeeper(nursery, server.open_stream, retry_interval=0.5)
        nursery.cancel_scope.cancel()


async def test_kept_lease_is_renewed_every_third_of_its_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 6)
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 6)
        await trio.sleep(60)
        assert server.alive(7)
        assert not kept.lost.is_set()
        times = [when for when, _ in server.renewals]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert gaps
        assert all(gap == pytest.approx(2.0) for gap in gaps)
        assert server.opens == 1


async def test_many_leases_share_one_stream(autojump_clock: trio.testing.MockClock) -> None:
    server = SimulatedLeaseServer()
    async with running_keeper(server) as keeper:
        kept = []
        for lease_id in range(1, 21):
            server.grant(lease_id, 3 + lease_id % 5)
            kept.append(keeper.hold(lease_id, 3 + lease_id % 5))
        await trio.sleep(30)
        assert all(server.alive(lease_id) for lease_id in range(1, 21))
        assert not any(k.lost.is_set() for k in kept)
        assert server.opens == 1


async def test_unanswered_renewals_are_retried_then_the_lease_is_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 6)
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 6)
        await trio.sleep(1)
        server.answering = False
        stopped_at = trio.current_time()
        with trio.fail_after(30):
            await kept.lost.wait()
        # The last answered renewal was sent at t=0, so the lease ran out at t=6.
        assert trio.current_time() == pytest.approx(6.0)
        retries = [when for when, _ in server.renewals if when >= stopped_at]
        assert len(retries) >= 6
        assert all(b - a == pytest.approx(0.5) for a, b in zip(retries[1:], retries[2:]))


async def test_zero_ttl_answer_loses_the_lease_and_cancels_its_scopes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 30)
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 30)
        await trio.sleep(1)
        del server.expiry[7]
        with cancelled_on_loss(kept) as scope:
            await trio.sleep(1000)
        assert scope.cancelled_caught
        assert kept.lost.is_set()
        # The server forgot it at t=1; the next renewal at t=10 learns so.
        assert trio.current_time() == pytest.approx(10.0)


async def test_scope_entered_after_loss_is_cancelled_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 30)
        with trio.fail_after(1):
            await kept.lost.wait()
        with cancelled_on_loss(kept) as scope:
            await trio.sleep(1)
        assert scope.cancelled_caught


async def test_stream_is_reopened_after_it_ends_or_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 3)
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 3)
        for _ in range(5):
            await trio.sleep(0.7)
            server.refuse_opens = 2
            server.end_streams()
        await trio.sleep(10)
        assert not kept.lost.is_set()
        assert server.alive(7)
        assert server.opens >= 16


async def test_releasing_the_last_holder_stops_renewal_and_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 6)
    async with running_keeper(server) as keeper:
        first = keeper.hold(7, 6)
        second = keeper.hold(7, 6)
        assert first is second
        await trio.sleep(5)
        keeper.release(first)
        await trio.sleep(5)
        assert server.alive(7)
        keeper.release(second)
        await trio.sleep(1)
        count = len(server.renewals)
        await trio.sleep(20)
        assert len(server.renewals) == count
        assert not server.alive(7)
        assert not keeper._running
        # A new hold starts the task again.
        server.grant(8, 6)
        keeper.hold(8, 6)
        await trio.sleep(20)
        assert server.alive(8)
        assert keeper._running


async def test_lease_lost_while_the_stream_cannot_be_opened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 4)
    server.refuse_opens = 1_000_000
    async with running_keeper(server) as keeper:
        kept = keeper.hold(7, 4)
        with trio.fail_after(30):
            await kept.lost.wait()
        assert trio.current_time() == pytest.approx(4.0)


async def test_late_answers_never_stretch_the_lease_past_the_servers_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.grant(7, 6)
    async with trio.open_nursery() as delays, running_keeper(server) as keeper:
        server.nursery = delays
        kept = keeper.hold(7, 6)
        await trio.sleep(1)
        # The renewal at t=2 and its retry at t=2.5 reach the server (expiry 2.5 + 6) but their
        # answers take 2.5 s back; then the server hears nothing more, as behind a black hole.
        server.reply_delay = 2.5
        await trio.sleep(1.75)
        assert [when for when, _ in server.renewals][-2:] == [2.0, 2.5]
        server.answering = False
        with trio.fail_after(30):
            await kept.lost.wait()
        # Counted from the arrival of the second answer (t=5), the client would hold the lease
        # until t=11, 2.5 s after the server let it go.
        assert trio.current_time() == pytest.approx(8.5)
        assert trio.current_time() <= server.expiry[7]
        delays.cancel_scope.cancel()


async def test_the_first_deadline_counts_from_when_the_grant_was_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimulatedLeaseServer()
    server.answering = False
    async with running_keeper(server) as keeper:
        await trio.sleep(2)
        kept = keeper.hold(7, 6, since=1.0)
        with trio.fail_after(30):
            await kept.lost.wait()
        assert trio.current_time() == pytest.approx(7.0)
