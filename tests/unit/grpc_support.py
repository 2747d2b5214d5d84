"""What the gRPC transport's unit tests share: ``ServerPeer`` (the server end of an HTTP/2
connection, frame by frame, with hyperframe/hpack), ``ScriptedServer`` and ``MemoryChannel``
(a scripted peer behind an in-memory stream), and small frame and HPACK builders. Test
modules import these from here, never from one another."""

from __future__ import annotations

import struct
from collections import defaultdict
from typing import Any, Awaitable, Callable

import hpack
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue
from hpack.hpack import encode_integer
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from puregrpc_etcd.grpc import Channel, StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.connection import Connection
from puregrpc_etcd.grpc.framing import MessageDecoder, encode_message
from puregrpc_etcd.grpc.metadata import RequestHeaderTemplate
from puregrpc_etcd.grpc.protocol import GrpcProtocol

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL, NO_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x8, 0x0, 0x7, 0xB
OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


class ServerPeer:
    """The server end of an HTTP/2 connection, one frame at a time: parses what the client
    sent (decoding its HEADERS in order) and builds the frames a test wants to answer."""

    def __init__(self) -> None:
        self._buffer = b""
        self._preface_seen = False
        self._decoder = hpack.Decoder()
        self._encoder = hpack.Encoder()
        self.frames: list[Frame] = []

    def parse(self, data: bytes) -> list[Frame]:
        self._buffer += data
        if not self._preface_seen and len(self._buffer) >= len(PREFACE):
            assert self._buffer.startswith(PREFACE)
            self._buffer = self._buffer[len(PREFACE) :]
            self._preface_seen = True
        frames: list[Frame] = []
        while self._preface_seen and len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            if isinstance(frame, HeadersFrame):
                frame.decoded = {  # type: ignore[attr-defined]
                    str(name): str(value) for name, value in self._decoder.decode(frame.data)
                }
            frames.append(frame)
        self.frames += frames
        return frames

    def of_type(self, kind: type, stream_id: int | None = None) -> list[Any]:
        return [
            frame
            for frame in self.frames
            if isinstance(frame, kind) and (stream_id is None or frame.stream_id == stream_id)
        ]

    @staticmethod
    def settings(**values: int) -> bytes:
        frame = SettingsFrame(0)
        for name, value in values.items():
            frame.settings[getattr(SettingsFrame, name.upper())] = value
        return frame.serialize()

    @staticmethod
    def settings_ack() -> bytes:
        return SettingsFrame(0, flags=["ACK"]).serialize()

    def headers(
        self, stream_id: int, headers: list[tuple[str, str]], *, end: bool = False
    ) -> bytes:
        flags = ["END_HEADERS"] + (["END_STREAM"] if end else [])
        return HeadersFrame(stream_id, self._encoder.encode(headers), flags=flags).serialize()

    def trailers(
        self,
        stream_id: int,
        status: int = 0,
        message: str = "",
        extra: list[tuple[str, str]] | None = None,
    ) -> bytes:
        fields = [("grpc-status", str(status))] + ([("grpc-message", message)] if message else [])
        return self.headers(stream_id, fields + (extra or []), end=True)

    @staticmethod
    def data(stream_id: int, payload: bytes, *, end: bool = False, pad: int = 0) -> bytes:
        """DATA frames of at most 16 KiB (the default max frame size) carrying ``payload``."""
        size = 16384 - (pad + 1 if pad else 0)
        pieces = [payload[start : start + size] for start in range(0, len(payload), size)] or [b""]
        frames = []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            flags = (["END_STREAM"] if end and last else []) + (["PADDED"] if pad else [])
            frame = DataFrame(stream_id, piece, flags=flags)
            if pad:
                frame.pad_length = pad
            frames.append(frame.serialize())
        return b"".join(frames)

    def reply(self, stream_id: int, *messages: bytes, status: int = 0) -> bytes:
        return (
            self.headers(stream_id, OK_HEADERS)
            + b"".join(self.data(stream_id, encode_message(m)) for m in messages)
            + self.trailers(stream_id, status)
        )

    @staticmethod
    def rst(stream_id: int, error_code: int) -> bytes:
        return RstStreamFrame(stream_id, error_code=error_code).serialize()

    @staticmethod
    def goaway(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
        return GoAwayFrame(
            0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug
        ).serialize()

    @staticmethod
    def window_update(stream_id: int, increment: int) -> bytes:
        return WindowUpdateFrame(stream_id, window_increment=increment).serialize()

    @staticmethod
    def ping_ack(opaque: bytes) -> bytes:
        return PingFrame(0, opaque_data=opaque, flags=["ACK"]).serialize()


TEMPLATE = RequestHeaderTemplate(scheme="http", authority="127.0.0.1:1", user_agent="test/1")


def connect(server: ServerPeer, **settings: int) -> GrpcProtocol:
    protocol = GrpcProtocol(max_receive_message_size=1024 * 1024, stream_window=64 * 1024)
    protocol.initiate()
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.settings(**settings) + server.settings_ack())
    assert protocol.settings_received
    server.parse(protocol.data_to_send())
    protocol.changed.clear()
    return protocol


