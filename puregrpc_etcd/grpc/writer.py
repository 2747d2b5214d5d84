"""The outbound half of a ``Connection``: what the protocol has queued goes out in as few
writes as possible. Concurrent flushes coalesce, a writer task sends for paths that must not
await, acknowledgements alone wait a moment for a request to carry them, a write the peer does
not take in time ends the connection, and the GOAWAY after a protocol error leaves last. It
knows the protocol's output and the byte stream, never the calls."""

from __future__ import annotations

import math
from typing import Callable, Optional

import trio

from .protocol import GrpcProtocol

__all__ = ["ACK_DELAY", "Writer"]

# How long the GOAWAY that ends a connection after a protocol error may take to leave.
_GOAWAY_TIMEOUT = 1.0
#: How long acknowledgements with nothing else to send wait for a request to carry them. etcd
#: (grpc-go) sends a BDP PING with each reply; a caller that is not a trio task of this loop
#: (the asyncio and blocking faces, after a thread hop) sends its next request later than the
#: writer's scheduling round, and the ACK alone would cost a write of its own per call. Far
#: below the time a server gives a keepalive PING (etcd: --grpc-keepalive-timeout, 20 s).
ACK_DELAY = 0.001


class Writer:
    """Writes for one connection. ``fail(details)`` ends the connection when a write fails;
    ``closed`` (set by the connection) makes flushes no-ops."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: GrpcProtocol,
        *,
        write_timeout: float,
        fail: Callable[[str], None],
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._write_timeout = write_timeout
        self._fail = fail
        self.closed = False
        #: True while a flush is writing.
        self.writing = False
        self._write_failed = False
        self._write_ended: Optional[trio.Event] = None  # set when a flush ends, if waited for
        #: Set while woken callers queue their requests; the writer task then sends them all.
        self.defer_flush = False
        self._write_requested = trio.Event()
        # While only acks are queued: when the writer sends them alone (see ACK_DELAY), else
        # inf. Held acks never wake the writer: they move the deadline of its wait (``_wait``,
        # while it waits), and a request that carries them moves it back.
        self._acks_due = math.inf
        self._wait: Optional[trio.CancelScope] = None

    async def flush(self) -> None:
        """Write what the protocol has queued. Concurrent flushes coalesce: while one task
        writes, the others return at once and the writer loops until nothing is left. The write
        itself is shielded (a half-written frame would corrupt the connection) but bounded in
        time."""
        if self.writing or self.closed:
            return
        self.writing = True
        protocol = self._protocol
        stream = self._stream
        try:
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + self._write_timeout
            ) as scope:
                while True:
                    data = protocol.data_to_send()
                    if not data:
                        break
                    await stream.send_all(data)
                    if self._acks_due != math.inf:  # the held acks are out
                        self._acks_due = math.inf
                        if self._wait is not None:
                            self._wait.deadline = math.inf
                    if protocol.only_acks:
                        # Acks that came in meanwhile (the PING an etcd sends when a request
                        # arrives): they wait for the next request.
                        self.hold_acks()
                        break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._write_failed = True
            self._fail(f"connection lost while writing: {exc!r}")
            return
        finally:
            self.writing = False
            if self._write_ended is not None:
                self._write_ended.set()
        if scope.cancelled_caught:
            self._write_failed = True  # maybe in the middle of a frame: nothing more may follow
            self._fail(f"server accepted no data for {self._write_timeout:g} s")

    def kick(self) -> None:
        """Have the writer task flush soon; for paths that must not await."""
        self._write_requested.set()

    def send_soon(self) -> None:
        """Output is queued: the writer sends it soon, except acknowledgements alone, which
        wait (``hold_acks``) for a request to carry them."""
        if self._protocol.only_acks:
            self.hold_acks()
        else:
            self._write_requested.set()

    def hold_acks(self) -> None:
        """Acknowledgements alone leave within ``ACK_DELAY`` unless a request's flush takes
        them first; later ones do not extend the wait. The writer is not woken for this."""
        if self._acks_due == math.inf:
            self._acks_due = trio.current_time() + ACK_DELAY
            if self._wait is not None:
                self._wait.deadline = self._acks_due

    async def run(self) -> None:
        """The writer task: flushes after each kick, once the tasks woken with it have run, and
        sends held acknowledgements once due."""
        protocol = self._protocol
        while True:
            with trio.CancelScope(deadline=self._acks_due) as wait:
                self._wait = wait
                try:
                    await self._write_requested.wait()
                finally:
                    self._wait = None
            if not wait.cancelled_caught:  # kicked
                self._write_requested = trio.Event()
                # One scheduling round first, so the tasks woken with this kick add their
                # frames.
                await trio.lowlevel.cancel_shielded_checkpoint()
                self.defer_flush = False
                if protocol.only_acks:
                    self.hold_acks()  # a request soon to follow takes them along
                    continue
            self._acks_due = math.inf  # they leave now (or with a flush under way)
            await self.flush()

    async def send_goaway(self) -> None:
        """After a protocol error by the server, tell it why (RFC 9113 5.4.1) before closing:
        what is queued ends with our GOAWAY. Bounded: a server that reads nothing gets nothing."""
        protocol = self._protocol
        if protocol.goaway_error is None:
            return
        with trio.move_on_after(_GOAWAY_TIMEOUT):
            if self.writing:
                # A caller's flush, which sends the GOAWAY too once its own frames are out.
                self._write_ended = trio.Event()
                await self._write_ended.wait()
            if self._write_failed or not protocol.has_output:
                return
            try:
                await self._stream.send_all(protocol.data_to_send())
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the connection is being closed anyway
