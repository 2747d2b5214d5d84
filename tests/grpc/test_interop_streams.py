"""Streaming beyond the interop cases, against grpcio's server: sending and receiving at once,
large uploads, many streams at a time, explicit cancel, and metadata of every byte value."""

from __future__ import annotations

import hashlib

import pytest
import trio
from _pb import interop_pb2 as pb
from interop_support import (
    CALL_ID_KEY,
    ECHO_INITIAL_KEY,
    ECHO_TRAILING_KEY,
    PAYLOAD_DIGEST_KEY,
    assert_channel_works,
    metadata_value,
    method,
    output_request,
    stream_output,
    wait_for_outcome,
)

from puregrpc_etcd import grpc as pg

KiB = 1024
MiB = 1024 * KiB


async def test_send_and_receive_at_once(channel: pg.Channel) -> None:
    """One task sends while another receives, both ways well past the flow-control windows."""
    size, count = 32 * KiB, 256
    received: list[int] = []
    digest = hashlib.sha256()
    with trio.fail_after(30):
        async with channel.stream(
            method("FullDuplexCall"), pb.StreamingOutputCallResponse
        ) as stream:

            async def send_all() -> None:
                for _message in range(count):
                    request = output_request(size)
                    request.payload.body = bytes(size)
                    await stream.send_message(request)
                await stream.done_writing()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_all)
                async for reply in stream:
                    received.append(len(reply.payload.body))
                    digest.update(reply.payload.body)
    assert received == [size] * count
    assert metadata_value(stream.trailing_metadata, PAYLOAD_DIGEST_KEY) == digest.hexdigest()


async def test_large_client_streamed_upload(channel: pg.Channel) -> None:
    size, count = 128 * KiB, 128
    with trio.fail_after(30):
        async with channel.stream(
            method("StreamingInputCall"), pb.StreamingInputCallResponse
        ) as stream:
            for _message in range(count):
                await stream.send_message(
                    pb.StreamingInputCallRequest(payload=pb.Payload(body=bytes(size)))
                )
            await stream.done_writing()
            replies = [reply async for reply in stream]
    assert [reply.aggregated_payload_size for reply in replies] == [16 * MiB]


async def test_many_streams_at_once(channel: pg.Channel) -> None:
    streams, sizes = 100, [32 * KiB] * 4
    intact: list[int] = []

    async def one_stream(index: int) -> None:
        received, digest, server_digest = await stream_output(channel, sizes)
        assert received == sizes
        assert digest == server_digest
        intact.append(index)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for index in range(streams):
                nursery.start_soon(one_stream, index)
    assert sorted(intact) == list(range(streams))


async def test_explicit_cancel(channel: pg.Channel) -> None:
    call_id = "explicit-cancel"
    with trio.fail_after(10):
        async with channel.stream(
            method("FullDuplexCall"),
            pb.StreamingOutputCallResponse,
            metadata=[(CALL_ID_KEY, call_id)],
        ) as stream:
            await stream.send_message(output_request(100))
            assert await stream.receive_message() is not None
            stream.cancel()
            with pytest.raises(pg.RpcError) as caught:
                await stream.receive_message()
        assert caught.value.code == pg.StatusCode.CANCELLED
        assert stream.status == pg.StatusCode.CANCELLED
        assert await wait_for_outcome(channel, call_id, "cancelled", "ok") == "cancelled"
        await assert_channel_works(channel)


async def test_metadata_of_every_byte_value(channel: pg.Channel) -> None:
    printable = "a" + "".join(chr(code) for code in range(0x20, 0x7F)) + "z"
    every_byte = bytes(range(256)) * 8
    metadata = [(ECHO_INITIAL_KEY, printable), (ECHO_TRAILING_KEY, every_byte)]
    with trio.fail_after(10):
        async with channel.stream(
            method("UnaryCall"), pb.SimpleResponse, metadata=metadata
        ) as stream:
            await stream.send_message(pb.SimpleRequest(response_size=1))
            await stream.done_writing()
            replies = [reply async for reply in stream]
    assert len(replies) == 1
    assert metadata_value(stream.initial_metadata, ECHO_INITIAL_KEY) == printable
    assert metadata_value(stream.trailing_metadata, ECHO_TRAILING_KEY) == every_byte


async def test_metadata_keys_and_values_are_checked_before_sending(channel: pg.Channel) -> None:
    """Values that are not printable ASCII, and pseudo-headers, cannot be sent as metadata."""
    bad_metadata = [
        [("x-text", "line\nbreak")],
        [("x-text", "non-ascii é")],
        [(":path", "/other")],
    ]
    with trio.fail_after(10):
        for metadata in bad_metadata:
            with pytest.raises((TypeError, ValueError)):
                await channel.unary_unary(
                    method("EmptyCall"), pb.Empty(), pb.Empty, metadata=metadata
                )
        await assert_channel_works(channel)
