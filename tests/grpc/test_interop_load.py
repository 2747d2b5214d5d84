"""Beyond the interop cases: large and slow streams, many concurrent calls on one connection,
the server's stream limit, and message and metadata size limits, against grpcio's server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from _pb import interop_pb2 as pb
from interop_support import (
    InteropServer,
    assert_channel_works,
    method,
    output_request,
    send_then_receive,
    stream_output,
)

from puregrpc_etcd import grpc as pg

KiB = 1024
MiB = 1024 * KiB


async def test_fifty_mebibytes_streamed_intact(channel: pg.Channel) -> None:
    sizes = [64 * KiB] * 800
    with trio.fail_after(60):
        received, digest, server_digest = await stream_output(channel, sizes)
    assert sum(received) == 50 * MiB
    assert received == sizes
    assert digest == server_digest


async def test_slow_reader_completes(channel: pg.Channel) -> None:
    # 8 MiB is more than any receive window, so the server must wait for the reader's credit.
    sizes = [64 * KiB] * 128
    with trio.fail_after(30):
        received, digest, server_digest = await stream_output(channel, sizes, pause_every=32)
    assert received == sizes
    assert digest == server_digest


async def test_slow_stream_does_not_stall_others(channel: pg.Channel) -> None:
    """A stream nobody reads fills its own window only; other calls go on meanwhile."""
    with trio.fail_after(30):
        async with channel.stream(
            method("StreamingOutputCall"), pb.StreamingOutputCallResponse
        ) as stalled:
            await stalled.send_message(output_request(*[64 * KiB] * 128))
            await stalled.done_writing()
            first = await stalled.receive_message()
            assert first is not None
            for _call in range(20):
                reply = await channel.unary_unary(
                    method("UnaryCall"),
                    pb.SimpleRequest(response_size=256 * KiB),
                    pb.SimpleResponse,
                )
                assert len(reply.payload.body) == 256 * KiB
            rest = [reply async for reply in stalled]
    assert len(rest) == 127


async def test_thousand_concurrent_unary_calls_share_one_connection(
    channel: pg.Channel,
) -> None:
    calls = 1000
    peers: list[str] = []

    async def one_call(index: int) -> None:
        request = pb.SimpleRequest(response_size=index % 100, payload=pb.Payload(body=b"x" * index))
        reply = await channel.unary_unary(method("UnaryCall"), request, pb.SimpleResponse)
        assert reply.request_payload_size == index
        assert len(reply.payload.body) == index % 100
        peers.append(reply.peer)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for index in range(calls):
                nursery.start_soon(one_call, index)
    assert len(peers) == calls
    # The server names each call's TCP peer: one peer, one connection.
    assert len(set(peers)) == 1


async def test_calls_wait_for_a_stream_slot(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    server = start_interop_server("--max-concurrent-streams", "2")
    calls = 20
    peers: list[str] = []

    async def one_call() -> None:
        reply = await channel.unary_unary(
            method("UnaryCall"), pb.SimpleRequest(sleep_ms=50), pb.SimpleResponse
        )
        peers.append(reply.peer)

    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            # All at once on a new connection: none may go out before the server's SETTINGS
            # (with the limit) are known, or grpcio refuses the streams beyond it.
            async with trio.open_nursery() as nursery:
                for _call in range(calls):
                    nursery.start_soon(one_call)
            async with trio.open_nursery() as nursery:
                # Streams hold their slots until they end, and unary calls still queue behind.
                for _call in range(4):
                    nursery.start_soon(one_call)
                async with channel.stream(
                    method("FullDuplexCall"), pb.StreamingOutputCallResponse
                ) as stream:
                    await stream.send_message(output_request(1))
                    assert await stream.receive_message() is not None
                    await stream.done_writing()
                    assert await stream.receive_message() is None
    assert len(peers) == calls + 4
    assert len(set(peers)) == 1


async def test_refused_streams_are_retried_transparently(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    """grpcio's server counts a finished stream as open a moment too long and now and then
    refuses (REFUSED_STREAM) a new one from a client that kept within its limit. The server
    never saw such a call, so gRPC retries it transparently (gRFC A6): none may fail. Many
    short calls through two slots make the refusal likely (not certain) to happen here."""
    server = start_interop_server("--max-concurrent-streams", "2")
    calls = 1000
    succeeded = 0

    async def one_call() -> None:
        nonlocal succeeded
        await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty)
        succeeded += 1

    with trio.fail_after(60):
        async with pg.Channel([server.address]) as channel:
            await assert_channel_works(channel)
            async with trio.open_nursery() as nursery:
                for _call in range(calls):
                    nursery.start_soon(one_call)
    assert succeeded == calls


async def test_receive_limit_fails_only_that_call(interop_server: InteropServer) -> None:
    limit = 64 * KiB
    with trio.fail_after(20):
        async with pg.Channel([interop_server.address], max_receive_message_size=limit) as channel:
            with pytest.raises(pg.RpcError) as caught:
                await channel.unary_unary(
                    method("UnaryCall"),
                    pb.SimpleRequest(response_size=2 * limit),
                    pb.SimpleResponse,
                )
            assert caught.value.code == pg.StatusCode.RESOURCE_EXHAUSTED
            reply = await channel.unary_unary(
                method("UnaryCall"),
                pb.SimpleRequest(response_size=limit // 2),
                pb.SimpleResponse,
            )
            assert len(reply.payload.body) == limit // 2

            # In a stream: the messages under the limit arrive, the big one ends the call.
            async with channel.stream(
                method("FullDuplexCall"), pb.StreamingOutputCallResponse
            ) as stream:
                first = await send_then_receive(stream, output_request(100))
                assert first is not None
                assert len(first.payload.body) == 100
                with pytest.raises(pg.RpcError) as caught:
                    await send_then_receive(stream, output_request(2 * limit))
            assert caught.value.code == pg.StatusCode.RESOURCE_EXHAUSTED
            await assert_channel_works(channel)


async def test_send_limit_fails_only_that_call(interop_server: InteropServer) -> None:
    limit = 64 * KiB
    with trio.fail_after(20):
        async with pg.Channel([interop_server.address], max_send_message_size=limit) as channel:
            too_big = pb.SimpleRequest(payload=pb.Payload(body=bytes(2 * limit)))
            with pytest.raises(pg.RpcError) as caught:
                await channel.unary_unary(method("UnaryCall"), too_big, pb.SimpleResponse)
            assert caught.value.code == pg.StatusCode.RESOURCE_EXHAUSTED
            fits = pb.SimpleRequest(payload=pb.Payload(body=bytes(limit // 2)))
            reply = await channel.unary_unary(method("UnaryCall"), fits, pb.SimpleResponse)
            assert reply.request_payload_size == limit // 2


async def test_server_receive_limit_fails_only_that_call(channel: pg.Channel) -> None:
    # grpcio's server accepts 4 MiB by default (interop_server.py keeps that default).
    too_big = pb.SimpleRequest(payload=pb.Payload(body=bytes(4 * MiB + 1)))
    with trio.fail_after(20):
        with pytest.raises(pg.RpcError) as caught:
            await channel.unary_unary(method("UnaryCall"), too_big, pb.SimpleResponse)
        assert caught.value.code == pg.StatusCode.RESOURCE_EXHAUSTED
        await assert_channel_works(channel)


async def test_metadata_too_large_fails_only_that_call(channel: pg.Channel) -> None:
    # grpcio's server rejects request metadata beyond its (default 8 KiB soft, 16 KiB hard) limit.
    with trio.fail_after(20):
        with pytest.raises(pg.RpcError) as caught:
            await channel.unary_unary(
                method("EmptyCall"), pb.Empty(), pb.Empty, metadata=[("x-big", "a" * 40_000)]
            )
        assert caught.value.code == pg.StatusCode.RESOURCE_EXHAUSTED
        await assert_channel_works(channel)
