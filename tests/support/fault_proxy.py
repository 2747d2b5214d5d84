"""A loopback TCP proxy that fails the way networks and hung servers do, for fault tests of any
suite (etcd members, the gRPC interop server): pass, black-hole (silence without FIN or RST),
reset (RST), and "accept but never speak"; plus a port whose TCP connects time out."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["FaultProxy", "unanswered_port"]

# What new connections get.
PASS = "pass"
SILENT = "silent"  # accepted, then nothing: no bytes, no FIN (a SIGSTOPped server's kernel)
RESET = "reset"  # accepted, then reset at once
MODES = (PASS, SILENT, RESET)


def _rst(stream: trio.SocketStream) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class _Relay:
    __slots__ = ("black_holed", "scope", "streams")

    def __init__(self, streams: tuple[trio.SocketStream, ...]) -> None:
        self.streams = streams
        self.scope = trio.CancelScope()
        self.black_holed = False


class FaultProxy:
    """Forwards loopback TCP connections to ``target_port``; faults are switched on by calls.

    - ``blackhole()``: a partition. The connections open now forward nothing either way from
      then on, yet stay open, reading and dropping what arrives (so no buffer fills and tells
      the sender): the client hears silence, never a FIN or RST. New connections are accepted
      and never spoken to (``mode = "silent"``). A black-holed connection ends only when its
      client gives up on it, as after a real partition that outlived the connection.
    - ``heal()``: new connections forward again (``mode = "pass"``).
    - ``reset()``: the connections open now are reset (RST) on both sides.
    - ``mode``: ``"pass"`` (forward), ``"silent"`` (accept and never speak: a hung server whose
      kernel still completes TCP handshakes) or ``"reset"`` (accept, then RST) for connections
      accepted from then on.
    Run ``serve`` in a nursery (``await nursery.start(proxy.serve)``)."""

    def __init__(self, target_port: int, *, mode: str = PASS) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.target_port = target_port
        self.port = 0
        self.mode = mode
        self.connections_seen = 0
        self._relays: set[_Relay] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        self.mode = SILENT
        for relay in self._relays:
            relay.black_holed = True

    def heal(self) -> None:
        self.mode = PASS

    def reset(self) -> None:
        for relay in list(self._relays):
            for stream in relay.streams:
                _rst(stream)
            relay.scope.cancel()

    async def serve(
        self, *, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._handle, listeners, task_status=task_status)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections_seen += 1
        mode = self.mode
        if mode == RESET:
            _rst(client)
            await client.aclose()
            return
        if mode == SILENT:
            async with client:
                await _drain(client)
            return
        try:
            with trio.fail_after(2):
                server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except (OSError, trio.TooSlowError):
            # The target is down: the client sees its connection reset, as a router says.
            _rst(client)
            await client.aclose()
            return
        relay = _Relay((client, server))
        self._relays.add(relay)
        try:
            with relay.scope:
                async with client, server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, server, relay)
                    nursery.start_soon(self._pump, server, client, relay)
        finally:
            self._relays.discard(relay)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, relay: _Relay
    ) -> None:
        try:
            while True:
                data = await source.receive_some(65536)
                if relay.black_holed:
                    # Keep reading and dropping; an end of input is not passed on either,
                    # but once the client gives up, the relay goes (closing the server side).
                    if not data:
                        if source is relay.streams[0]:
                            relay.scope.cancel()
                        await trio.sleep_forever()
                    continue
                if not data:
                    await sink.send_eof()
                    return
                await sink.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            # One side reset: end the relay, closing the other side too, as a router would.
            relay.scope.cancel()


async def _drain(stream: trio.SocketStream) -> None:
    """Read and drop until the peer goes away; never write, never close first."""
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@contextmanager
def unanswered_port() -> Iterator[str]:
    """A loopback address whose TCP connects time out (SYNs dropped, no RST): a listener that
    never accepts, its accept queue filled up first. Linux drops SYNs to a full queue."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):  # the queue holds backlog + 1; a few more in case
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect(address)
            except BlockingIOError:
                pass
        yield f"{address[0]}:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
