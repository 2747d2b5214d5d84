"""One HTTP/2 connection under trio: the socket, the single reader task, PING keepalive,
GOAWAY draining and stream-slot waiting. Calls use it through the small set of methods below;
everything protocol-shaped happens in ``protocol.GrpcProtocol``, the writes in
``writer.Writer``."""

from __future__ import annotations

import math
from typing import Any, Optional

import trio

from .call_state import CallState
from .deadlines import DeadlineQueue, deadline_error
from .liveness import KeepalivePolicy, run_pinger
from .metadata import RequestHeaderTemplate
from .protocol import GrpcProtocol
from .status import RpcError, StatusCode
from .writer import Writer

__all__ = ["Connection", "ConnectionUnusable"]

_RECEIVE_SIZE = 256 * 1024


class ConnectionUnusable(Exception):
    """The connection takes no new calls (closed or draining); try a fresh one."""


def _wake(call: CallState, send_blocked: set[CallState]) -> int:
    """Reschedule the tasks parked on ``call``; returns how many there were."""
    woken = 0
    task = call.recv_waiter
    if task is not None:
        call.recv_waiter = None
        trio.lowlevel.reschedule(task)
        woken = 1
    task = call.send_waiter
    if task is not None:
        call.send_waiter = None
        send_blocked.discard(call)
        trio.lowlevel.reschedule(task)
        woken += 1
    return woken


