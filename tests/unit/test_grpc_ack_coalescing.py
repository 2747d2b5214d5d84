"""PING acknowledgements with nothing else to send wait (at most ``ACK_DELAY``) for a request
to carry them: etcd sends a PING with each reply, and a caller across a thread hop (the
asyncio and blocking faces) sends its next request after the writer's scheduling round, so the
ACK alone would cost a write per call. They are never held longer than that (an ack that
arrives during another write waits for that write too), never lost when no request follows,
and other frames are not held. Memory streams, trio's MockClock; writes are counted."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue
from grpc_support import METHOD, MemoryChannel, ScriptedServer, ServerPeer, connected, raw, request
from hyperframe.frame import DataFrame, Frame, HeadersFrame, PingFrame, WindowUpdateFrame

from puregrpc_etcd.grpc import http2 as h
from puregrpc_etcd.grpc.books import ACKS_TO_HOLD
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.connection import Connection
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.writer import ACK_DELAY


class RecordingStream(trio.abc.Stream):
    """The client's end of the connection, recording each write (when, and what)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.writes: list[tuple[float, bytes]] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append((trio.current_time(), bytes(data)))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def ack(n: int) -> bytes:
    return h.frame(h.PING, h.ACK, 0, n.to_bytes(8, "big"))


def ping(n: int) -> bytes:
    return raw(h.PING, 0, 0, n.to_bytes(8, "big"))


