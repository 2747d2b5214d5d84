"""How a connection finds a silent peer: pings when a call waits on it (sooner than the idle
interval), never closer than the ping policy allows, never without calls (scripted in-memory
server, MockClock: every time below is virtual, so the bounds are exact)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue
from grpc_support import METHOD, MemoryChannel, ScriptedServer, request
from hyperframe.frame import Frame, HeadersFrame, PingFrame

from puregrpc_etcd.grpc import RpcError, StatusCode, Stream
from puregrpc_etcd.grpc.liveness import MIN_PING_INTERVAL, KeepalivePolicy


def mute_server() -> ScriptedServer:
    """A server that answers PINGs and nothing else (until a test sends replies itself)."""
    server = ScriptedServer()
    server.echo = False
    return server


def record_pings(server: ScriptedServer) -> list[float]:
    """The times at which the server receives our PINGs (acks excluded)."""
    times: list[float] = []

    async def on_frame(server: ScriptedServer, frame: Frame) -> None:
        if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            times.append(trio.current_time())

    server.on_frame = on_frame
    return times


async def found_dead(stream: Stream[BytesValue], policy: KeepalivePolicy) -> None:
    """The stream's next receive fails as the connection's silent peer is found, in time."""
    start = trio.current_time()
    with pytest.raises(RpcError) as caught:
        await stream.receive_message()
    assert trio.current_time() - start <= policy.worst_case()
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "keepalive ping unanswered" in caught.value.details


async def test_a_waiting_call_finds_a_silent_peer_before_the_idle_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = mute_server()
    server.answer_pings = False
    policy = KeepalivePolicy(10, 5)
    async with MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel:
        start = trio.current_time()
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
        waited = trio.current_time() - start
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "keepalive ping unanswered within 5 s" in caught.value.details
    assert "no reply from 10.0.0.1:1" in caught.value.details
    # Not after the idle interval (10 s) plus the timeout: a ping went out once the call had
    # waited one to two stall periods.
    assert waited <= policy.worst_case() < 10 + 5


async def test_a_slow_peer_that_answers_pings_keeps_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()
    server.reply_delay = 40
    pings = record_pings(server)
    async with MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel:
        reply = await channel.unary_unary(METHOD, request(b"slow"), BytesValue)
    assert reply.value == b"slow"
    # Probed while it waited, at most once per MIN_PING_INTERVAL (etcd's policy: 5 s).
    assert len(pings) >= 40 // 10
    gaps = [later - earlier for earlier, later in zip(pings, pings[1:])]
    assert min(gaps) >= MIN_PING_INTERVAL


async def test_a_call_still_waits_after_other_replies_came_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Call A has sent everything; the peer then answers call B and falls silent. Bytes that
    # arrived after A was sent must not count as A's answer: A is still owed a reply.
    server = mute_server()
    async with (
        MemoryChannel(server, keepalive_interval=100, keepalive_timeout=5) as channel,
        channel.stream(METHOD, BytesValue) as waiting,
        channel.stream(METHOD, BytesValue) as answered,
    ):
        await waiting.send_message(request(b"a"))
        await waiting.done_writing()
        await answered.send_message(request(b"b"))
        await answered.done_writing()
        await trio.sleep(0.5)
        server.answer_pings = False
        await server.send(server.peer.reply(3, request(b"b").SerializeToString()))
        assert await answered.receive_message() == request(b"b")
        await found_dead(waiting, KeepalivePolicy(100, 5))


async def test_an_unanswered_request_on_an_open_stream_is_probed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A lease keepalive stream: requests go out on a stream that stays open; when the peer
    # stops answering them, the connection is probed without waiting for the idle interval.
    server = mute_server()
    async with (
        MemoryChannel(server, keepalive_interval=100, keepalive_timeout=5) as channel,
        channel.stream(METHOD, BytesValue) as stream,
    ):
        await trio.sleep(30)
        assert stream.status is None
        server.answer_pings = False
        await stream.send_message(request(b"renew"))
        await found_dead(stream, KeepalivePolicy(100, 5))


async def test_an_idle_stream_is_pinged_only_at_the_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An idle watch owes us nothing: it is pinged every `interval` of silence, not sooner.
    server = mute_server()
    pings = record_pings(server)
    async with (
        MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel,
        channel.stream(METHOD, BytesValue),
    ):
        opened = trio.current_time()
        await trio.sleep(35)
    gaps = [later - earlier for earlier, later in zip([opened, *pings], pings)]
    assert len(pings) == 3
    assert all(10 <= gap < 10 + 1 + 1e-6 for gap in gaps)


async def test_too_many_pings_also_doubles_the_spacing_of_probes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = KeepalivePolicy(10, 5)
    policy.calmed_down()
    assert (policy.interval, policy.min_ping_interval) == (20, 2 * MIN_PING_INTERVAL)


async def test_a_peer_trickling_bytes_that_never_make_a_frame_is_found(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A byte a second keeps the socket busy but completes no frame: that is no sign of life
    # (else a call without a deadline, a watch, would wait on such a peer for ever).
    server = mute_server()
    server.answer_pings = False
    call_seen = trio.Event()

    async def on_frame(server: ScriptedServer, frame: Frame) -> None:
        if isinstance(frame, HeadersFrame):
            call_seen.set()

    async def trickle() -> None:
        await call_seen.wait()
        # A DATA frame header for 16 KiB on stream 1, then its payload a byte at a time.
        await server.send(b"\x00\x40\x00\x00\x00\x00\x00\x00\x01")
        for _ in range(120):
            await trio.sleep(1)
            await server.send(b"\x00")

    server.on_frame = on_frame
    policy = KeepalivePolicy(10, 5)
    async with (
        MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(trickle)
        start = trio.current_time()
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
        waited = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "keepalive ping unanswered" in caught.value.details
    assert waited <= policy.worst_case()