class Connection:
    """A live HTTP/2 connection to one endpoint. ``run`` owns its background tasks."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: GrpcProtocol,
        *,
        endpoint: str,
        headers: RequestHeaderTemplate,
        keepalive: KeepalivePolicy | None = None,
        write_timeout: float = 20.0,
    ) -> None:
        self.endpoint = endpoint
        self.headers = headers
        self.protocol = protocol
        self._stream = stream
        self._keepalive = keepalive
        self._closed = False
        self._writer = writer = Writer(
            stream, protocol, write_timeout=write_timeout, fail=self._fail
        )
        #: ``Writer.flush`` and ``Writer.kick``, bound here: calling them costs no extra hop.
        self.flush = writer.flush
        self.kick = writer.kick
        self.send_soon = writer.send_soon
        self._slot_waiters = trio.lowlevel.ParkingLot()
        self._cancel_scope: Optional[trio.CancelScope] = None
        self._last_activity = 0.0
        # Request messages sent, and how many had been sent at the last inbound byte: the
        # pinger's cue that a call waits on the peer (no per-call timer on the hot path).
        self._requests_sent = 0
        self._requests_at_activity = 0
        self._ping_payload = b""
        self._ping_acknowledged = trio.Event()
        self._pings_sent = 0
        self._deadlines = DeadlineQueue()
        self._deadlines_changed = trio.Event()

    @property
    def usable(self) -> bool:
        return not self._closed and not self.protocol.draining

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def open_streams(self) -> int:
        return self.protocol.open_streams

    # -- lifetime -----------------------------------------------------------------------------

    async def handshake(self) -> None:
        """Send the preface and wait for the server's SETTINGS, in the connecting task."""
        protocol = self.protocol
        protocol.initiate()
        await self._stream.send_all(protocol.data_to_send())
        while not protocol.settings_received:
            data = await self._stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise RpcError(StatusCode.UNAVAILABLE, "connection closed in the HTTP/2 handshake")
            protocol.receive_data(bytes(data))
            if protocol.failure is not None:
                raise protocol.failure
        await self._stream.send_all(protocol.data_to_send())
        self._last_activity = trio.current_time()

    async def run(self) -> None:
        """The connection's background tasks; returns once it is closed."""
        try:
            async with trio.open_nursery() as nursery:
                self._cancel_scope = nursery.cancel_scope
                if self._closed:
                    nursery.cancel_scope.cancel()
                nursery.start_soon(self._reader)
                nursery.start_soon(self._writer.run)
                nursery.start_soon(self._expirer)
                if self._keepalive is not None:
                    nursery.start_soon(run_pinger, self, self._keepalive)
        finally:
            self._closed = self._writer.closed = True
            if self.protocol.failure is None:
                self.protocol.fail(RpcError(StatusCode.UNAVAILABLE, "connection closed"))
            self._dispatch()
            with trio.CancelScope(shield=True):
                await self._writer.send_goaway()
                await trio.aclose_forcefully(self._stream)

    def close(self, error: RpcError | None = None) -> None:
        """Fail the calls still running here and stop the background tasks; no await."""
        if error is not None or self.protocol.failure is None:
            self.protocol.fail(error or RpcError(StatusCode.UNAVAILABLE, "connection closed"))
        self._dispatch()
        self._shutdown()

    def drain(self) -> None:
        """Take no new calls; close once the running ones end (as after a GOAWAY)."""
        if self.protocol.goaway_last_stream_id is None:
            self.protocol.goaway_last_stream_id = 2**31 - 1
        self._dispatch()

    def _shutdown(self) -> None:
        self._closed = self._writer.closed = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    def _fail(self, details: str) -> None:
        self.close(RpcError(StatusCode.UNAVAILABLE, f"{details} ({self.endpoint})"))

    # -- liveness (the pinger in liveness.py uses these) ----------------------------------------

    @property
    def last_activity(self) -> float:
        """When bytes last came in (tracked only with keepalive on)."""
        return self._last_activity

    def awaits_reply(self) -> bool:
        """Whether the peer owes us bytes: a request message sent since the last inbound byte,
        or a call that has sent all of its request (half-closed) and waits for the reply. An
        idle watch or lease stream owes nothing; the idle interval covers those."""
        if self._requests_sent != self._requests_at_activity:
            return True
        return any(c.local_closed and c.code is None for c in self.protocol.calls.values())

    async def ping(self, timeout: float) -> bool:
        """Send a PING; True once it is acknowledged or any byte arrives within ``timeout``."""
        self._pings_sent += 1
        self._ping_payload = self._pings_sent.to_bytes(8, "big")
        self._ping_acknowledged = trio.Event()
        sent_at = trio.current_time()
        self.protocol.send_ping(self._ping_payload)
        await self.flush()
        with trio.move_on_after(timeout):
            await self._ping_acknowledged.wait()
        if not self._ping_acknowledged.is_set():
            # The ack may sit in the socket while this task ran first after a long stall of
            # the whole event loop (a blocking call in user code): let the reader catch up.
            for _ in range(2):
                await trio.lowlevel.cancel_shielded_checkpoint()
        return self._ping_acknowledged.is_set() or self._last_activity > sent_at

    # -- background tasks ---------------------------------------------------------------------

    async def _reader(self) -> None:
        stream = self._stream
        protocol = self.protocol
        writer = self._writer
        track_activity = self._keepalive is not None
        try:
            while True:
                if protocol.backlogged:
                    # The last read is costly to process: other tasks first, then the rest.
                    await trio.lowlevel.checkpoint()
                    data = b""
                else:
                    data = await stream.receive_some(_RECEIVE_SIZE)  # type: ignore[assignment]
                    if not data:
                        self._fail("connection closed by the server")
                        return
                protocol.receive_data(data)
                if track_activity and protocol.frame_completed:
                    # Whole frames only: a peer trickling bytes that never make one is silent.
                    self._last_activity = trio.current_time()
                    self._requests_at_activity = self._requests_sent
                woken = self._dispatch()
                if woken > 1:
                    # The woken callers will mostly start their next calls at once: let the
                    # writer send all of that (and any acks) in one write once they have run,
                    # rather than a write per caller.
                    writer.defer_flush = True
                    writer.kick()
                elif protocol.has_output:
                    # PING and SETTINGS acks, WINDOW_UPDATEs.
                    if woken or protocol.only_acks:
                        writer.send_soon()
                    else:
                        await writer.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(f"connection lost: {exc!r}")
        except Exception as exc:  # any failure here must reach the calls, not the nursery
            self._fail(f"connection reader failed: {exc!r}")

    async def _expirer(self) -> None:
        """End the calls whose deadline (``expire_at``) has passed, as DEADLINE_EXCEEDED."""
        deadlines = self._deadlines
        while True:
            for call, timeout in deadlines.expired(trio.current_time()):
                self.cancel(call, deadline_error(timeout))
            self._deadlines_changed = trio.Event()
            with trio.move_on_at(deadlines.next):
                await self._deadlines_changed.wait()

    def _dispatch(self) -> int:
        """Wake the tasks whose calls changed and act on connection-level news; returns how
        many tasks were woken."""
        protocol = self.protocol
        changed = protocol.changed
        woken = 0
        if changed:
            send_blocked = protocol.send_blocked
            for call in changed:
                woken += _wake(call, send_blocked)
            changed.clear()
        if protocol.slots_freed:
            protocol.slots_freed = False
            if self.usable:
                self._slot_waiters.unpark(count=protocol.free_slots)
            else:
                self._slot_waiters.unpark_all()
        if protocol.ping_acks:
            if self._ping_payload in protocol.ping_acks:
                self._ping_acknowledged.set()
            protocol.ping_acks.clear()
        if protocol.too_many_pings:
            protocol.too_many_pings = False
            if self._keepalive is not None:
                self._keepalive.calmed_down()
        if not self._closed and (protocol.drained or protocol.failure is not None):
            self._slot_waiters.unpark_all()
            self._shutdown()
        return woken

    # -- calls --------------------------------------------------------------------------------

    def try_start_call(
        self, call: CallState, method: str, deadline: float, metadata: bytes
    ) -> bool:
        """Queue the call's HEADERS now if that needs no waiting (a free slot, a usable
        connection, time left); else False, and ``start_call`` is the way."""
        protocol = self.protocol
        if not (protocol.has_free_slot and self.usable):
            return False
        timeout = None
        if deadline != math.inf:
            timeout = deadline - trio.current_time()
            if timeout <= 0:
                return False
        protocol.start_call(call, self.headers.block(method, timeout, metadata))
        return True

    def expire_at(self, call: CallState, deadline: float, timeout: float) -> None:
        """End ``call`` with DEADLINE_EXCEEDED (and reset its stream) once ``deadline`` passes:
        a unary call's timeout without a cancel scope of its own."""
        if self._deadlines.add(call, deadline, timeout, self.protocol.open_streams):
            self._deadlines_changed.set()

    async def start_call(
        self,
        call: CallState,
        method: str,
        deadline: float,
        metadata: bytes,
        *,
        end_stream: bool = False,
    ) -> None:
        """Wait for a stream slot, then queue the call's HEADERS (not flushed); ``metadata``
        is an HPACK block from ``metadata.metadata_block``."""
        protocol = self.protocol
        if deadline <= trio.current_time():
            # Already expired: let trio deliver the cancellation rather than send a doomed call.
            await trio.lowlevel.checkpoint()
        while not protocol.has_free_slot:
            if not self.usable:
                raise ConnectionUnusable
            await self._slot_waiters.park()
        if not self.usable:
            raise ConnectionUnusable
        timeout = None
        if deadline != math.inf:
            timeout = max(deadline - trio.current_time(), 1e-9)
        protocol.start_call(
            call, self.headers.block(method, timeout, metadata), end_stream=end_stream
        )

    async def send(self, call: CallState, data: bytes, *, end_stream: bool) -> None:
        """Send one encoded message (or none, to half-close), waiting for window as needed.
        Cancelled part-way, the call is reset: its framing would be broken otherwise."""
        protocol = self.protocol
        writer = self._writer
        self._requests_sent += 1
        view = memoryview(data)
        started = False
        try:
            while True:
                sent = protocol.send_data(call, view, end_stream=end_stream)
                if sent == len(view) or call.released:
                    break
                view = view[sent:]
                if sent:
                    started = True
                    await writer.flush()
                    continue
                if protocol.has_output and not writer.writing:
                    await writer.flush()
                    continue
                await self.wait(call, sending=True)
        except BaseException:
            if started and not call.released:
                self.cancel(call, RpcError(StatusCode.CANCELLED, "cancelled while sending"))
            raise
        if not writer.defer_flush:
            await writer.flush()

    def take(self, call: CallState) -> bytes | None:
        """The next message already received for a call, if any, without waiting."""
        message = self.protocol.consume(call)
        if self.protocol.has_output:
            self.send_soon()
        return message

    async def receive(self, call: CallState) -> bytes | None:
        """The next message of a call, or None once it has ended and nothing is left."""
        protocol = self.protocol
        while True:
            message = protocol.consume(call)
            if message is not None:
                if protocol.has_output:
                    self.send_soon()
                return message
            if call.code is not None:
                return None
            await self.wait(call, sending=False)

    async def wait(self, call: CallState, *, sending: bool) -> None:
        """Park until the reader reports news for this call (or the connection ends)."""
        task = trio.lowlevel.current_task()
        if sending:
            if call.send_waiter is not None:
                raise trio.BusyResourceError("another task is already sending on this call")
            call.send_waiter = task
            self.protocol.send_blocked.add(call)
        else:
            if call.recv_waiter is not None:
                raise trio.BusyResourceError("another task is already receiving on this call")
            call.recv_waiter = task

        def abort(_: Any) -> trio.lowlevel.Abort:
            if sending:
                call.send_waiter = None
                self.protocol.send_blocked.discard(call)
            else:
                call.recv_waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def end_stream(self, call: CallState) -> None:
        self.protocol.end_stream(call)

    def cancel(self, call: CallState, error: RpcError) -> None:
        """Reset a call's stream (RST_STREAM CANCEL) without awaiting; the writer sends it."""
        if call.released:
            if call.code is None:
                call.code, call.details, call.error = error.code, error.details, error
            return
        self.protocol.cancel_call(call, error)
        self._dispatch()
        self.kick()
