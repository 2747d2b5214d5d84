"""Fuzzing the sans-IO HTTP/2 client: random and half-valid frames after a valid preface never
raise, never leave a changed call unreported, and fail cleanly; and any split of a valid
server byte stream into reads gives the same call outcomes and the same bytes back."""

from __future__ import annotations

import struct
from typing import Any

import hpack
from grpc_support import OK_HEADERS, ServerPeer, connect, raw, start
from hyperframe.frame import Frame, HeadersFrame, PingFrame, PriorityFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.protocol import GrpcProtocol


def parse_frames(wire: bytes) -> list[Frame]:
    """Every frame the client wrote; fails if its output is not a clean run of frames."""
    frames = []
    while wire:
        frame, length = Frame.parse_frame_header(memoryview(wire[:9]))
        assert len(wire) >= 9 + length
        frame.parse_body(memoryview(wire[9 : 9 + length]))
        frames.append(frame)
        wire = wire[9 + length :]
    return frames


def literal_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """HPACK never-indexed literals: valid whatever state the decoder is in."""
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers])


BLOCKS = [
    literal_block([(b":status", b"200"), (b"content-type", b"application/grpc")]),
    literal_block([(b"grpc-status", b"0")]),
    literal_block([(b"grpc-status", b"13"), (b"grpc-message", b"x%20y")]),
    literal_block([(b":status", b"100")]),
    literal_block([(b":status", b"503")]),
    b"\x88",
    b"",
]

header_names = st.sampled_from(
    [
        b":status",
        b"content-type",
        b"grpc-status",
        b"grpc-message",
        b"x-bin",
        b"grpc-status-details-bin",
        b"x-a",
        b"Upper",
        b"",
    ]
)
random_blocks = st.builds(
    literal_block, st.lists(st.tuples(header_names, st.binary(max_size=12)), max_size=4)
)
payloads = st.one_of(
    st.binary(max_size=24),
    st.sampled_from(BLOCKS),
    random_blocks,
    st.sampled_from([encode_message(b"m"), encode_message(b"m" * 300)[:50], b"\x00" * 8]),
    st.builds(lambda v: struct.pack(">I", v), st.integers(0, 2**32 - 1)),
    st.builds(lambda k, v: struct.pack(">HI", k, v), st.integers(0, 9), st.integers(0, 2**32 - 1)),
)
frames = st.builds(
    raw,
    st.one_of(st.integers(0, 9), st.sampled_from([0x0A, 0x10, 0xFF])),
    st.one_of(st.sampled_from([0x0, 0x1, 0x4, 0x5, 0x8, 0x20, 0x25]), st.integers(0, 255)),
    st.sampled_from([0, 1, 3, 5, 7, 2, 99, 0x80000001]),
    payloads,
)


def snapshot(protocol: GrpcProtocol, calls: list[CallState]) -> list[tuple[Any, ...]]:
    return [
        (call.code, len(call.messages), call.response_headers is None, call.send_window)
        for call in calls
    ] + [(protocol._send_window,)]


def check_step(protocol: GrpcProtocol, calls: list[CallState], data: bytes) -> None:
    """Feed ``data`` as the I/O layer does, then check what it relies on."""
    before = snapshot(protocol, calls)
    blocked = set(protocol.send_blocked)
    protocol.receive_data(data)  # must never raise
    after = snapshot(protocol, calls)
    changed = set(map(id, protocol.changed))
    for call, old, new in zip(calls, before, after):
        # A new outcome, message or response headers must wake the call's receiver...
        if old[:3] != new[:3]:
            assert id(call) in changed, (old, new)
        # ... and a window that opens must wake its blocked sender (a sender parks only on a
        # window <= 0, its stream's or the connection's, so only an opening can matter).
        was_shut = min(old[3], before[-1][0]) <= 0
        is_open = min(new[3], after[-1][0]) > 0
        if call in blocked and was_shut and is_open and not call.released:
            assert id(call) in changed
    if protocol.failure is not None:
        assert protocol.failure.code is StatusCode.UNAVAILABLE
        assert all(call.code is not None and call.released for call in calls)
        assert protocol.open_streams == 0
        assert not protocol.send_blocked
    assert protocol.open_streams == sum(not call.released for call in calls)
    out = protocol.data_to_send()
    parse_frames(out)
    # The I/O layer wakes the changed calls, and parked senders park again.
    protocol.changed.clear()
    protocol.send_blocked.update(call for call in calls if not call.released)


