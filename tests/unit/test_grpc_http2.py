"""The HTTP/2 layer under GrpcProtocol: frames h2 used to handle for us (CONTINUATION,
padding, priority, PING, SETTINGS, WINDOW_UPDATE limits, protocol violations) and HPACK in
both directions, against a server scripted with hyperframe/hpack."""

from __future__ import annotations

import struct

import hpack
import pytest
from grpc_support import OK_HEADERS, TEMPLATE, ServerPeer, connect, raw, start
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.http2 import HeaderDecoder, encode_header_list
from puregrpc_etcd.grpc.protocol import GrpcProtocol

FLOW_CONTROL_ERROR, PROTOCOL_ERROR = 0x3, 0x1


def encoded(server: ServerPeer, headers: list[tuple[str, str]]) -> bytes:
    return server._encoder.encode(headers)


def test_response_headers_split_over_continuation_frames() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    block = encoded(server, [*OK_HEADERS, ("x-long", "v" * 300)])
    pieces = [block[:10], block[10:200], block[200:]]
    wire = HeadersFrame(1, pieces[0]).serialize()
    wire += ContinuationFrame(1, pieces[1]).serialize()
    wire += ContinuationFrame(1, pieces[2], flags=["END_HEADERS"]).serialize()
    protocol.receive_data(wire + server.data(1, encode_message(b"r")) + server.trailers(1))
    assert call.code is StatusCode.OK
    assert call.initial_metadata == (("x-long", "v" * 300),)
    assert protocol.consume(call) == b"r"


def test_a_header_block_interrupted_by_another_frame_fails_the_connection() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    block = encoded(server, OK_HEADERS)
    protocol.receive_data(HeadersFrame(1, block[:1]).serialize() + server.ping_ack(b"8" * 8))
    assert protocol.failure is not None
    assert call.code is StatusCode.UNAVAILABLE


def test_padded_and_prioritised_headers() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    frame = HeadersFrame(
        1, encoded(server, OK_HEADERS), flags=["END_HEADERS", "PADDED", "PRIORITY"]
    )
    frame.pad_length = 7
    frame.depends_on, frame.stream_weight = 0, 15
    protocol.receive_data(frame.serialize() + server.data(1, encode_message(b"p"), pad=3))
    protocol.receive_data(server.trailers(1))
    assert call.code is StatusCode.OK
    assert protocol.consume(call) == b"p"


def test_informational_headers_are_skipped() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, [(":status", "100")]) + server.reply(1, b"ok"))
    assert call.code is StatusCode.OK
    assert protocol.consume(call) == b"ok"


def test_ping_priority_and_unknown_frames() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    unknown = raw(0xEE, 0, 1, b"abc")
    ping = PingFrame(0, opaque_data=b"abcdefgh").serialize()
    protocol.receive_data(PriorityFrame(1).serialize() + unknown + ping + server.reply(1, b"k"))
    assert protocol.failure is None
    assert call.code is StatusCode.OK
    answers = server.parse(protocol.data_to_send())
    assert [(f.opaque_data, f.flags) for f in answers if isinstance(f, PingFrame)] == [
        (b"abcdefgh", {"ACK"})
    ]


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (DataFrame(1, b"x" * 16385).serialize(), "a frame above our max frame size"),
        (PushPromiseFrame(1, promised_stream_id=2, data=b"").serialize(), "push is disabled"),
        (DataFrame(1, encode_message(b"x")).serialize(), "DATA before HEADERS"),
        (SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 100}).serialize(), "bad size"),
        (
            SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31}).serialize(),
            "window above 2^31-1",
        ),
        (raw(0x8, 0, 0, struct.pack(">I", 2**31 - 1)), "connection window overflow"),
        (HeadersFrame(2, b"\x88", flags=["END_HEADERS"]).serialize(), "a stream never opened"),
        (raw(0x6, 0, 1, b"12345678"), "PING on a stream"),
    ],
)
def test_protocol_violations_fail_the_connection_with_goaway(wire: bytes, why: str) -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(wire)
    assert protocol.failure is not None, why
    assert call.code is StatusCode.UNAVAILABLE
    assert "GoAwayFrame" in [type(f).__name__ for f in server.parse(protocol.data_to_send())]


def test_trailers_without_end_stream_fail_the_connection() -> None:
    server = ServerPeer()
    protocol = connect(server)
    start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.headers(1, [("grpc-status", "0")]))
    assert protocol.failure is not None


