"""Lease renewal: a pure schedule of when each lease is due or lost, and the task that follows it.

All leases of a client share one LeaseKeepAlive stream, driven by one task in the client's nursery.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from typing import (
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Iterator,
    Protocol,
)

import trio

from puregrpc_etcd._proto import rpc_pb2

__all__ = ["KeepAliveSchedule", "KeptLease", "LeaseKeeper", "cancelled_on_loss"]

log = logging.getLogger("puregrpc_etcd.lease")

#: How soon an unanswered renewal is sent again (never later than ttl/3).
RETRY_INTERVAL = 0.5
#: Renewals due this much later (at most a tenth of their TTL) go out with those due now: one
#: wake-up and one burst for many leases, instead of one for each.
BATCH_WINDOW = 0.25
#: Pause between attempts to re-open the stream: doubles from the first to the second value.
REOPEN_BACKOFF = (0.05, 1.0)


class _Timing:
    __slots__ = ("deadline", "next_send", "ttl")

    def __init__(self, ttl: float, deadline: float, next_send: float) -> None:
        self.ttl = ttl
        self.deadline = deadline
        self.next_send = next_send


class KeepAliveSchedule:
    """When each lease must be renewed and when it counts as lost; every time is passed in.

    Theory of operation:
    - A lease is due as soon as it is added, then ttl/3 after the send of each answered
      renewal (the cadence of etcd's Go client).
    - An unanswered renewal is sent again after ``retry_interval`` (at most ttl/3), so that a
      dropped stream or a slow member costs little of the TTL.
    - etcd answers the renewals of one stream one by one, in the order they were sent (or ends
      the stream). So each answer is matched to the oldest unanswered send of its lease on the
      stream (were an answer ever missing, later ones would match older sends: earlier
      deadlines, the safe side), and an answer with TTL > 0 moves the deadline to (that send)
      + TTL: the server restarted the lease's clock no earlier than that send, so the client's
      deadline is never later than the server's expiry, however late the answers arrive. Go's
      client counts from the arrival of the answer instead (``client/v3/lease.go``,
      ``recvKeepAlive``), which can believe a lease held for as long as an answer spent on the
      way back after the server let it go: we are stricter on purpose, since a lock must not
      outlive its lease.
    - A lease is lost when its deadline passes without an answer, or when an answer says
      TTL <= 0 (the server no longer knows it) or comes after the deadline. Lost leases leave
      the schedule.
    """

    def __init__(self, retry_interval: float = RETRY_INTERVAL) -> None:
        self.retry_interval = retry_interval
        self._timings: dict[int, _Timing] = {}
        # Send times of the renewals not answered yet on the current stream, oldest first, by
        # lease; kept for leases that left the schedule too, whose answers are still to come.
        self._in_flight: dict[int, Deque[float]] = {}

    def __len__(self) -> int:
        return len(self._timings)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._timings

    def add(self, lease_id: int, ttl: float, now: float, *, remaining: float | None = None) -> None:
        """Start renewing a lease granted ``ttl`` seconds, ``remaining`` of which were left at
        ``now`` (for a safe deadline: when the request that reported them was sent)."""
        if lease_id in self._timings:
            return
        left = ttl if remaining is None else remaining
        self._timings[lease_id] = _Timing(ttl, now + left, now)

    def discard(self, lease_id: int) -> None:
        """Stop renewing a lease (no-op when it is not scheduled)."""
        self._timings.pop(lease_id, None)

    def due(self, now: float, *, early: float = 0.0) -> list[int]:
        """The leases to renew now, with those due within ``early`` seconds (at most a tenth of
        their TTL); they are counted as sent at ``now``."""
        sent = []
        for lease_id, timing in self._timings.items():
            if timing.next_send <= now or (
                early and timing.next_send <= now + min(early, timing.ttl / 10)
            ):
                self._in_flight.setdefault(lease_id, deque()).append(now)
                timing.next_send = now + min(self.retry_interval, timing.ttl / 3)
                sent.append(lease_id)
        return sent

    def answered(self, lease_id: int, ttl: float, now: float) -> bool:
        """Record the server's answer for a lease; False when the lease is lost by it."""
        sends = self._in_flight.get(lease_id)
        sent = sends.popleft() if sends else None
        if sends is not None and not sends:
            del self._in_flight[lease_id]
        timing = self._timings.get(lease_id)
        if timing is None:
            return True
        if ttl <= 0 or timing.deadline <= now:
            # Past the deadline the lease counts as lost (the expiry task may not have run yet):
            # it is never revived, as Go's client does not revive it either.
            del self._timings[lease_id]
            return False
        if sent is None:
            # No renewal of ours to match (none is sent outside ``due``): nothing safe to count
            # the TTL from, so the deadline stays where it is.
            return True
        timing.ttl = ttl
        timing.deadline = max(timing.deadline, sent + ttl)
        if lease_id not in self._in_flight:
            # With later renewals still unanswered, their retry timer stays in charge.
            timing.next_send = sent + ttl / 3
        return True

    def expired(self, now: float) -> list[int]:
        """The leases whose deadline has passed; they leave the schedule."""
        gone = [lease_id for lease_id, t in self._timings.items() if t.deadline <= now]
        for lease_id in gone:
            del self._timings[lease_id]
        return gone

    def resend_all(self, now: float) -> None:
        """Make every lease due now: a new stream knows nothing of renewals sent on the old one,
        and the old one's answers will never come."""
        self._in_flight.clear()
        for timing in self._timings.values():
            timing.next_send = now

    def next_send(self) -> float:
        """When the next renewal is due (``inf`` when nothing is scheduled)."""
        return min((t.next_send for t in self._timings.values()), default=math.inf)

    def next_deadline(self) -> float:
        """When the next lease expires unless answered (``inf`` when nothing is scheduled)."""
        return min((t.deadline for t in self._timings.values()), default=math.inf)


class KeptLease:
    """One lease being kept alive, shared by everyone holding it: the ``lost`` event and the
    cancel scopes to cancel when it is lost."""

    __slots__ = ("holders", "lease_id", "loss_scopes", "lost", "ttl")

    def __init__(self, lease_id: int, ttl: int) -> None:
        self.lease_id = lease_id
        self.ttl = ttl
        self.lost = trio.Event()
        self.loss_scopes: set[trio.CancelScope] = set()
        self.holders = 0

    def mark_lost(self) -> None:
        if not self.lost.is_set():
            log.info("lease %x lost", self.lease_id)
        self.lost.set()
        for scope in self.loss_scopes:
            scope.cancel()


@contextlib.contextmanager
def cancelled_on_loss(kept: KeptLease) -> Iterator[trio.CancelScope]:
    """A cancel scope that is cancelled when (or if already) the lease is lost."""
    with trio.CancelScope() as scope:
        if kept.lost.is_set():
            scope.cancel()
        kept.loss_scopes.add(scope)
        try:
            yield scope
        finally:
            kept.loss_scopes.discard(scope)


class KeepAliveStream(Protocol):
    """What the keeper needs of a LeaseKeepAlive call (``grpc.Stream`` fits)."""

    async def send_message(self, message: rpc_pb2.LeaseKeepAliveRequest) -> None: ...

    def __aiter__(self) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]: ...


