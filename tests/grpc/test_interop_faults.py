"""Faults against grpcio's server: a server killed mid-call and restarted, a black-holed
connection found by keepalive pings, and a dead first endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from _pb import interop_pb2 as pb
from interop_support import (
    FaultProxy,
    InteropServer,
    assert_channel_works,
    method,
    output_request,
    unused_loopback_port,
)

from puregrpc_etcd import grpc as pg

KEEPALIVE_INTERVAL = 0.5
KEEPALIVE_TIMEOUT = 0.5
# Scheduling slack on a loaded two-core machine; detection itself needs interval + timeout.
KEEPALIVE_SLACK = 2.0


async def test_server_killed_mid_unary_call_then_restarted(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    server = start_interop_server()
    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            await assert_channel_works(channel)

            async def kill_soon() -> None:
                await trio.sleep(0.3)
                server.kill()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon)
                with pytest.raises(pg.RpcError) as caught:
                    await channel.unary_unary(
                        method("UnaryCall"), pb.SimpleRequest(sleep_ms=60_000), pb.SimpleResponse
                    )
            assert caught.value.code == pg.StatusCode.UNAVAILABLE

            server.start()
            await assert_channel_works(channel)


async def test_server_killed_mid_stream_then_restarted(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    server = start_interop_server()
    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            async with channel.stream(
                method("FullDuplexCall"), pb.StreamingOutputCallResponse
            ) as stream:
                await stream.send_message(output_request(1000))
                assert await stream.receive_message() is not None
                server.kill()
                with pytest.raises(pg.RpcError) as caught:
                    await stream.receive_message()
            assert caught.value.code == pg.StatusCode.UNAVAILABLE

            server.start()
            await assert_channel_works(channel)


async def test_black_holed_connection_found_by_keepalive(
    interop_server: InteropServer,
) -> None:
    proxy = FaultProxy(interop_server.port)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            async with pg.Channel(
                [proxy.address],
                keepalive_interval=KEEPALIVE_INTERVAL,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
            ) as channel:
                # Pings while the connection is healthy must not disturb a quiet call.
                with trio.move_on_after(3 * KEEPALIVE_INTERVAL):
                    await channel.unary_unary(
                        method("UnaryCall"), pb.SimpleRequest(sleep_ms=60_000), pb.SimpleResponse
                    )
                await assert_channel_works(channel)
                assert proxy.connections_seen == 1

                async with channel.stream(
                    method("FullDuplexCall"), pb.StreamingOutputCallResponse
                ) as stream:
                    await stream.send_message(output_request(10))
                    assert await stream.receive_message() is not None
                    proxy.blackhole()
                    proxy.heal()  # only the connection open now is cut
                    with trio.fail_after(KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT + KEEPALIVE_SLACK):
                        with pytest.raises(pg.RpcError) as caught:
                            await stream.receive_message()
                assert caught.value.code == pg.StatusCode.UNAVAILABLE

                # New connections through the proxy forward again: the channel reconnects.
                await assert_channel_works(channel)
                assert proxy.connections_seen == 2
            nursery.cancel_scope.cancel()


async def test_first_endpoint_dead_second_serves(interop_server: InteropServer) -> None:
    dead = f"127.0.0.1:{unused_loopback_port()}"
    with trio.fail_after(20):
        async with pg.Channel([dead, interop_server.address], connect_timeout=5.0) as channel:
            await assert_channel_works(channel)
            reply = await channel.unary_unary(
                method("UnaryCall"), pb.SimpleRequest(response_size=10), pb.SimpleResponse
            )
    assert len(reply.payload.body) == 10


async def test_all_endpoints_dead_is_unavailable() -> None:
    dead = [f"127.0.0.1:{unused_loopback_port()}" for _endpoint in range(2)]
    with trio.fail_after(20):
        async with pg.Channel(dead, connect_timeout=2.0) as channel:
            with pytest.raises(pg.RpcError) as caught:
                await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty, timeout=5.0)
    assert caught.value.code == pg.StatusCode.UNAVAILABLE


async def test_server_killed_during_upload(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    server = start_interop_server()
    chunk = pb.StreamingInputCallRequest(payload=pb.Payload(body=bytes(64 * 1024)))

    async def upload_until_it_fails(stream: pg.Stream[pb.StreamingInputCallResponse]) -> None:
        for _message in range(10_000):
            await stream.send_message(chunk)
        await stream.done_writing()
        await stream.receive_message()

    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            async with channel.stream(
                method("StreamingInputCall"), pb.StreamingInputCallResponse
            ) as stream:
                for _message in range(10):
                    await stream.send_message(chunk)
                server.kill()
                with pytest.raises(pg.RpcError) as caught:
                    await upload_until_it_fails(stream)
            assert caught.value.code == pg.StatusCode.UNAVAILABLE
            server.start()
            await assert_channel_works(channel)


async def test_goaway_moves_new_calls_to_a_new_connection(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    """grpcio sends GOAWAY when a connection reaches its maximum age, in two steps (first with
    the largest stream id, then the real last one), and gives running calls a grace period:
    no call may fail, the running one ends where it began, later ones use new connections."""
    server = start_interop_server("--max-connection-age-ms", "300")
    peers: list[str] = []
    long_call_peer: list[str] = []

    async def call_once(sleep_ms: int = 0) -> str:
        request = pb.SimpleRequest(sleep_ms=sleep_ms)
        reply = await channel.unary_unary(method("UnaryCall"), request, pb.SimpleResponse)
        return reply.peer

    async def long_call() -> None:
        long_call_peer.append(await call_once(sleep_ms=1500))

    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            first_peer = await call_once()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(long_call)
                for _call in range(10_000):
                    peers.append(await call_once())
                    if len(set(peers) - {first_peer}) >= 2:
                        break
                    await trio.sleep(0.01)
    assert long_call_peer == [first_peer]
    assert len(set(peers) - {first_peer}) >= 2


async def test_waiting_for_a_stream_slot_honours_deadlines(
    start_interop_server: Callable[..., InteropServer],
) -> None:
    server = start_interop_server("--max-concurrent-streams", "1")
    with trio.fail_after(30):
        async with pg.Channel([server.address]) as channel:
            await assert_channel_works(channel)
            async with channel.stream(
                method("FullDuplexCall"), pb.StreamingOutputCallResponse
            ) as occupant:
                await occupant.send_message(output_request(1))
                assert await occupant.receive_message() is not None
                # The only slot is taken: calls wait, and their deadlines still apply.
                with pytest.raises(pg.RpcError) as caught:
                    await channel.unary_unary(
                        method("EmptyCall"), pb.Empty(), pb.Empty, timeout=0.3
                    )
                assert caught.value.code == pg.StatusCode.DEADLINE_EXCEEDED
                with trio.move_on_after(0.3) as scope:
                    await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty)
                assert scope.cancelled_caught
                occupant.cancel()
            # The cancelled stream gave its slot back.
            await assert_channel_works(channel)

            async def hold_a_slot() -> None:
                await channel.unary_unary(
                    method("UnaryCall"), pb.SimpleRequest(sleep_ms=60_000), pb.SimpleResponse
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hold_a_slot)
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
            # So did the unary call cancelled by its scope.
            await assert_channel_works(channel)