def test_zero_or_overflowing_stream_window_update_resets_only_that_call() -> None:
    server = ServerPeer()
    protocol = connect(server)
    zero, overflow, fine = start(protocol), start(protocol), start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.window_update(1, 0) + server.window_update(3, 2**31 - 1))
    codes = {f.stream_id: f.error_code for f in server.parse(protocol.data_to_send())
             if isinstance(f, RstStreamFrame)}  # fmt: skip
    assert codes == {1: PROTOCOL_ERROR, 3: FLOW_CONTROL_ERROR}
    assert zero.code is StatusCode.INTERNAL
    assert overflow.code is StatusCode.INTERNAL
    protocol.receive_data(server.reply(5, b"f"))
    assert fine.code is StatusCode.OK
    assert protocol.failure is None


def test_a_larger_max_frame_size_is_used_for_data() -> None:
    server = ServerPeer()
    protocol = connect(server, max_frame_size=32768, initial_window_size=1 << 20)
    protocol.receive_data(server.window_update(0, 1 << 20))
    call = start(protocol, payload=None)
    payload = encode_message(b"m" * 40000)
    assert protocol.send_data(call, memoryview(payload), end_stream=True) == len(payload)
    frames = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, DataFrame)]
    assert [len(f.data) for f in frames] == [32768, len(payload) - 32768]


def test_frames_for_a_stream_we_reset_are_ignored_and_their_data_credited() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    server.parse(protocol.data_to_send())
    protocol.cancel_call(call, call.error or _cancelled())
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.reply(1, b"late") + server.rst(1, 0x8))
    assert protocol.failure is None
    assert protocol._credit == len(encode_message(b"late"))


def _cancelled() -> object:
    from puregrpc_etcd.grpc import RpcError

    return RpcError(StatusCode.CANCELLED, "bye")


def test_large_request_metadata_goes_out_in_continuation_frames() -> None:
    server = ServerPeer()
    protocol = connect(server)
    big = [(b"x-big", b"b" * 40000)]
    protocol.start_call(CallState(1024), TEMPLATE.build("/pkg.Svc/Do", None, big), end_stream=True)
    wire = protocol.data_to_send()
    frames = []
    while wire:
        frame, length = Frame.parse_frame_header(memoryview(wire[:9]))
        frame.parse_body(memoryview(wire[9 : 9 + length]))
        frames.append(frame)
        wire = wire[9 + length :]
    assert [type(f).__name__ for f in frames] == [
        "HeadersFrame", "ContinuationFrame", "ContinuationFrame",
    ]  # fmt: skip
    assert frames[0].flags == {"END_STREAM"}
    assert frames[-1].flags == {"END_HEADERS"}
    decoded = dict(hpack.Decoder().decode(b"".join(f.data for f in frames), raw=True))
    assert decoded[b"x-big"] == b"b" * 40000


headers_lists = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["content-type", "grpc-status", "grpc-message", "x-a", "x-b"]),
            st.text(alphabet="abc012 ", max_size=30),
        ),
        max_size=5,
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(blocks=headers_lists, table_size=st.sampled_from([4096, 64, 0]))
def test_cached_decoding_equals_plain_hpack_decoding(
    blocks: list[list[tuple[str, str]]], table_size: int
) -> None:
    # A server encoder that indexes, evicts and resizes its table; repeated header lists
    # become all-indexed blocks, which the decoder answers from its cache.
    encoder = hpack.Encoder()
    encoder.header_table_size = table_size
    reference = hpack.Decoder()
    ours = HeaderDecoder(64 * 1024)
    for headers in blocks + blocks[::-1]:
        block = encoder.encode([(":status", "200"), *headers])
        expected = [(bytes(n), bytes(v)) for n, v in reference.decode(block, raw=True)]
        assert list(ours.decode(block)) == expected


@settings(max_examples=150, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from([b":method", b":path", b"user-agent", b"content-type", b"x-k"]),
            st.binary(max_size=200),
        ),
        max_size=8,
    ),
    never=st.booleans(),
)
def test_request_blocks_decode_to_the_headers_given(
    headers: list[tuple[bytes, bytes]], never: bool
) -> None:
    pairs = [hpack.NeverIndexedHeaderTuple(n, v) if never else (n, v) for n, v in headers]
    decoded = hpack.Decoder().decode(encode_header_list(pairs), raw=True)
    assert [(bytes(n), bytes(v)) for n, v in decoded] == headers


def test_the_first_request_block_empties_the_servers_table_view() -> None:
    protocol = GrpcProtocol(max_receive_message_size=1024)
    protocol.initiate()
    protocol.data_to_send()
    protocol.start_call(CallState(1024), b"\x83", end_stream=True)
    protocol.start_call(CallState(1024), b"\x83", end_stream=True)
    wire = protocol.data_to_send()
    assert wire[9:11] == b"\x20\x83"  # a table size update to 0, once
    assert wire[20:] == b"\x83"
