"""Hostile servers against the trio layer (issue 14): after a protocol error the GOAWAY is
sent, within a bound even to a server that reads nothing; acknowledgements owed while a write
is stuck are capped; a read that is costly to process leaves other tasks their turns, and the
client's other connections keep working. Time is trio's MockClock where it matters; work is
counted, never timed. The sans-IO bounds are in test_grpc_hostile.py."""

from __future__ import annotations

import math
from functools import partial

import pytest
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue
from grpc_support import (
    METHOD,
    OK_BLOCK,
    MemoryChannel,
    ScriptedServer,
    ServerPeer,
    connected,
    hp_str,
    raw,
    read_frames,
    request,
)
from hyperframe.frame import GoAwayFrame, HeadersFrame

from puregrpc_etcd.grpc import Channel, RpcError, StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.http2 import HeaderDecoder, Headers
from puregrpc_etcd.grpc.inbound import (
    FIELDS_PER_PASS,
    MAX_CONTINUATIONS,
    MAX_HEADER_LIST_SIZE,
    MAX_PENDING_ACKS,
)

HEADERS, PING, CONTINUATION = 0x1, 0x6, 0x9
END_HEADERS = 0x4
PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x1, 0xB
# A header block a server may legally send again and again: an informational response (1xx,
# skipped) with a thousand one-byte fields, each costing a full HPACK decode step.
COSTLY_BLOCK = b"\x08" + hp_str(b"100") + b"\x81" * 1000
COSTLY_FIELDS = 1001


async def test_the_goaway_after_a_protocol_error_reaches_the_server() -> None:
    """Over a real loopback socket: the server breaks the protocol, the call fails with a
    typed error and the server reads our GOAWAY (PROTOCOL_ERROR) before the socket closes."""
    peer = ServerPeer()
    done = trio.Event()

    async def hostile(stream: trio.SocketStream) -> None:
        await stream.send_all(peer.settings())
        await read_frames(stream, peer, HeadersFrame)
        await stream.send_all(
            peer.settings_ack() + raw(HEADERS, 0, 1, OK_BLOCK[:1]) + peer.rst(1, 0)
        )
        with trio.move_on_after(10):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                peer.parse(data)
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, hostile, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with Channel([f"127.0.0.1:{port}"]) as channel:
            with pytest.raises(RpcError) as caught:
                await channel.unary_unary(METHOD, request(), BytesValue, timeout=10)
        with trio.fail_after(10):
            await done.wait()
        nursery.cancel_scope.cancel()
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "header block interrupted" in caught.value.details
    goaways = peer.of_type(GoAwayFrame)
    assert [frame.error_code for frame in goaways] == [PROTOCOL_ERROR]


async def test_the_goaway_waits_a_bounded_time_for_a_server_that_reads_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.lockstep_stream_pair()
    peer = ServerPeer()
    connection, protocol = await connected(client_end, server_end, peer)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await server_end.send_all(raw(0x4, 0x1, 0, b"x"))  # a SETTINGS ack with a payload
        # ... and never read again: our GOAWAY cannot leave, but the connection still ends.
    assert connection.closed
    assert protocol.goaway_error == 0x6  # FRAME_SIZE_ERROR
    assert trio.current_time() - started <= 1.0 + 0.1


async def test_acks_owed_while_a_write_is_stuck_are_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request stuck in its write (the server reads nothing) while the server sends PINGs:
    without a cap the acks would pile up until the write times out (20 s)."""
    client_end, server_end = trio.testing.lockstep_stream_pair()
    peer = ServerPeer()
    connection, protocol = await connected(client_end, server_end, peer)
    call = CallState(1 << 20)
    outcome: list[object] = []

    async def send_request() -> None:
        await connection.start_call(call, "/pkg.Svc/Do", math.inf, b"")
        await connection.send(call, encode_message(b"r" * 60000), end_stream=True)
        outcome.append(call.code)

    async def flood_pings() -> None:
        # Read the call's HEADERS, then nothing more (its DATA stays in the middle of a
        # write); PINGs go out until the client stops reading them.
        await read_frames(server_end, peer, HeadersFrame, chunk=64)
        for n in range(20 * MAX_PENDING_ACKS):
            try:
                await server_end.send_all(raw(PING, 0, 0, n.to_bytes(8, "big")))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        nursery.start_soon(send_request)
        nursery.start_soon(flood_pings)
    assert protocol.failure is not None
    assert protocol.failure.code is StatusCode.UNAVAILABLE
    assert f"more than {MAX_PENDING_ACKS} PING or SETTINGS" in protocol.failure.details
    assert call.code is StatusCode.UNAVAILABLE
    assert outcome == [StatusCode.UNAVAILABLE]


class CountingDecoder(HeaderDecoder):
    """Counts the header fields decoded, for the ticker to compare."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        super().__init__(MAX_HEADER_LIST_SIZE)
        self.fields = 0

    def decode(self, block: bytes) -> Headers:
        headers = super().decode(block)
        self.fields += len(headers)
        return headers


async def test_a_costly_flood_leaves_other_tasks_and_connections_working() -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    peer = ServerPeer()
    connection, protocol = await connected(client_end, server_end, peer)
    decoder = CountingDecoder()
    protocol._decoder = decoder
    blocks = 200
    # Legal but costly (200,000 fields to decode, half a second or more), then a header block
    # that never ends: the connection must fail, the reads be processed in passes.
    flood = raw(HEADERS, END_HEADERS, 1, COSTLY_BLOCK) * blocks + raw(HEADERS, 0, 1, b"")
    flood += raw(CONTINUATION, 0, 1, b"") * (2 * MAX_CONTINUATIONS)
    gaps: list[int] = []
    good_replies: list[bytes] = []
    bad_call = CallState(1 << 20)

    async def ticker() -> None:
        seen = decoder.fields
        while not connection.closed:
            await trio.lowlevel.checkpoint()
            gaps.append(decoder.fields - seen)
            seen = decoder.fields

    async def good_calls(channel: Channel) -> None:
        for n in range(20):
            reply = await channel.unary_unary(METHOD, request(b"%d" % n), BytesValue, timeout=30)
            good_replies.append(reply.value)

    with trio.fail_after(60):
        async with MemoryChannel(ScriptedServer()) as good, trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            assert connection.try_start_call(bad_call, "/pkg.Svc/Do", math.inf, b"")
            connection.kick()
            await read_frames(server_end, peer, HeadersFrame)
            nursery.start_soon(ticker)
            nursery.start_soon(good_calls, good)
            await server_end.send_all(flood)
    assert bad_call.code is StatusCode.UNAVAILABLE
    assert bad_call.details.endswith("CONTINUATION frames in a block")
    assert decoder.fields == blocks * COSTLY_FIELDS
    # Between two turns of the ticker, at most two passes (one per trio batch on each side).
    assert max(gaps) <= 2 * (FIELDS_PER_PASS + COSTLY_FIELDS)
    assert good_replies == [b"%d" % n for n in range(20)]
