"""Finding a dead or black-holed peer: when a connection pings (only while calls are open,
sooner when a call waits on a silent peer, never faster than etcd's ping policy allows) and
when an unanswered ping ends it. The connection supplies the clock of its last inbound byte."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import trio

from .status import RpcError, StatusCode

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["MIN_PING_INTERVAL", "STALL_AFTER", "KeepalivePolicy", "run_pinger"]

#: A call that has waited this long (up to twice this long) with nothing received sends a ping.
STALL_AFTER = 1.0
#: Never two pings closer than this: etcd's (grpc-go's) ping policy allows one every 5 s and
#: sends GOAWAY "too_many_pings" after three closer ones; the margin covers delivery jitter.
MIN_PING_INTERVAL = 6.0


class KeepalivePolicy:
    """Keepalive settings shared by a channel's successive connections, so that a GOAWAY
    "too_many_pings" doubling of the intervals (gRFC A8) outlives the connection.

    A connection pings only while calls are open (unless ``permit_without_calls``), and:
    - ``interval`` after the last inbound byte (an idle watch or lease stream), or
    - ``stall_after`` to twice that after the peer became owed a reply (a request message
      sent, or a call waiting with all of its request sent) with nothing received since: a
      hung peer is found well before ``interval``, while a peer that is merely slow answers
      the ping and the call waits on.
    Two pings are never closer than ``min_ping_interval`` (etcd's ``--grpc-keepalive-min-time``
    is 5 s, and grpc-go servers GOAWAY a client that pings more often). A ping with neither an
    answer nor any other inbound byte within ``timeout`` ends the connection with UNAVAILABLE
    (calls on it fail; see ``worst_case`` and ``idle_worst_case`` for the bounds).
    """

    __slots__ = ("interval", "min_ping_interval", "permit_without_calls", "stall_after", "timeout")

    def __init__(
        self,
        interval: float,
        timeout: float,
        *,
        permit_without_calls: bool = False,
        stall_after: float = STALL_AFTER,
        min_ping_interval: float = MIN_PING_INTERVAL,
    ):
        self.interval = interval
        self.timeout = timeout
        self.permit_without_calls = permit_without_calls
        self.stall_after = min(stall_after, interval)
        self.min_ping_interval = min(min_ping_interval, interval)

    def worst_case(self) -> float:
        """The longest a call can wait on a peer that has gone silent before the connection
        fails: two stall ticks, at most one ping spacing after an earlier (answered) ping,
        and the ping timeout. Typically ``2 * stall_after + timeout``."""
        return 2 * self.stall_after + self.min_ping_interval + self.timeout

    def idle_worst_case(self) -> float:
        """The same for open streams that expect nothing (an idle watch), counted from the
        last byte the peer sent."""
        return self.interval + self.stall_after + self.timeout

    def calmed_down(self) -> None:
        """The server said "too_many_pings": ping half as often from now on (gRFC A8)."""
        self.interval *= 2
        self.min_ping_interval *= 2


async def run_pinger(connection: Connection, policy: KeepalivePolicy) -> None:
    """A connection's keepalive task: wakes every ``stall_after``, pings when the peer has
    been silent too long for what is open, and closes the connection when a ping goes
    unanswered. No per-call timer: calls only bump a counter the task reads."""
    last_ping = -math.inf
    # The inbound-activity time at the previous tick that found a call waiting: a second such
    # tick with no byte in between means a call waited at least one tick for nothing.
    waiting_mark: Optional[float] = None
    while True:
        await trio.sleep(policy.stall_after)
        if connection.open_streams == 0 and not policy.permit_without_calls:
            # Servers punish pings without calls (etcd, grpc-go); there is nothing to save.
            waiting_mark = None
            continue
        now = trio.current_time()
        last_activity = connection.last_activity
        silent = now - last_activity
        due = silent >= policy.interval
        if not due and silent >= policy.stall_after and connection.awaits_reply():
            due = waiting_mark == last_activity
            waiting_mark = last_activity
        else:
            waiting_mark = None
        if not due:
            continue
        if now < last_ping + policy.min_ping_interval:
            await trio.sleep_until(last_ping + policy.min_ping_interval)
            if connection.last_activity > last_activity:
                continue  # the peer spoke meanwhile
        last_ping = trio.current_time()
        if not await connection.ping(policy.timeout):
            silent = trio.current_time() - connection.last_activity
            connection.close(
                RpcError(
                    StatusCode.UNAVAILABLE,
                    f"no reply from {connection.endpoint} for {silent:.1f} s"
                    f" (keepalive ping unanswered within {policy.timeout:g} s)",
                )
            )
            return
        waiting_mark = None
