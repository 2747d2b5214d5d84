"""The standard gRPC interop client cases (grpc/grpc doc/interop-test-descriptions.md), run by
our transport against grpcio's server and our own smaller test service (interop.proto)."""

from __future__ import annotations

import pytest
import trio
from _pb import interop_pb2 as pb
from interop_support import (
    CALL_ID_KEY,
    ECHO_INITIAL_KEY,
    ECHO_TRAILING_KEY,
    assert_channel_works,
    metadata_value,
    method,
    output_request,
    send_then_receive,
    stream_output,
    wait_for_outcome,
)

from puregrpc_etcd import grpc as pg

SPECIAL_STATUS_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
MiB = 1024 * 1024


async def test_empty_unary(channel: pg.Channel) -> None:
    with trio.fail_after(10):
        reply = await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty)
    assert isinstance(reply, pb.Empty)


async def test_large_unary(channel: pg.Channel) -> None:
    request = pb.SimpleRequest(response_size=MiB, payload=pb.Payload(body=bytes(MiB)))
    with trio.fail_after(10):
        reply = await channel.unary_unary(method("UnaryCall"), request, pb.SimpleResponse)
    assert reply.request_payload_size == MiB
    assert reply.payload.body == bytes(MiB)


async def test_client_streaming(channel: pg.Channel) -> None:
    with trio.fail_after(10):
        async with channel.stream(
            method("StreamingInputCall"), pb.StreamingInputCallResponse
        ) as stream:
            for size in (27182, 8, 1828, 45904):
                await stream.send_message(
                    pb.StreamingInputCallRequest(payload=pb.Payload(body=bytes(size)))
                )
            await stream.done_writing()
            replies = [reply async for reply in stream]
    assert [reply.aggregated_payload_size for reply in replies] == [74922]
    assert stream.status == pg.StatusCode.OK


async def test_server_streaming(channel: pg.Channel) -> None:
    sizes = [31415, 9, 2653, 58979]
    with trio.fail_after(10):
        received, digest, server_digest = await stream_output(channel, sizes)
    assert received == sizes
    assert digest == server_digest


async def test_ping_pong(channel: pg.Channel) -> None:
    request_sizes = (27182, 8, 1828, 45904)
    response_sizes = (31415, 9, 2653, 58979)
    with trio.fail_after(10):
        async with channel.stream(
            method("FullDuplexCall"), pb.StreamingOutputCallResponse
        ) as stream:
            for request_size, response_size in zip(request_sizes, response_sizes):
                request = output_request(response_size)
                request.payload.body = bytes(request_size)
                await stream.send_message(request)
                reply = await stream.receive_message()
                assert reply is not None
                assert len(reply.payload.body) == response_size
            await stream.done_writing()
            assert await stream.receive_message() is None
    assert stream.status == pg.StatusCode.OK


async def test_empty_stream(channel: pg.Channel) -> None:
    with trio.fail_after(10):
        async with channel.stream(
            method("FullDuplexCall"), pb.StreamingOutputCallResponse
        ) as stream:
            await stream.done_writing()
            replies = [reply async for reply in stream]
    assert replies == []
    assert stream.status == pg.StatusCode.OK


async def expect_unary_status(channel: pg.Channel, code: int, message: str) -> None:
    request = pb.SimpleRequest(response_status=pb.EchoStatus(code=code, message=message))
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await channel.unary_unary(method("UnaryCall"), request, pb.SimpleResponse)
    assert caught.value.code == pg.StatusCode(code)
    assert caught.value.details == message


async def full_duplex_once(
    channel: pg.Channel, request: pb.StreamingOutputCallRequest
) -> list[pb.StreamingOutputCallResponse]:
    async with channel.stream(method("FullDuplexCall"), pb.StreamingOutputCallResponse) as stream:
        # If the server ends the call while we still send, the send raises the same error.
        await stream.send_message(request)
        await stream.done_writing()
        replies = [reply async for reply in stream]
    assert stream.status == pg.StatusCode.OK
    return replies