def start(
    protocol: GrpcProtocol,
    payload: bytes | None = b"req",
    *,
    timeout: float | None = None,
    limit: int = 1024 * 1024,
) -> CallState:
    call = CallState(limit)
    protocol.start_call(call, TEMPLATE.build("/pkg.Svc/Do", timeout, None))
    if payload is not None:
        protocol.send_data(call, memoryview(encode_message(payload)), end_stream=True)
    return call


def raw(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """Any frame, even one hyperframe refuses to build."""
    return struct.pack(">IBI", len(payload) << 8 | frame_type, flags, stream_id) + payload


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def hp_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with ``first`` holding the pattern bits; encoded by
    the hpack package, not by the code under test."""
    encoded = encode_integer(value, prefix_bits)
    encoded[0] |= first
    return bytes(encoded)


def hp_str(text: bytes) -> bytes:
    return hp_int(len(text), 7, 0) + text


def hp_indexed(index: int) -> bytes:
    return hp_int(index, 7, 0x80)


# :status 200 (static 8) and content-type: application/grpc (name from static 31, no indexing).
OK_BLOCK = hp_indexed(8) + b"\x0f\x10" + hp_str(b"application/grpc")


def opened(
    server: ServerPeer, count: int = 1, **settings: int
) -> tuple[GrpcProtocol, list[CallState]]:
    """A connection with ``count`` unary calls sent (request half-closed)."""
    protocol = connect(server, **settings)
    calls = [start(protocol) for _ in range(count)]
    server.parse(protocol.data_to_send())
    return protocol, calls


def goaway_code(server: ServerPeer, protocol: GrpcProtocol) -> int:
    """The error code of the GOAWAY the client queued (the connection must have failed)."""
    assert protocol.failure is not None
    goaways = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, GoAwayFrame)]
    assert len(goaways) == 1
    code: int = goaways[0].error_code
    return code


def assert_connection_error(
    server: ServerPeer, protocol: GrpcProtocol, calls: list[CallState], error_code: int
) -> None:
    assert goaway_code(server, protocol) == error_code
    assert all(call.code is StatusCode.UNAVAILABLE and call.released for call in calls)
    assert protocol.open_streams == 0
    assert protocol.draining


METHOD = "/test.Echo/Call"


class ScriptedServer:
    """An HTTP/2 server over a memory stream. By default it acknowledges SETTINGS, answers
    PINGs and echoes each request's messages back once the client half-closes; tests change
    that through the attributes and hooks below."""

    def __init__(self, **settings: int) -> None:
        self.settings = settings
        self.answer_pings = True
        self.echo = True
        self.reply_delay = 0.0
        self.on_frame: Callable[[ScriptedServer, Frame], Awaitable[None]] | None = None
        self.peer = ServerPeer()
        self.requests: dict[int, dict[str, str]] = {}
        self.bodies: dict[int, bytes] = defaultdict(bytes)
        self.resets: dict[int, int] = {}
        self.open_now = 0
        self.most_open = 0
        self.send_window: dict[int, int] = {}
        self.initial_window = 65535
        self.connection_window = 65535
        self.window_changed = trio.Event()
        self.connections = 0
        self._stream: trio.abc.Stream | None = None
        self._lock = trio.Lock()

    async def send(self, data: bytes) -> None:
        assert self._stream is not None
        async with self._lock:
            await self._stream.send_all(data)

    async def serve(self, stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        self._stream = stream
        self.peer = ServerPeer()
        self.bodies.clear()
        self.connections += 1
        await self.send(self.peer.settings(**self.settings))
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for frame in self.peer.parse(data):
                    await self.handle(frame, nursery)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def handle(self, frame: Frame, nursery: trio.Nursery) -> None:
        if self.on_frame is not None:
            await self.on_frame(self, frame)
        sid = frame.stream_id
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            if SettingsFrame.INITIAL_WINDOW_SIZE in frame.settings:
                self.initial_window = frame.settings[SettingsFrame.INITIAL_WINDOW_SIZE]
            await self.send(self.peer.settings_ack())
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags and self.answer_pings:
            await self.send(self.peer.ping_ack(frame.opaque_data))
        elif isinstance(frame, WindowUpdateFrame):
            if sid == 0:
                self.connection_window += frame.window_increment
            else:
                self.send_window[sid] = self.send_window.get(sid, 0) + frame.window_increment
            self.window_changed.set()
            self.window_changed = trio.Event()
        elif isinstance(frame, HeadersFrame):
            self.requests[sid] = frame.decoded  # type: ignore[attr-defined]
            self.send_window[sid] = self.initial_window
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        elif isinstance(frame, DataFrame):
            self.bodies[sid] += frame.data
        elif isinstance(frame, RstStreamFrame):
            self.resets[sid] = frame.error_code
            self.open_now -= 1
        if "END_STREAM" in getattr(frame, "flags", ()) and self.echo:
            nursery.start_soon(self.echo_reply, sid)

    async def echo_reply(self, stream_id: int) -> None:
        if self.reply_delay:
            await trio.sleep(self.reply_delay)
        messages = MessageDecoder(1 << 30).feed(self.bodies[stream_id])
        self.open_now -= 1
        await self.send(self.peer.reply(stream_id, *messages))

    async def stream_out(self, stream_id: int, payload: bytes) -> None:
        """Send DATA within the client's windows, as a well-behaved server must."""
        sent = 0
        while sent < len(payload):
            room = min(self.send_window[stream_id], self.connection_window, 16384)
            if room <= 0:
                await self.window_changed.wait()
                continue
            chunk = payload[sent : sent + room]
            self.send_window[stream_id] -= len(chunk)
            self.connection_window -= len(chunk)
            await self.send(self.peer.data(stream_id, chunk))
            sent += len(chunk)


class MemoryChannel(Channel):
    """A Channel whose connections (its ``open_stream``) are memory streams to
    ScriptedServers."""

    def __init__(self, *servers: ScriptedServer, **options: Any) -> None:
        endpoints = [f"10.0.0.{n}:1" for n in range(1, len(servers) + 1)]
        super().__init__(endpoints, open_stream=self.open_memory_stream, **options)
        self.servers = dict(zip(endpoints, servers))
        self.down: set[str] = set()
        self.opened: list[str] = []

    async def open_memory_stream(self, host: str, port: int) -> trio.abc.Stream:
        endpoint = f"{host}:{port}"
        if endpoint in self.down:
            raise OSError(f"connection refused by {endpoint}")
        client, server_end = trio.testing.memory_stream_pair()
        self.opened.append(endpoint)
        # The connect round calling this runs in the channel's nursery: the server runs there
        # too, and ends with the channel.
        nursery = trio.lowlevel.current_task().parent_nursery
        assert nursery is not None
        nursery.start_soon(self.servers[endpoint].serve, server_end, nursery)
        return client


def request(payload: bytes = b"ping") -> BytesValue:
    return BytesValue(value=payload)


async def read_frames(
    stream: trio.abc.Stream, peer: ServerPeer, until: type, chunk: int = 65536
) -> None:
    """Parse what the client sends until a frame of type ``until`` arrives."""
    while not peer.of_type(until):
        data = await stream.receive_some(chunk)
        assert data, "the client closed first"
        peer.parse(data)


async def connected(
    stream: trio.abc.Stream, server_end: trio.abc.Stream, peer: ServerPeer
) -> tuple[Connection, GrpcProtocol]:
    """A Connection over ``stream`` whose handshake the server end answered."""
    protocol = GrpcProtocol(max_receive_message_size=1 << 20, stream_window=65536)
    connection = Connection(stream, protocol, endpoint="test", headers=TEMPLATE)

    async def serve_handshake() -> None:
        # In this order, so that lockstep streams (a send waits for the reader) do not block.
        await read_frames(server_end, peer, SettingsFrame)
        await server_end.send_all(peer.settings())
        while len(peer.of_type(SettingsFrame)) < 2:  # our settings acknowledged
            peer.parse(await server_end.receive_some(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_handshake)
        await connection.handshake()
    return connection, protocol
