"""Channel, connection and calls under trio against a scripted in-memory HTTP/2 server
(hyperframe/hpack frames through trio memory streams; no sockets; MockClock for time)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue
from grpc_support import (
    CANCEL,
    METHOD,
    OK_HEADERS,
    MemoryChannel,
    ScriptedServer,
    request,
)
from hyperframe.frame import (
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
)

from puregrpc_etcd.grpc import RpcError, StatusCode
from puregrpc_etcd.grpc.framing import MessageDecoder, encode_message


async def test_unary_round_trip_and_request_headers() -> None:
    server = ScriptedServer()
    async with MemoryChannel(server, user_agent="ua/9") as channel:
        reply = await channel.unary_unary(
            METHOD, request(b"hi"), BytesValue, metadata=[("k", "v"), ("b-bin", b"\x00")]
        )
        assert reply.value == b"hi"
        assert channel.current_endpoint == "10.0.0.1:1"
    headers = server.requests[1]
    assert headers[":path"] == METHOD
    assert headers[":authority"] == "10.0.0.1:1"
    assert headers["user-agent"] == "ua/9"
    assert (headers["k"], headers["b-bin"]) == ("v", "AA")
    assert "grpc-timeout" not in headers


async def test_many_concurrent_calls_wait_for_stream_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer(max_concurrent_streams=3)
    server.reply_delay = 1.0
    results: list[bytes] = []

    async def one(n: int) -> None:
        reply = await channel.unary_unary(METHOD, request(b"%d" % n), BytesValue)
        results.append(reply.value)

    async with MemoryChannel(server) as channel, trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(one, n)
    assert sorted(results) == sorted(b"%d" % n for n in range(20))
    assert server.most_open == 3


async def wait_until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(5):
        for _attempt in range(10_000):
            if condition():
                return
            await trio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_trio_cancellation_resets_only_that_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()
    server.reply_delay = 100.0
    async with MemoryChannel(server) as channel:
        with trio.move_on_after(3) as scope:
            await channel.unary_unary(METHOD, request(), BytesValue)
        assert scope.cancelled_caught
        await wait_until(lambda: 1 in server.resets)
        assert server.resets[1] == CANCEL
        # The deadline of the cancel scope travelled as grpc-timeout.
        assert server.requests[1]["grpc-timeout"] == "3000000u"
        server.reply_delay = 0
        assert (await channel.unary_unary(METHOD, request(b"again"), BytesValue)).value == b"again"
        assert channel.opened == ["10.0.0.1:1"]


async def test_explicit_timeout_is_deadline_exceeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue, timeout=5)
        assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
        assert server.requests[1]["grpc-timeout"] == "5000000u"
        await wait_until(lambda: server.resets.get(1) == CANCEL)


async def test_server_cancel_after_our_deadline_reads_as_deadline_exceeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()
    server.echo = False
    channel = MemoryChannel(server)
    async with channel, channel.stream(METHOD, BytesValue, timeout=2) as stream:
        await trio.sleep(2.5)
        await server.send(server.peer.rst(1, CANCEL))
        with pytest.raises(RpcError) as caught:
            await stream.receive_message()
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED


async def test_keepalive_detects_a_silent_peer(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel:
        async with channel.stream(METHOD, BytesValue) as stream:
            # While pings are answered, an idle call lives on.
            with trio.move_on_after(60):
                await stream.receive_message()
            assert stream.status is None
            server.answer_pings = False
            start = trio.current_time()
            with pytest.raises(RpcError) as caught:
                await stream.receive_message()
        assert caught.value.code is StatusCode.UNAVAILABLE
        assert "keepalive" in caught.value.details
        assert trio.current_time() - start <= 15 + 1e-6


async def test_no_pings_without_calls(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer()
    async with MemoryChannel(server, keepalive_interval=10, keepalive_timeout=5) as channel:
        await channel.unary_unary(METHOD, request(), BytesValue)
        await trio.sleep(100)
        assert server.peer.of_type(PingFrame) == []


async def test_too_many_pings_doubles_the_interval(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer()
    async with MemoryChannel(server, keepalive_interval=10) as channel:
        await channel.unary_unary(METHOD, request(), BytesValue)
        await server.send(server.peer.goaway(1, 0xB, b"too_many_pings"))
        await wait_until(lambda: channel.current_endpoint is None)
        assert channel._keepalive is not None
        assert channel._keepalive.interval == 20


async def test_large_request_waits_for_window_updates() -> None:
    server = ScriptedServer(initial_window_size=1000)

    async def credit(server: ScriptedServer, frame: Frame) -> None:
        if isinstance(frame, DataFrame) and frame.data:
            size = len(frame.data)
            await server.send(
                server.peer.window_update(0, size)
                + server.peer.window_update(frame.stream_id, size)
            )

    server.on_frame = credit
    body = bytes(range(256)) * 20
    async with MemoryChannel(server) as channel:
        with trio.fail_after(5):
            reply = await channel.unary_unary(METHOD, request(body), BytesValue)
    assert reply.value == body
    sizes = [len(frame.data) for frame in server.peer.of_type(DataFrame, 1)]
    assert max(sizes) <= 1000
    assert len(sizes) > 5


async def test_server_stream_larger_than_the_windows_flows() -> None:
    server = ScriptedServer()
    server.echo = False
    messages = [bytes([n]) * 100_000 for n in range(100)]  # ~10 MB, > the 4 MiB stream window
    wire = b"".join(encode_message(request(m).SerializeToString()) for m in messages)
    async with MemoryChannel(server) as channel:
        async with channel.stream(METHOD, BytesValue) as stream:
            await stream.done_writing()
            await wait_until(lambda: 1 in server.requests)
            await server.send(server.peer.headers(1, OK_HEADERS))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.stream_out, 1, wire)
                received = [reply.value async for reply in _take(stream, len(messages))]
            await server.send(server.peer.trailers(1, extra=[("done", "yes")]))
            assert await stream.receive_message() is None
        assert received == messages
        assert stream.status is StatusCode.OK
        assert stream.trailing_metadata == (("done", "yes"),)


async def _take(stream: Any, count: int) -> Any:
    with trio.fail_after(60):
        for _ in range(count):
            yield await stream.receive_message()


async def test_bidirectional_stream_with_metadata() -> None:
    server = ScriptedServer()
    server.echo = False

    async def echo_each(server: ScriptedServer, frame: Frame) -> None:
        if isinstance(frame, HeadersFrame):
            await server.send(server.peer.headers(frame.stream_id, [*OK_HEADERS, ("hi", "1")]))
        elif isinstance(frame, DataFrame) and frame.data:
            await server.send(server.peer.data(frame.stream_id, frame.data))
        if "END_STREAM" in frame.flags:
            await server.send(server.peer.trailers(frame.stream_id, extra=[("bye-bin", "AQ")]))

    server.on_frame = echo_each
    async with MemoryChannel(server) as channel, channel.stream(METHOD, BytesValue) as stream:
        assert await stream.receive_initial_metadata() == (("hi", "1"),)
        for n in range(3):
            await stream.send_message(request(b"%d" % n))
            reply = await stream.receive_message()
            assert reply is not None
            assert reply.value == b"%d" % n
        await stream.done_writing()
        assert [reply async for reply in stream] == []
    assert stream.status is StatusCode.OK
    assert stream.initial_metadata == (("hi", "1"),)
    assert stream.trailing_metadata == (("bye-bin", b"\x01"),)


async def test_stream_error_status_is_raised_at_the_end() -> None:
    server = ScriptedServer()
    server.echo = False

    async def fail(server: ScriptedServer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            sid = frame.stream_id
            await server.send(
                server.peer.headers(sid, OK_HEADERS)
                + server.peer.data(sid, encode_message(b""))
                + server.peer.trailers(sid, 9, "not%20now")
            )

    server.on_frame = fail
    async with MemoryChannel(server) as channel, channel.stream(METHOD, BytesValue) as stream:
        await stream.done_writing()
        assert await stream.receive_message() == BytesValue()
        with pytest.raises(RpcError) as caught:
            await stream.receive_message()
    assert caught.value.code is StatusCode.FAILED_PRECONDITION
    assert caught.value.details == "not now"
    assert stream.status is StatusCode.FAILED_PRECONDITION


async def test_leaving_a_stream_early_cancels_it() -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server) as channel:
        async with channel.stream(METHOD, BytesValue) as stream:
            await stream.send_message(request())
        assert stream.status is StatusCode.CANCELLED
        await wait_until(lambda: server.resets.get(1) == CANCEL)


async def test_goaway_sends_new_calls_to_a_new_connection() -> None:
    first, second = ScriptedServer(), ScriptedServer()
    async with MemoryChannel(first, second) as channel:
        await channel.unary_unary(METHOD, request(), BytesValue)
        await first.send(first.peer.goaway(1))
        await wait_until(lambda: channel.current_endpoint is None)
        assert (await channel.unary_unary(METHOD, request(b"x"), BytesValue)).value == b"x"
        assert channel.opened == ["10.0.0.1:1", "10.0.0.2:1"]


async def test_goaway_fails_unaccepted_calls_as_not_processed() -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server) as channel, channel.stream(METHOD, BytesValue) as stream:
        await wait_until(lambda: 1 in server.requests)
        await server.send(server.peer.goaway(0))
        with pytest.raises(RpcError) as caught:
            await stream.receive_message()
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert caught.value.not_processed


async def test_connection_loss_fails_calls_and_the_next_call_reconnects() -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server) as channel:
        async with channel.stream(METHOD, BytesValue) as stream:
            await wait_until(lambda: 1 in server.requests)
            assert server._stream is not None
            await server._stream.aclose()
            with pytest.raises(RpcError) as caught:
                await stream.receive_message()
        assert caught.value.code is StatusCode.UNAVAILABLE
        assert not caught.value.not_processed
        server.echo = True
        assert (await channel.unary_unary(METHOD, request(b"back"), BytesValue)).value == b"back"
        assert server.connections == 2


async def test_failover_rotate_and_set_endpoints() -> None:
    servers = [ScriptedServer() for _ in range(3)]
    async with MemoryChannel(*servers) as channel:
        channel.down.add("10.0.0.1:1")
        await channel.unary_unary(METHOD, request(), BytesValue)
        assert channel.current_endpoint == "10.0.0.2:1"
        await channel.rotate()
        assert channel.current_endpoint is None
        await channel.unary_unary(METHOD, request(), BytesValue)
        assert channel.current_endpoint == "10.0.0.3:1"
        channel.set_endpoints(["10.0.0.3:1", "10.0.0.2:1"])
        assert channel.current_endpoint == "10.0.0.3:1"
        channel.set_endpoints(["10.0.0.2:1"])
        assert channel.current_endpoint is None
        await channel.unary_unary(METHOD, request(), BytesValue)
        assert channel.endpoints == ["10.0.0.2:1"]
        assert channel.current_endpoint == "10.0.0.2:1"


class SlowToRefuse(MemoryChannel):
    """Endpoints in ``slow`` take a second to refuse a connection."""

    def __init__(self, *servers: ScriptedServer, **options: Any) -> None:
        super().__init__(*servers, **options)
        self.slow: set[str] = set()

    async def open_memory_stream(self, host: str, port: int) -> trio.abc.Stream:
        if f"{host}:{port}" in self.slow:
            await trio.sleep(1)
            raise OSError(f"connection refused by {host}:{port}")
        return await super().open_memory_stream(host, port)


@pytest.mark.parametrize(
    ("new_list", "connected_to"),
    [
        (["10.0.0.2:1"], "10.0.0.2:1"),  # the endpoint the round reaches is listed
        (["10.0.0.3:1"], "10.0.0.3:1"),  # it is not: the call moves to a listed one
    ],
)
async def test_endpoints_replaced_during_a_connect_round(
    autojump_clock: trio.testing.MockClock, new_list: list[str], connected_to: str
) -> None:
    """``set_endpoints`` (auto-sync) with a shorter list while a round walks the old one: the
    round finishes on the list it began with, and the call ends on an endpoint of the new
    list (the round used to index the new list and fail the whole channel with IndexError)."""
    servers = [ScriptedServer() for _ in range(3)]
    async with SlowToRefuse(*servers, connect_timeout=5) as channel:
        channel.slow.add("10.0.0.1:1")
        reply: list[BytesValue] = []

        async def call() -> None:
            reply.append(await channel.unary_unary(METHOD, request(), BytesValue))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.sleep(0.5)  # the round waits on 10.0.0.1
            channel.set_endpoints(new_list)
        assert reply == [request()]
        assert channel.endpoints == new_list
        assert channel.current_endpoint == connected_to


async def test_every_endpoint_down_is_unavailable_not_processed_then_backs_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    servers = [ScriptedServer(), ScriptedServer()]
    async with MemoryChannel(*servers, backoff=(1.0, 8.0)) as channel:
        channel.down.update({"10.0.0.1:1", "10.0.0.2:1"})
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
        assert caught.value.code is StatusCode.UNAVAILABLE
        assert caught.value.not_processed
        assert "10.0.0.1:1" in caught.value.details
        assert "refused" in caught.value.details
        channel.down.clear()
        start = trio.current_time()
        await channel.unary_unary(METHOD, request(), BytesValue)
        assert 0.5 <= trio.current_time() - start <= 1.0


async def test_connect_timeout_when_the_server_never_speaks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()

    async def mute(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        await trio.sleep_forever()

    server.serve = mute  # type: ignore[method-assign]
    async with MemoryChannel(server, connect_timeout=2) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
    # The message says which step the server never finished: it took the TCP connection.
    assert "connection accepted but the server sent no HTTP/2 settings within 2 s" in (
        caught.value.details
    )


async def test_oversized_request_fails_before_any_io() -> None:
    server = ScriptedServer()
    async with MemoryChannel(server, max_send_message_size=10) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(b"x" * 20), BytesValue)
    assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert channel.opened == []


async def test_unary_cardinality_violation_is_unimplemented() -> None:
    server = ScriptedServer()
    server.echo = False

    async def two(server: ScriptedServer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            await server.send(server.peer.reply(frame.stream_id, b"", b""))

    server.on_frame = two
    async with MemoryChannel(server) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
    assert caught.value.code is StatusCode.UNIMPLEMENTED


async def test_unparsable_reply_is_internal() -> None:
    server = ScriptedServer()
    server.echo = False

    async def garbage(server: ScriptedServer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            await server.send(server.peer.reply(frame.stream_id, b"\xff\xff\xff"))

    server.on_frame = garbage
    async with MemoryChannel(server) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue)
    assert caught.value.code is StatusCode.INTERNAL


async def test_a_cancelled_receive_loses_no_message(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer()
    server.echo = False
    async with MemoryChannel(server) as channel, channel.stream(METHOD, BytesValue) as stream:
        await wait_until(lambda: 1 in server.requests)
        with trio.move_on_after(1) as scope:
            await stream.receive_message()
        assert scope.cancelled_caught
        kept = encode_message(request(b"kept").SerializeToString())
        await server.send(server.peer.headers(1, OK_HEADERS) + server.peer.data(1, kept))
        await wait_until(lambda: bool(stream._call.messages))
        with trio.CancelScope() as cancelled:
            cancelled.cancel()
            await stream.receive_message()
        reply = await stream.receive_message()
        assert reply is not None
        assert reply.value == b"kept"
        assert stream.status is None


async def test_channel_in_the_callers_nursery() -> None:
    server = ScriptedServer()
    async with trio.open_nursery() as nursery:
        channel = MemoryChannel(server)
        with pytest.raises(RpcError, match="not open"):
            await channel.unary_unary(METHOD, request(), BytesValue)
        await nursery.start(channel._serve)
        assert (await channel.unary_unary(METHOD, request(b"n"), BytesValue)).value == b"n"
        await channel.aclose()
        with pytest.raises(RpcError, match="closed"):
            await channel.unary_unary(METHOD, request(), BytesValue)


async def test_an_expired_deadline_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer()
    async with MemoryChannel(server) as channel:
        await channel.unary_unary(METHOD, request(), BytesValue)
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(), BytesValue, timeout=0)
        assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
        with trio.CancelScope(deadline=trio.current_time()) as scope:
            await channel.unary_unary(METHOD, request(), BytesValue)
        assert scope.cancelled_caught
        await channel.unary_unary(METHOD, request(), BytesValue)
    assert sorted(server.requests) == [1, 3]


@pytest.mark.parametrize(("refusals", "succeeds"), [(1, True), (8, True), (9, False)])
async def test_refused_unary_calls_are_retried_transparently(
    refusals: int, succeeds: bool, autojump_clock: trio.testing.MockClock
) -> None:
    server = ScriptedServer()
    server.echo = False

    async def refuse_then_echo(server: ScriptedServer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            if len(server.requests) <= refusals:
                await server.send(server.peer.rst(frame.stream_id, 0x7))
            else:
                messages = MessageDecoder(1 << 20).feed(frame.data)
                await server.send(server.peer.reply(frame.stream_id, *messages))

    server.on_frame = refuse_then_echo
    async with MemoryChannel(server) as channel:
        if succeeds:
            assert (await channel.unary_unary(METHOD, request(b"r"), BytesValue)).value == b"r"
        else:
            with pytest.raises(RpcError) as caught:
                await channel.unary_unary(METHOD, request(b"r"), BytesValue)
            assert caught.value.code is StatusCode.UNAVAILABLE
            assert caught.value.not_processed
    assert len(server.requests) == min(refusals + 1, 9)


async def test_refused_retries_stop_at_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """Pauses between transparent retries never outlast the call's deadline."""
    server = ScriptedServer()
    server.echo = False

    async def refuse(server: ScriptedServer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            await server.send(server.peer.rst(frame.stream_id, 0x7))

    server.on_frame = refuse
    async with MemoryChannel(server) as channel:
        start = trio.current_time()
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(METHOD, request(b"r"), BytesValue, timeout=0.01)
        assert caught.value.code in (StatusCode.DEADLINE_EXCEEDED, StatusCode.UNAVAILABLE)
        assert trio.current_time() - start <= 0.01 + 1e-9