class _StreamEndedError(Exception):
    """The server ended the keepalive stream; it must be re-opened."""


class LeaseKeeper:
    """Keeps leases alive over one shared LeaseKeepAlive stream, from a task in ``nursery``.

    The task starts with the first held lease and ends when none is left. A stream that fails
    or ends is re-opened (the client's channel reconnects underneath) with a short backoff,
    while a second task marks as lost every lease whose deadline passes meanwhile.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        open_stream: Callable[[], AsyncContextManager[KeepAliveStream]],
        *,
        retry_interval: float = RETRY_INTERVAL,
        reopen_backoff: tuple[float, float] = REOPEN_BACKOFF,
    ) -> None:
        self._nursery = nursery
        self._open_stream = open_stream
        self._reopen_backoff = reopen_backoff
        self._schedule = KeepAliveSchedule(retry_interval)
        self._kept: dict[int, KeptLease] = {}
        self._changed = trio.Event()
        self._running = False
        self._answers = 0
        #: What broke the last stream (``open_stream`` may look: a refused token, say).
        self.last_failure: Exception | None = None

    def hold(
        self,
        lease_id: int,
        ttl: int,
        *,
        remaining: float | None = None,
        since: float | None = None,
    ) -> KeptLease:
        """Keep a lease alive until every holder has called ``release``.

        ``remaining`` (default ``ttl``) seconds were left at ``since`` (``trio.current_time()``
        value; default now): pass when the grant or TTL request was sent, so that the first
        deadline is not later than the server's expiry either.
        """
        kept = self._kept.get(lease_id)
        if kept is None or kept.lost.is_set():
            kept = KeptLease(lease_id, ttl)
            self._kept[lease_id] = kept
            start = trio.current_time() if since is None else since
            self._schedule.add(lease_id, ttl, start, remaining=remaining)
            self._notify()
            if not self._running:
                self._nursery.start_soon(self._run)
                self._running = True
        kept.holders += 1
        return kept

    def release(self, kept: KeptLease) -> None:
        """One holder is done with the lease; the last one stops its renewal."""
        kept.holders -= 1
        if kept.holders <= 0 and self._kept.get(kept.lease_id) is kept:
            del self._kept[kept.lease_id]
            self._schedule.discard(kept.lease_id)
            self._notify()

    def lose(self, lease_id: int) -> None:
        """Mark a lease lost now (e.g. it was revoked) and stop renewing it."""
        kept = self._kept.get(lease_id)
        if kept is not None:
            self._schedule.discard(lease_id)
            kept.mark_lost()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def _run(self) -> None:
        try:
            while self._schedule:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._expire_loop)
                    await self._stream_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self._running = False

    async def _expire_loop(self) -> None:
        while self._schedule:
            changed = self._changed
            for lease_id in self._schedule.expired(trio.current_time()):
                kept = self._kept.get(lease_id)
                if kept is not None:
                    kept.mark_lost()
            with trio.move_on_at(self._schedule.next_deadline()):
                await changed.wait()

    async def _stream_loop(self) -> None:
        backoff = self._reopen_backoff[0]
        while self._schedule:
            answers_before = self._answers
            await self._use_stream()
            if not self._schedule:
                return
            if self._answers != answers_before:
                backoff = self._reopen_backoff[0]
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self._reopen_backoff[1])

    async def _use_stream(self) -> None:
        """Renew over one stream until it fails or nothing is left to renew."""
        try:
            async with self._open_stream() as stream:
                self._schedule.resend_all(trio.current_time())
                async with trio.open_nursery() as nursery:
                    done = nursery.cancel_scope
                    nursery.start_soon(self._until_failure, self._receive(stream), done)
                    await self._until_failure(self._send(stream), done)
        except Exception as exc:
            self._stream_failed(exc)

    async def _until_failure(self, work: Awaitable[None], done: trio.CancelScope) -> None:
        # Failures are taken here, inside each task, so that none ever joins a cancellation of
        # the client's nursery in an exception group that would escape to the user.
        try:
            await work
        except Exception as exc:
            self._stream_failed(exc)
        done.cancel()

    def _stream_failed(self, exc: Exception) -> None:
        # Whatever broke the stream (connection, server, a member without leader), the remedy
        # is the same: open it again while the leases' deadlines allow.
        log.debug("lease keepalive stream failed: %r", exc)
        self.last_failure = exc

    async def _send(self, stream: KeepAliveStream) -> None:
        while self._schedule:
            changed = self._changed
            for lease_id in self._schedule.due(trio.current_time(), early=BATCH_WINDOW):
                await stream.send_message(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            with trio.move_on_at(self._schedule.next_send()):
                await changed.wait()

    async def _receive(self, stream: KeepAliveStream) -> None:
        async for reply in stream:
            self._answers += 1
            if not self._schedule.answered(reply.ID, reply.TTL, trio.current_time()):
                self.lose(reply.ID)
        raise _StreamEndedError("the server ended the lease keepalive stream")