async def expect_duplex_status(channel: pg.Channel, code: int, message: str) -> None:
    request = pb.StreamingOutputCallRequest(
        response_status=pb.EchoStatus(code=code, message=message)
    )
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await full_duplex_once(channel, request)
    assert caught.value.code == pg.StatusCode(code)
    assert caught.value.details == message


async def test_status_code_and_message(channel: pg.Channel) -> None:
    await expect_unary_status(channel, 2, "test status message")
    await expect_duplex_status(channel, 2, "test status message")


async def test_special_status_message(channel: pg.Channel) -> None:
    await expect_unary_status(channel, 2, SPECIAL_STATUS_MESSAGE)
    await expect_duplex_status(channel, 2, SPECIAL_STATUS_MESSAGE)


async def test_every_status_code_round_trips(channel: pg.Channel) -> None:
    for code in range(1, 17):
        await expect_unary_status(channel, code, f"status {code}")


CUSTOM_METADATA = [
    (ECHO_INITIAL_KEY, "test_initial_metadata_value"),
    (ECHO_TRAILING_KEY, b"\xab\xab\xab"),
]


async def test_custom_metadata_unary(channel: pg.Channel) -> None:
    request = pb.SimpleRequest(response_size=314159, payload=pb.Payload(body=bytes(271828)))
    with trio.fail_after(10):
        async with channel.stream(
            method("UnaryCall"), pb.SimpleResponse, metadata=CUSTOM_METADATA
        ) as stream:
            await stream.send_message(request)
            await stream.done_writing()
            replies = [reply async for reply in stream]
    assert [len(reply.payload.body) for reply in replies] == [314159]
    assert metadata_value(stream.initial_metadata, ECHO_INITIAL_KEY) == (
        "test_initial_metadata_value"
    )
    assert metadata_value(stream.trailing_metadata, ECHO_TRAILING_KEY) == b"\xab\xab\xab"


async def test_custom_metadata_full_duplex(channel: pg.Channel) -> None:
    with trio.fail_after(10):
        async with channel.stream(
            method("FullDuplexCall"), pb.StreamingOutputCallResponse, metadata=CUSTOM_METADATA
        ) as stream:
            await stream.send_message(output_request(314159))
            reply = await stream.receive_message()
            assert reply is not None
            # Initial metadata is known once the first reply is in, before the call ends.
            assert metadata_value(stream.initial_metadata, ECHO_INITIAL_KEY) == (
                "test_initial_metadata_value"
            )
            await stream.done_writing()
            assert await stream.receive_message() is None
    assert metadata_value(stream.trailing_metadata, ECHO_TRAILING_KEY) == b"\xab\xab\xab"


async def test_custom_metadata_on_error(channel: pg.Channel) -> None:
    request = pb.SimpleRequest(response_status=pb.EchoStatus(code=9, message="no"))
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await channel.unary_unary(
            method("UnaryCall"), request, pb.SimpleResponse, metadata=CUSTOM_METADATA
        )
    assert caught.value.code == pg.StatusCode.FAILED_PRECONDITION
    assert metadata_value(caught.value.trailing_metadata, ECHO_TRAILING_KEY) == b"\xab\xab\xab"


async def test_unimplemented_method(channel: pg.Channel) -> None:
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await channel.unary_unary(method("UnimplementedCall"), pb.Empty(), pb.Empty)
    assert caught.value.code == pg.StatusCode.UNIMPLEMENTED
    await assert_channel_works(channel)


async def test_unimplemented_service(channel: pg.Channel) -> None:
    unknown = method("UnimplementedCall", service="puregrpc.testing.UnimplementedService")
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await channel.unary_unary(unknown, pb.Empty(), pb.Empty)
    assert caught.value.code == pg.StatusCode.UNIMPLEMENTED
    await assert_channel_works(channel)