def started(server: ServerPeer) -> tuple[GrpcProtocol, list[CallState]]:
    protocol = connect(server)
    calls = [start(protocol), start(protocol, payload=None), start(protocol, payload=None)]
    server.parse(protocol.data_to_send())
    return protocol, calls


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=12), st.booleans())
def test_random_frames_fail_cleanly_and_wake_every_changed_call(
    wire: list[bytes], whole: bool
) -> None:
    server = ServerPeer()
    protocol, calls = started(server)
    protocol.send_blocked.update(calls)
    for data in [b"".join(wire)] if whole else wire:
        check_step(protocol, calls, data)
    if protocol.failure is None:
        for call in calls:
            while protocol.consume(call) is not None:
                pass
        parse_frames(protocol.data_to_send())


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.booleans())
def test_random_bytes_fail_cleanly(garbage: bytes, after_headers: bool) -> None:
    server = ServerPeer()
    protocol, calls = started(server)
    if after_headers:
        check_step(protocol, calls, server.headers(1, OK_HEADERS))
    check_step(protocol, calls, garbage)
    check_step(protocol, calls, garbage[::-1])


def valid_server_bytes() -> tuple[bytes, int]:
    """A long legal server byte stream touching most frame kinds, and how many calls it serves."""
    server = ServerPeer()
    # Header blocks share the encoder's dynamic table: encode them in wire order.
    first = server.headers(1, OK_HEADERS)
    block = server._encoder.encode([*OK_HEADERS, ("x-meta", "v" * 30)])
    ping = PingFrame(0, opaque_data=b"pingpong").serialize()
    priority = PriorityFrame(3, depends_on=1, stream_weight=7).serialize()
    wire = [
        server.settings(max_frame_size=20000, initial_window_size=1000, header_table_size=256),
        server.settings_ack(),
        first,
        HeadersFrame(3, block[:5]).serialize(),
        raw(0x9, 0, 3, block[5:9]),
        raw(0x9, 0x4, 3, block[9:]),
        ping,
        server.data(1, encode_message(b"a" * 5000) + encode_message(b"b"), pad=17),
        priority,
        raw(0xEE, 0x3, 0, b"unknown"),
        server.window_update(0, 70000),
        server.window_update(3, 300),
        server.data(3, encode_message(b"c" * 100)[:60]),
        server.headers(5, [(":status", "100")]),
        server.headers(5, [*OK_HEADERS, ("x-meta", "v" * 30)]),
        server.data(3, encode_message(b"c" * 100)[60:]),
        server.trailers(1, 0, extra=[("x-t", "1")]),
        server.data(5, encode_message(b"e")),
        server.rst(5, 0x8),
        server.trailers(3, 5, "gone%21"),
        server.headers(7, [*OK_HEADERS, ("grpc-status", "9")], end=True),
        ping,
        server.goaway(7, 0, b"bye"),
    ]
    return b"".join(wire), 4


def outcomes(protocol: GrpcProtocol, calls: list[CallState]) -> list[tuple[Any, ...]]:
    result = []
    for call in calls:
        messages = []
        while (message := protocol.consume(call)) is not None:
            messages.append(message)
        result.append(
            (
                call.code,
                call.details,
                messages,
                call.initial_metadata,
                call.trailing_metadata,
                call.released,
            )
        )
    return result