@asynccontextmanager
async def running() -> AsyncIterator[
    tuple[Connection, RecordingStream, trio.abc.Stream, ServerPeer]
]:
    """A running Connection, the record of its writes (the handshake's left out), and the
    server's end; the connection is stopped when the block ends."""
    client_end, server_end = trio.testing.memory_stream_pair()
    recording = RecordingStream(client_end)
    peer = ServerPeer()
    connection, _ = await connected(recording, server_end, peer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        recording.writes.clear()
        yield connection, recording, server_end, peer
        nursery.cancel_scope.cancel()


async def test_a_lone_ack_leaves_once_due_and_later_acks_do_not_extend_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (_, recording, server_end, peer):
        start = trio.current_time()
        await server_end.send_all(ping(1))
        await trio.sleep(ACK_DELAY / 2)
        assert recording.writes == []  # held for a request that may follow
        await server_end.send_all(ping(2))  # wakes the reader and the writer again
        with trio.fail_after(1):
            while len(peer.of_type(PingFrame)) < 2:
                peer.parse(await server_end.receive_some(65536))
    # Both acks, in one write, when the first was due: never lost, never held longer.
    assert [data for _, data in recording.writes] == [ack(1) + ack(2)]
    assert recording.writes[0][0] - start == pytest.approx(ACK_DELAY)


async def test_a_request_within_the_delay_carries_the_ack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (connection, recording, server_end, _):
        await server_end.send_all(ping(7))
        await trio.sleep(ACK_DELAY / 2)  # a thread hop, say
        call = CallState(1 << 20)
        await connection.start_call(call, METHOD, math.inf, b"")
        await connection.send(call, encode_message(b"r"), end_stream=True)
        await trio.sleep(10 * ACK_DELAY)
    assert len(recording.writes) == 1
    data = recording.writes[0][1]
    assert data.startswith(ack(7))
    frames = ServerPeer()
    frames._preface_seen = True
    kinds = [type(frame) for frame in frames.parse(data)]
    assert kinds == [PingFrame, HeadersFrame, DataFrame]


async def test_other_frames_are_not_held(autojump_clock: trio.testing.MockClock) -> None:
    """A WINDOW_UPDATE (here the connection's, after a large message) leaves at once, and
    takes the ack owed with it."""
    call = CallState(1 << 20)
    async with running() as (connection, recording, server_end, peer):
        await connection.start_call(call, METHOD, math.inf, b"")
        await connection.send(call, encode_message(b"r"), end_stream=True)
        recording.writes.clear()
        start = trio.current_time()
        body = encode_message(b"x" * 40000)
        await server_end.send_all(
            ping(3)
            + peer.headers(1, [(":status", "200"), ("content-type", "application/grpc")])
            + peer.data(1, body)
        )
        assert await connection.receive(call) == b"x" * 40000
        with trio.fail_after(1):
            while not peer.of_type(WindowUpdateFrame):
                peer.parse(await server_end.receive_some(65536))
    assert recording.writes[0][0] == start  # no delay
    assert recording.writes[0][1].startswith(ack(3))


async def test_a_ping_flood_is_answered_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """More acks than ACKS_TO_HOLD are not held (the cap on acks owed stays about floods)."""
    count = ACKS_TO_HOLD + 1
    async with running() as (_, recording, server_end, peer):
        start = trio.current_time()
        await server_end.send_all(b"".join(ping(n) for n in range(count)))
        with trio.fail_after(1):
            while len(peer.of_type(PingFrame)) < count:
                peer.parse(await server_end.receive_some(65536))
    assert [when for when, _ in recording.writes] == [start]
    assert recording.writes[0][1] == b"".join(ack(n) for n in range(count))


class PingingServer(ScriptedServer):
    """Like etcd: a PING each time a request's DATA arrives, before the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.pings = 0

        async def bdp_ping(server: ScriptedServer, frame: Frame) -> None:
            if isinstance(frame, DataFrame) and frame.data:
                self.pings += 1
                await server.send(ping(self.pings))

        self.on_frame = bdp_ping


class RecordingChannel(MemoryChannel):
    recording: RecordingStream

    async def open_memory_stream(self, host: str, port: int) -> trio.abc.Stream:
        self.recording = RecordingStream(await super().open_memory_stream(host, port))
        return self.recording


async def test_calls_a_hop_apart_make_one_write_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = PingingServer()
    calls = 5
    channel = RecordingChannel(server)
    async with channel:
        await channel.unary_unary(METHOD, request(), BytesValue)
        writes = len(channel.recording.writes)
        for _ in range(calls):
            await trio.sleep(ACK_DELAY / 2)
            await channel.unary_unary(METHOD, request(), BytesValue)
        assert len(channel.recording.writes) - writes == calls
        await trio.sleep(2 * ACK_DELAY)
        # The last call's ack went alone, once due: every PING was answered.
        assert len(channel.recording.writes) - writes == calls + 1
        assert channel.recording.writes[-1][1] == ack(calls + 1)
    acked = [frame for frame in server.peer.of_type(PingFrame) if "ACK" in frame.flags]
    assert len(acked) == server.pings == calls + 1


class WriterSteps(trio.abc.Instrument):
    """Counts the steps of the connection's writer task (``Writer.run``)."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("Writer.run"):
            self.steps += 1


async def test_held_acks_do_not_wake_the_writer(autojump_clock: trio.testing.MockClock) -> None:
    """Holding acks moves the deadline of the writer's wait; neither the PING nor a reply
    consumed meanwhile wakes it (each wake-up was a pass of trio's loop per call), and a
    request that carries the acks leaves it asleep with nothing due."""
    call = CallState(1 << 20)
    counter = WriterSteps()
    async with running() as (connection, recording, server_end, peer):
        await connection.start_call(call, METHOD, math.inf, b"")
        await connection.send(call, encode_message(b"r"), end_stream=True)
        await trio.sleep(10 * ACK_DELAY)  # the writer is waiting again
        recording.writes.clear()
        trio.lowlevel.add_instrument(counter)
        await server_end.send_all(
            ping(5)
            + peer.headers(1, [(":status", "200"), ("content-type", "application/grpc")])
            + peer.data(1, encode_message(b"x"))
        )
        assert await connection.receive(call) == b"x"
        await trio.sleep(ACK_DELAY / 2)
        assert counter.steps == 0
        assert recording.writes == []
        second = CallState(1 << 20)
        await connection.start_call(second, METHOD, math.inf, b"")
        await connection.send(second, encode_message(b"r"), end_stream=True)
        await trio.sleep(10 * ACK_DELAY)  # past the ack's old deadline
        trio.lowlevel.remove_instrument(counter)
    assert counter.steps == 0
    assert len(recording.writes) == 1
    assert recording.writes[0][1].startswith(ack(5))