async def test_cancel_after_begin(channel: pg.Channel) -> None:
    call_id = "cancel-after-begin"
    with trio.fail_after(10), trio.CancelScope() as scope:
        async with channel.stream(
            method("StreamingInputCall"),
            pb.StreamingInputCallResponse,
            metadata=[(CALL_ID_KEY, call_id)],
        ):
            # The call has begun once the server runs it; then cancel it before any message.
            await wait_for_outcome(channel, call_id, "running")
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert await wait_for_outcome(channel, call_id, "cancelled", "ok") == "cancelled"
    await assert_channel_works(channel)


async def test_cancel_after_first_response(channel: pg.Channel) -> None:
    call_id = "cancel-after-first-response"
    with trio.fail_after(10), trio.CancelScope() as scope:
        async with channel.stream(
            method("FullDuplexCall"),
            pb.StreamingOutputCallResponse,
            metadata=[(CALL_ID_KEY, call_id)],
        ) as stream:
            await stream.send_message(output_request(31415))
            reply = await stream.receive_message()
            assert reply is not None
            assert len(reply.payload.body) == 31415
            scope.cancel()
            await stream.receive_message()
    assert scope.cancelled_caught
    assert await wait_for_outcome(channel, call_id, "cancelled", "ok") == "cancelled"
    await assert_channel_works(channel)


async def test_timeout_on_sleeping_server_explicit_timeout(channel: pg.Channel) -> None:
    call_id = "explicit-timeout"
    request = pb.SimpleRequest(sleep_ms=60_000)
    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await channel.unary_unary(
            method("UnaryCall"),
            request,
            pb.SimpleResponse,
            timeout=0.2,
            metadata=[(CALL_ID_KEY, call_id)],
        )
    assert caught.value.code == pg.StatusCode.DEADLINE_EXCEEDED
    assert await wait_for_outcome(channel, call_id, "cancelled", "ok") == "cancelled"
    await assert_channel_works(channel)


async def test_timeout_on_sleeping_server_streaming(channel: pg.Channel) -> None:
    request = output_request(31415, interval_us=60_000_000)
    request.payload.body = bytes(27182)

    async def call_sleeping_server() -> None:
        async with channel.stream(
            method("FullDuplexCall"), pb.StreamingOutputCallResponse, timeout=0.2
        ) as stream:
            await send_then_receive(stream, request)

    with trio.fail_after(10), pytest.raises(pg.RpcError) as caught:
        await call_sleeping_server()
    assert caught.value.code == pg.StatusCode.DEADLINE_EXCEEDED
    await assert_channel_works(channel)


async def test_timeout_on_sleeping_server_trio_deadline(channel: pg.Channel) -> None:
    call_id = "trio-deadline"
    request = pb.SimpleRequest(sleep_ms=60_000)
    with trio.fail_after(10):
        with trio.move_on_after(0.2) as scope:
            await channel.unary_unary(
                method("UnaryCall"),
                request,
                pb.SimpleResponse,
                metadata=[(CALL_ID_KEY, call_id)],
            )
        # A trio deadline stays a trio cancellation: no RpcError escaped the scope.
        assert scope.cancelled_caught
    assert await wait_for_outcome(channel, call_id, "cancelled", "ok") == "cancelled"
    await assert_channel_works(channel)


async def test_deadline_travels_as_grpc_timeout(channel: pg.Channel) -> None:
    async def time_remaining_ms(timeout: float | None) -> int:
        reply = await channel.unary_unary(
            method("UnaryCall"), pb.SimpleRequest(), pb.SimpleResponse, timeout=timeout
        )
        return reply.time_remaining_ms

    with trio.fail_after(60):
        from_scope = await time_remaining_ms(None)
        explicit = await time_remaining_ms(20.0)
        with trio.move_on_after(10):
            scope_earlier = await time_remaining_ms(20.0)
    assert 20_000 < from_scope <= 60_000
    assert 0 < explicit <= 20_000
    assert 0 < scope_earlier <= 10_000