def run_in_reads(
    wire: bytes, cuts: list[int], *, reuse_buffer: bool, calls_made: int = 0
) -> tuple[Any, ...]:
    protocol = GrpcProtocol(max_receive_message_size=1 << 20, stream_window=64 * 1024)
    protocol.initiate()
    calls = [start(protocol) for _ in range(calls_made or VALID_CALLS)]
    sent = protocol.data_to_send()
    edges = [0, *sorted(cuts), len(wire)]
    for start_at, end_at in zip(edges, edges[1:]):
        chunk = bytearray(wire[start_at:end_at])
        protocol.receive_data(chunk if reuse_buffer else bytes(chunk))  # type: ignore[arg-type]
        if reuse_buffer:
            chunk[:] = b"\xee" * len(chunk)  # a socket buffer reused for the next read
        sent += protocol.data_to_send()
    failure = protocol.failure and str(protocol.failure)
    return (
        outcomes(protocol, calls),
        sent + protocol.data_to_send(),
        failure,
        protocol.goaway_last_stream_id,
        protocol.ping_acks,
    )


VALID_WIRE, VALID_CALLS = valid_server_bytes()


def frame_edges(wire: bytes) -> list[int]:
    edges, offset = [], 0
    while offset < len(wire):
        offset += 9 + int.from_bytes(wire[offset : offset + 3], "big")
        edges.append(offset)
    return edges


FRAME_EDGES = frame_edges(VALID_WIRE)
REFERENCE = run_in_reads(VALID_WIRE, [], reuse_buffer=False)


def test_the_reference_stream_is_what_it_claims() -> None:
    calls, sent, failure, last_stream_id, _ = REFERENCE
    assert failure is None
    assert last_stream_id == 7
    assert [c[0] for c in calls] == [
        StatusCode.OK,
        StatusCode.NOT_FOUND,
        StatusCode.CANCELLED,
        StatusCode.FAILED_PRECONDITION,
    ]
    assert calls[0][2] == [b"a" * 5000, b"b"]
    assert calls[1][1] == "gone!"
    assert calls[1][2] == [b"c" * 100]
    assert calls[1][3] == (("x-meta", "v" * 30),)
    assert calls[2][2] == [b"e"]
    pings = [f for f in parse_frames(sent[24:]) if isinstance(f, PingFrame)]
    assert [f.opaque_data for f in pings] == [b"pingpong"] * 2


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, len(VALID_WIRE)), st.sampled_from(FRAME_EDGES)), max_size=40),
    st.booleans(),
)
def test_any_split_into_reads_gives_the_same_outcomes(cuts: list[int], reuse: bool) -> None:
    assert run_in_reads(VALID_WIRE, cuts, reuse_buffer=reuse) == REFERENCE


def test_reads_that_end_on_frame_edges_give_the_same_outcomes() -> None:
    # Frames then start at the beginning of a (reused) read buffer: nothing may keep a view.
    assert run_in_reads(VALID_WIRE, FRAME_EDGES, reuse_buffer=True) == REFERENCE


def test_one_byte_reads_give_the_same_outcomes() -> None:
    cuts = list(range(1, len(VALID_WIRE)))
    assert run_in_reads(VALID_WIRE, cuts, reuse_buffer=True) == REFERENCE


def full_frames_wire() -> bytes:
    """One call's reply in DATA frames of the largest size, 16 KiB."""
    server = ServerPeer()
    body = encode_message(bytes(range(256)) * 117) * 2  # 59,914 bytes: four frames
    return b"".join(
        [server.settings(), server.headers(1, OK_HEADERS), server.data(1, body), server.trailers(1)]
    )


FULL_FRAMES_WIRE = full_frames_wire()
FULL_FRAMES_REFERENCE = run_in_reads(FULL_FRAMES_WIRE, [], reuse_buffer=False, calls_made=1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(FULL_FRAMES_WIRE)), max_size=6), st.booleans())
def test_reads_longer_than_a_frame_complete_the_frame_they_cut(
    cuts: list[int], reuse: bool
) -> None:
    # A frame cut by one read is completed from the head of the next, longer read, whose rest
    # is read where it lies.
    assert FULL_FRAMES_REFERENCE[0][0][2] == [bytes(range(256)) * 117] * 2
    outcome = run_in_reads(FULL_FRAMES_WIRE, cuts, reuse_buffer=reuse, calls_made=1)
    assert outcome == FULL_FRAMES_REFERENCE
