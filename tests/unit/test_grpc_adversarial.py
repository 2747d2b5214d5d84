"""Legal-but-unusual and hostile server behaviour against our own HTTP/2 framing (RFC 9113,
RFC 7541, grpc doc/PROTOCOL-HTTP2.md): HPACK corners, CONTINUATION, padding, settings and
flow-control edges, stream-state violations, then fuzzing of the frame parser."""

from __future__ import annotations

import math
import struct

import pytest
import trio
import trio.testing
from grpc_support import (
    OK_BLOCK,
    OK_HEADERS,
    TEMPLATE,
    ServerPeer,
    assert_connection_error,
    connect,
    goaway_code,
    hp_indexed,
    hp_int,
    hp_str,
    opened,
    raw,
    start,
    u32,
)
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from puregrpc_etcd.grpc import RpcError, StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.connection import Connection, ConnectionUnusable
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.protocol import GrpcProtocol

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x0, 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, COMPRESSION_ERROR, INTERNAL_ERROR = 0x6, 0x9, 0x2
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7
WINDOW_UPDATE, CONTINUATION = 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_WINDOW = 2**31 - 1


# -- wire builders that do not depend on the code under test -----------------------------------


def hp_incremental(name: bytes, value: bytes) -> bytes:
    """A literal with incremental indexing and a new name: it enters the dynamic table."""
    return b"\x40" + hp_str(name) + hp_str(value)


def hp_plain(name: bytes, value: bytes) -> bytes:
    """A literal without indexing: the dynamic table does not change."""
    return b"\x00" + hp_str(name) + hp_str(value)


def hp_size_update(size: int) -> bytes:
    return hp_int(size, 5, 0x20)


def settings_payload(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", key, value) for key, value in pairs)


def resets(server: ServerPeer, protocol: GrpcProtocol) -> dict[int, int]:
    return {f.stream_id: f.error_code for f in server.parse(protocol.data_to_send())
            if isinstance(f, RstStreamFrame)}  # fmt: skip


# -- HPACK (RFC 7541) ----------------------------------------------------------------------------


def test_dynamic_table_entries_and_huffman_are_decoded_across_responses() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 3)
    # Values are octets: a non-ASCII one reads back byte for byte (as latin-1).
    headers: list[tuple[str, str | bytes]] = [
        *OK_HEADERS,
        ("x-id", "séance".encode()),
        ("x-n", "1"),
    ]
    wire = []
    for stream_id in (1, 3, 5):
        block = server._encoder.encode(headers, huffman=True)
        wire.append(HeadersFrame(stream_id, block, flags=["END_HEADERS"]).serialize())
        trailers = [("grpc-status", "3"), ("grpc-message", "bad%20arg"), ("x-t", "t" * 40)]
        wire.append(
            HeadersFrame(
                stream_id,
                server._encoder.encode(trailers, huffman=True),
                flags=["END_HEADERS", "END_STREAM"],
            ).serialize()
        )
    # After the first response every block is a run of dynamic-table references.
    assert len(wire[2]) == 9 + 4
    protocol.receive_data(b"".join(wire))
    for call in calls:
        assert call.code is StatusCode.INVALID_ARGUMENT
        assert call.details == "bad arg"
        assert call.initial_metadata == (
            ("x-id", "séance".encode().decode("latin-1")),
            ("x-n", "1"),
        )
        assert call.error is not None
        assert call.error.trailing_metadata == (("x-t", "t" * 40),)
    assert protocol.failure is None


def test_an_all_indexed_block_is_decoded_again_after_the_table_changed() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 3)
    indexed = hp_indexed(8) + hp_indexed(62) + hp_indexed(63)  # the same bytes, twice
    grpc_ok = hp_plain(b"grpc-status", b"0")
    first = hp_incremental(b"x-v", b"one") + hp_incremental(b"content-type", b"application/grpc")
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 1, hp_indexed(8) + first)
        + raw(HEADERS, END_HEADERS | END_STREAM, 1, grpc_ok)
    )
    protocol.receive_data(raw(HEADERS, END_HEADERS, 3, indexed))
    assert calls[1].initial_metadata == (("x-v", "one"),)
    # The trailers of stream 3 insert x-v: two at 62; content-type moves to 63.
    protocol.receive_data(
        raw(HEADERS, END_HEADERS | END_STREAM, 3, hp_incremental(b"x-v", b"two") + grpc_ok)
    )
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 5, indexed) + raw(HEADERS, END_HEADERS | END_STREAM, 5, grpc_ok)
    )
    assert calls[2].initial_metadata == (("x-v", "two"),)
    assert [call.code for call in calls] == [StatusCode.OK] * 3
    assert protocol.failure is None


def test_the_same_indexed_block_means_new_headers_after_eviction() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    status_ok = hp_incremental(b"grpc-status", b"0")
    status_bad = hp_incremental(b"grpc-status", b"5")
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 1, OK_BLOCK)
        + raw(HEADERS, END_HEADERS | END_STREAM, 1, status_ok)
    )
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 3, OK_BLOCK)
        + raw(HEADERS, END_HEADERS | END_STREAM, 3, hp_indexed(62))
    )
    assert [call.code for call in calls] == [StatusCode.OK, StatusCode.OK]
    more = [start(protocol) for _ in range(2)]
    server.parse(protocol.data_to_send())
    # Emptying the table, then a new entry at 62: the same one-byte block now says NOT_FOUND.
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 5, hp_size_update(0) + hp_size_update(4096) + OK_BLOCK)
        + raw(HEADERS, END_HEADERS | END_STREAM, 5, status_bad)
    )
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 7, OK_BLOCK)
        + raw(HEADERS, END_HEADERS | END_STREAM, 7, hp_indexed(62))
    )
    assert [call.code for call in more] == [StatusCode.NOT_FOUND, StatusCode.NOT_FOUND]


def test_header_blocks_on_streams_we_reset_still_update_the_table() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.cancel_call(calls[0], _cancelled())
    server.parse(protocol.data_to_send())
    # The late response to the reset stream adds x-late; stream 3 relies on it.
    block = hp_indexed(8) + hp_incremental(b"content-type", b"application/grpc")
    late = raw(HEADERS, 0, 1, block[:3]) + raw(
        CONTINUATION, END_HEADERS, 1, block[3:] + hp_incremental(b"x-late", b"v")
    )
    protocol.receive_data(
        late
        + raw(HEADERS, END_HEADERS, 3, hp_indexed(8) + hp_indexed(63) + hp_indexed(62))
        + server.trailers(3)
    )
    assert protocol.failure is None
    assert calls[1].code is StatusCode.OK
    assert calls[1].initial_metadata == (("x-late", "v"),)


def test_a_table_size_update_to_zero_evicts_everything() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 1, OK_BLOCK + hp_incremental(b"x-a", b"1")) + server.trailers(1)
    )
    assert calls[0].code is StatusCode.OK
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, 3, hp_size_update(0) + OK_BLOCK + hp_indexed(62))
    )
    assert_connection_error(server, protocol, [calls[1]], COMPRESSION_ERROR)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (OK_BLOCK + hp_size_update(0), "size update after a field (RFC 7541 4.2)"),
        (hp_size_update(4097) + OK_BLOCK, "above our SETTINGS_HEADER_TABLE_SIZE of 4096"),
        (OK_BLOCK + hp_indexed(62), "index past the end of an empty table"),
        (OK_BLOCK + b"\x80", "index 0"),
        (OK_BLOCK + b"\x00\x83abc", "truncated literal"),
        (OK_BLOCK + b"\x00\x81\xff\x01a", "invalid Huffman (EOS padding)"),
        (OK_BLOCK + b"\x00\x7f\xff\xff\xff\xff\xff\xff\xff\x7f", "absurd string length"),
    ],
)
def test_undecodable_header_blocks_are_compression_errors(block: bytes, why: str) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(raw(HEADERS, END_HEADERS, 1, block))
    assert why
    assert_connection_error(server, protocol, calls, COMPRESSION_ERROR)


def test_several_size_updates_at_the_start_of_a_block_are_legal() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = hp_size_update(0) + hp_size_update(100) + hp_size_update(4096) + OK_BLOCK
    protocol.receive_data(raw(HEADERS, END_HEADERS, 1, block) + server.trailers(1))
    assert protocol.failure is None
    assert calls[0].code is StatusCode.OK


def test_an_oversized_header_list_fails_the_connection() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    # 70 KiB of headers (we advertised a 64 KiB list), in legal CONTINUATION frames.
    block = OK_BLOCK + b"".join(hp_plain(b"x-%d" % n, b"v" * 1000) for n in range(70))
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    wire = raw(HEADERS, 0, 1, pieces[0]) + b"".join(
        raw(CONTINUATION, END_HEADERS if n == len(pieces) - 1 else 0, 1, piece)
        for n, piece in enumerate(pieces[1:], 1)
    )
    protocol.receive_data(wire)
    assert protocol.failure is not None
    assert calls[0].code is StatusCode.UNAVAILABLE


# -- CONTINUATION and header-block atomicity (RFC 9113 4.3, 6.10) -------------------------------


def test_a_block_split_into_one_byte_and_empty_continuations() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode([*OK_HEADERS, ("x-k", "v" * 20)])
    wire = raw(HEADERS, 0, 1, b"")
    for byte in block:
        wire += raw(CONTINUATION, 0, 1, bytes((byte,))) + raw(CONTINUATION, 0, 1, b"")
    wire += raw(CONTINUATION, END_HEADERS, 1, b"")
    protocol.receive_data(wire + server.data(1, encode_message(b"m")) + server.trailers(1))
    assert calls[0].code is StatusCode.OK
    assert calls[0].initial_metadata == (("x-k", "v" * 20),)
    assert protocol.consume(calls[0]) == b"m"


def test_trailers_split_over_continuations_end_the_stream_from_the_headers_flag() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode([("grpc-status", "7"), ("grpc-message", "no")])
    # END_STREAM travels on HEADERS; CONTINUATION has no such flag (0x1 is unused there).
    wire = raw(HEADERS, END_STREAM, 1, block[:2]) + raw(CONTINUATION, END_HEADERS, 1, block[2:])
    protocol.receive_data(server.headers(1, OK_HEADERS) + wire)
    assert calls[0].code is StatusCode.PERMISSION_DENIED
    assert calls[0].details == "no"
    assert calls[0].released


def test_an_unused_end_stream_bit_on_continuation_is_ignored() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode(OK_HEADERS)
    wire = raw(HEADERS, 0, 1, block[:1]) + raw(CONTINUATION, END_HEADERS | 0x1 | 0xF2, 1, block[1:])
    protocol.receive_data(wire)
    assert calls[0].code is None
    protocol.receive_data(server.data(1, encode_message(b"later")) + server.trailers(1))
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == b"later"


@pytest.mark.parametrize(
    ("intruder", "why"),
    [
        (raw(CONTINUATION, END_HEADERS, 3, b"\x88"), "CONTINUATION of another stream"),
        (raw(DATA, 0, 3, b""), "DATA of another stream"),
        (raw(DATA, 0, 1, b""), "DATA of the same stream"),
        (raw(HEADERS, END_HEADERS, 1, b"\x88"), "a second HEADERS"),
        (raw(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"), "PRIORITY"),
        (raw(SETTINGS, ACK, 0, b""), "SETTINGS ACK"),
        (raw(WINDOW_UPDATE, 0, 0, u32(1)), "WINDOW_UPDATE"),
        (raw(0xBB, 0, 0, b"ext"), "an extension frame (RFC 9113 5.5)"),
    ],
)
def test_anything_inside_a_header_block_is_a_connection_error(intruder: bytes, why: str) -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    block = server._encoder.encode(OK_HEADERS)
    protocol.receive_data(
        raw(HEADERS, 0, 1, block[:1]) + intruder + raw(CONTINUATION, END_HEADERS, 1, block[1:])
    )
    assert why
    assert_connection_error(server, protocol, calls, PROTOCOL_ERROR)


@pytest.mark.parametrize("stream_id", [1, 0])
def test_continuation_without_a_header_block_is_a_connection_error(stream_id: int) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + raw(CONTINUATION, END_HEADERS, stream_id, b"\x88")
    )
    assert_connection_error(server, protocol, calls, PROTOCOL_ERROR)


def test_a_header_block_cut_by_the_socket_is_resumed() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode([*OK_HEADERS, ("x-a", "b")])
    wire = raw(HEADERS, 0, 1, block[:4]) + raw(CONTINUATION, END_HEADERS, 1, block[4:])
    for index in range(len(wire)):  # one byte per read
        protocol.receive_data(wire[index : index + 1])
    assert calls[0].initial_metadata == (("x-a", "b"),)
    assert protocol.failure is None


# -- padding (RFC 9113 6.1, 6.2) -----------------------------------------------------------------


def padded(pad: int, body: bytes) -> bytes:
    return bytes((pad,)) + body + b"\x00" * pad


def test_padded_headers_data_and_trailers_with_extreme_pad_lengths() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode(OK_HEADERS)
    priority = u32(0x80000000) + b"\xff"  # exclusive on stream 0, weight 256
    wire = raw(
        HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG | 0x10, 1, bytes((0,)) + priority + block
    )
    wire += raw(DATA, PADDED, 1, padded(255, b""))  # nothing but padding
    wire += raw(DATA, PADDED, 1, padded(0, encode_message(b"a")))
    wire += raw(DATA, PADDED, 1, padded(255, encode_message(b"b")))
    wire += raw(
        HEADERS,
        END_HEADERS | END_STREAM | PADDED,
        1,
        padded(200, server._encoder.encode([("grpc-status", "0")])),
    )
    protocol.receive_data(wire)
    assert calls[0].code is StatusCode.OK
    assert [protocol.consume(calls[0]), protocol.consume(calls[0])] == [b"a", b"b"]
    assert protocol.failure is None


def test_padding_only_frames_cost_window_and_are_credited_back() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(server.headers(1, OK_HEADERS))
    server.parse(protocol.data_to_send())
    # 200 frames of 256 flow-controlled bytes each: 51200 of the 64 KiB stream window.
    protocol.receive_data(raw(DATA, PADDED, 1, padded(255, b"")) * 200)
    credited = sum(
        f.window_increment
        for f in server.parse(protocol.data_to_send())
        if isinstance(f, WindowUpdateFrame) and f.stream_id == 1
    )
    assert 32 * 1024 <= credited <= 200 * 256
    assert calls[0].code is None
    assert protocol.failure is None


@pytest.mark.parametrize(
    ("frame_type", "flags", "payload"),
    [
        (DATA, PADDED, b""),  # no room for the pad length
        (DATA, PADDED, b"\x01"),  # pad length = payload length
        (DATA, PADDED, b"\x05abc"),
        (HEADERS, PADDED | END_HEADERS, b"\x03\x88\x00"),
        (HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS, b"\x02\x00\x00\x00\x00\x10\x88"),
        (HEADERS, PRIORITY_FLAG | END_HEADERS, b"\x00\x00\x00"),  # shorter than its priority
    ],
)
def test_padding_beyond_the_payload_is_a_protocol_error(
    frame_type: int, flags: int, payload: bytes
) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    if frame_type == DATA:
        protocol.receive_data(server.headers(1, OK_HEADERS))
    protocol.receive_data(raw(frame_type, flags, 1, payload))
    assert goaway_code(server, protocol) in (PROTOCOL_ERROR, FRAME_SIZE_ERROR)
    assert calls[0].code is StatusCode.UNAVAILABLE


# -- frames to ignore: PRIORITY, unknown types and settings, unused flags, reserved bits ---------


def test_priority_on_any_stream_state_and_unknown_frames_are_ignored() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.cancel_call(calls[0], _cancelled())  # stream 1 closed by us
    server.parse(protocol.data_to_send())
    priority = u32(1) + b"\x10"
    wire = (
        raw(PRIORITY, 0, 3, priority)
        + raw(PRIORITY, 0, 1, priority)
        + raw(PRIORITY, 0, 41, priority)  # idle: PRIORITY is the one frame allowed there
        + raw(0x0A, 0xFF, 0, b"x" * 16384)
        + raw(0xFF, 0, 3, b"")
        + raw(0x10, 0, 77, b"?")
        + raw(0x0C, 0, 0, b"\x00\x00\x00\x01\x00\x00\x00\x00")
    )  # PRIORITY_UPDATE (9218)
    protocol.receive_data(wire + server.reply(3, b"k"))
    assert protocol.failure is None
    assert calls[1].code is StatusCode.OK
    assert protocol.consume(calls[1]) == b"k"


def test_unknown_settings_and_unused_flags_are_ignored_and_acknowledged() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    unknown = settings_payload((0x7, 5), (0x8, 1), (0x9, 1), (0xFFFF, 2**32 - 1), (0x0, 9))
    protocol.receive_data(raw(SETTINGS, 0xFE, 0, unknown))  # 0xFE: every flag but ACK
    assert [
        set(f.flags) for f in server.parse(protocol.data_to_send()) if isinstance(f, SettingsFrame)
    ] == [{"ACK"}]
    wire = (
        raw(PING, 0xFE, 0, b"pingpong")
        + raw(HEADERS, END_HEADERS | 0xD2, 1, server._encoder.encode(OK_HEADERS))
        + raw(DATA, 0xF6, 1, encode_message(b"d"))
        + raw(WINDOW_UPDATE, 0xFF, 1, u32(10))
        + raw(
            HEADERS,
            END_HEADERS | END_STREAM | 0xC2,
            1,
            server._encoder.encode([("grpc-status", "0")]),
        )
    )
    protocol.receive_data(wire)
    assert protocol.failure is None
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == b"d"
    pings = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, PingFrame)]
    assert [(set(f.flags), f.opaque_data) for f in pings] == [({"ACK"}, b"pingpong")]


def test_the_reserved_stream_id_bit_is_ignored() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode(OK_HEADERS)
    reserved = 0x80000000
    protocol.receive_data(
        raw(HEADERS, END_HEADERS, reserved | 1, block)
        + raw(DATA, 0, reserved | 1, encode_message(b"r"))
        + raw(WINDOW_UPDATE, 0, reserved | 1, u32(reserved | 5))
        + raw(
            HEADERS,
            END_HEADERS | END_STREAM,
            reserved | 1,
            server._encoder.encode([("grpc-status", "0")]),
        )
    )
    assert protocol.failure is None
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == b"r"


def test_priority_on_stream_zero_is_a_connection_error() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(raw(PRIORITY, 0, 0, u32(1) + b"\x10"))
    assert_connection_error(server, protocol, calls, PROTOCOL_ERROR)


@pytest.mark.parametrize("payload", [b"", u32(3), u32(3) + b"\x10\x00"])
def test_a_priority_frame_of_the_wrong_length_is_a_frame_size_error(payload: bytes) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(raw(PRIORITY, 0, 1, payload))
    # A stream error (RST_STREAM) or, as RFC 9113 5.4.1 allows, a connection error.
    out = server.parse(protocol.data_to_send())
    codes = [f.error_code for f in out if isinstance(f, (RstStreamFrame, GoAwayFrame))]
    assert codes == [FRAME_SIZE_ERROR]
    assert calls[0].code is not None


@pytest.mark.parametrize("value", [1, 2, 2**32 - 1])
def test_a_server_enable_push_other_than_zero_is_a_connection_error(value: int) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(raw(SETTINGS, 0, 0, settings_payload((0x2, value))))
    assert_connection_error(server, protocol, calls, PROTOCOL_ERROR)


def test_enable_push_zero_from_the_server_is_fine() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(raw(SETTINGS, 0, 0, settings_payload((0x2, 0))) + server.reply(1))
    assert protocol.failure is None
    assert calls[0].code is StatusCode.OK


@pytest.mark.parametrize(
    ("wire", "error_code"),
    [
        (raw(SETTINGS, 0, 0, b"\x00\x04\x00\x00"), FRAME_SIZE_ERROR),
        (raw(SETTINGS, ACK, 0, settings_payload((0x4, 1))), FRAME_SIZE_ERROR),
        (raw(SETTINGS, 0, 1, b""), PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, settings_payload((0x5, 2**24))), PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, settings_payload((0x5, 16383))), PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, settings_payload((0x4, 2**31))), FLOW_CONTROL_ERROR),
        (raw(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
        (raw(PING, ACK, 0, b"123456789"), FRAME_SIZE_ERROR),
        (raw(PING, 0, 3, b"12345678"), PROTOCOL_ERROR),
        (raw(GOAWAY, 0, 0, b"\x00" * 7), FRAME_SIZE_ERROR),
        (raw(GOAWAY, 0, 1, b"\x00" * 8), PROTOCOL_ERROR),
        (raw(RST_STREAM, 0, 1, b"\x00" * 5), FRAME_SIZE_ERROR),
        (raw(RST_STREAM, 0, 0, u32(0)), PROTOCOL_ERROR),
        (raw(RST_STREAM, 0, 3, u32(0)), PROTOCOL_ERROR),  # idle: never opened
        (raw(RST_STREAM, 0, 2, u32(0)), PROTOCOL_ERROR),  # even: servers cannot push here
        (raw(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), FRAME_SIZE_ERROR),
        (raw(WINDOW_UPDATE, 0, 1, b"\x00\x00\x00\x01\x00"), FRAME_SIZE_ERROR),
        (raw(WINDOW_UPDATE, 0, 0, u32(0)), PROTOCOL_ERROR),
        (raw(WINDOW_UPDATE, 0, 7, u32(1)), PROTOCOL_ERROR),  # idle
        (raw(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
        (raw(HEADERS, END_HEADERS, 0, b"\x88"), PROTOCOL_ERROR),
        (raw(HEADERS, END_HEADERS, 4, b"\x88"), PROTOCOL_ERROR),
        (raw(0x5, END_HEADERS, 1, u32(2) + b"\x88"), PROTOCOL_ERROR),  # PUSH_PROMISE
    ],
)
def test_malformed_control_frames_end_the_connection_with_the_rfc_error_code(
    wire: bytes, error_code: int
) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(wire)
    assert_connection_error(server, protocol, calls, error_code)


# -- flow control and settings changes (RFC 9113 6.5.2, 6.9) ------------------------------------


def test_initial_window_lowered_mid_transfer_goes_negative_then_recovers() -> None:
    server = ServerPeer()
    protocol = connect(server, initial_window_size=100)
    call = start(protocol, payload=None)
    body = memoryview(bytes(range(200)))
    assert protocol.send_data(call, body, end_stream=True) == 100
    protocol.send_blocked.add(call)
    protocol.receive_data(server.settings(initial_window_size=10))  # window 10 - 100 = -90
    assert call in protocol.changed
    assert call.send_window == -90
    assert protocol.send_data(call, body[100:], end_stream=True) == 0
    protocol.receive_data(server.window_update(1, 90))  # exactly 0: still nothing may go
    assert protocol.send_data(call, body[100:], end_stream=True) == 0
    protocol.receive_data(server.window_update(1, MAX_WINDOW))  # legal: -0 + 2^31-1
    assert protocol.failure is None
    assert call.code is None
    assert protocol.send_data(call, body[100:], end_stream=True) == 100
    assert call.local_closed
    sent = b"".join(
        f.data for f in server.parse(protocol.data_to_send()) if isinstance(f, DataFrame)
    )
    assert sent == bytes(body)


def test_settings_are_applied_in_order_within_one_frame() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    protocol.receive_data(raw(SETTINGS, 0, 0, settings_payload((0x4, 5), (0x4, 1000), (0x4, 7))))
    assert call.send_window == 7
    assert protocol.send_data(call, memoryview(b"z" * 50), end_stream=False) == 7


def test_initial_window_size_never_changes_the_connection_window() -> None:
    server = ServerPeer()
    protocol = connect(server)
    first, second = start(protocol, payload=None), start(protocol, payload=None)
    assert protocol.send_data(first, memoryview(b"a" * 65535), end_stream=False) == 65535
    protocol.receive_data(server.settings(initial_window_size=1 << 20))
    assert second.send_window == 1 << 20
    assert protocol.send_data(second, memoryview(b"b" * 10), end_stream=False) == 0
    protocol.receive_data(server.window_update(0, 4))
    assert protocol.send_data(second, memoryview(b"b" * 10), end_stream=False) == 4


def test_initial_window_raise_that_overflows_a_stream_is_a_flow_control_error() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    protocol.receive_data(server.window_update(1, MAX_WINDOW - 65535))  # exactly the maximum
    assert protocol.failure is None
    protocol.receive_data(server.settings(initial_window_size=65536))
    assert_connection_error(server, protocol, [call], FLOW_CONTROL_ERROR)


def test_a_connection_window_overflow_is_a_flow_control_error() -> None:
    server = ServerPeer()
    protocol = connect(server)
    calls = [start(protocol, payload=None)]
    protocol.receive_data(server.window_update(0, MAX_WINDOW - 65535))
    assert protocol.failure is None
    protocol.receive_data(server.window_update(0, 1))
    assert_connection_error(server, protocol, calls, FLOW_CONTROL_ERROR)


def test_window_updates_for_closed_streams_are_not_errors() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(
        server.reply(1) + server.window_update(1, 100) + server.window_update(1, MAX_WINDOW)
    )
    assert calls[0].code is StatusCode.OK
    assert protocol.failure is None


@pytest.mark.parametrize("max_frame_size", [16384, 16385, 65536, 2**24 - 1])
def test_data_frames_respect_every_legal_max_frame_size(max_frame_size: int) -> None:
    server = ServerPeer()
    protocol = connect(server, max_frame_size=max_frame_size, initial_window_size=MAX_WINDOW)
    protocol.receive_data(server.window_update(0, MAX_WINDOW - 65535))
    call = start(protocol, payload=None)
    body = b"q" * (max_frame_size * 2 + 3 if max_frame_size < 2**20 else 3 * 2**20)
    assert protocol.send_data(call, memoryview(body), end_stream=True) == len(body)
    frames = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, DataFrame)]
    assert all(len(f.data) <= max_frame_size for f in frames)
    assert b"".join(f.data for f in frames) == body
    assert ["END_STREAM" in f.flags for f in frames] == [False] * (len(frames) - 1) + [True]


def test_a_lowered_max_frame_size_applies_to_data_and_request_headers() -> None:
    server = ServerPeer()
    protocol = connect(server, max_frame_size=1 << 20, initial_window_size=1 << 20)
    protocol.receive_data(server.window_update(0, 1 << 20))
    protocol.receive_data(server.settings(max_frame_size=16384))
    call = CallState(1024)
    big = [(b"x-big", b"b" * 20000)]
    protocol.start_call(call, TEMPLATE.build("/pkg.Svc/Do", None, big))
    protocol.send_data(call, memoryview(b"d" * 40000), end_stream=True)
    out = protocol.data_to_send()
    sizes = []
    while out:
        length = int.from_bytes(out[:3], "big")
        sizes.append(length)
        out = out[9 + length :]
    assert max(sizes) <= 16384
    assert len(server.parse(protocol.data_to_send())) == 0


def test_max_concurrent_streams_lowered_below_the_open_streams() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 3)
    protocol.receive_data(server.settings(max_concurrent_streams=1))
    assert not protocol.has_free_slot
    assert protocol.free_slots == 0
    protocol.receive_data(server.reply(1) + server.reply(3))
    assert [call.code for call in calls[:2]] == [StatusCode.OK, StatusCode.OK]
    assert not protocol.has_free_slot  # still one open: the limit is reached
    protocol.receive_data(server.reply(5))
    assert protocol.has_free_slot
    protocol.receive_data(server.settings(max_concurrent_streams=0))
    assert not protocol.has_free_slot
    assert protocol.failure is None


def test_ping_is_answered_once_and_a_ping_ack_never_is() -> None:
    server = ServerPeer()
    protocol, _ = opened(server)
    protocol.receive_data(
        raw(PING, 0, 0, b"\x00" * 8) + raw(PING, ACK, 0, b"unasked!") + raw(PING, 0, 0, b"\xff" * 8)
    )
    pings = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, PingFrame)]
    assert [(set(f.flags), f.opaque_data) for f in pings] == [
        ({"ACK"}, b"\x00" * 8),
        ({"ACK"}, b"\xff" * 8),
    ]
    assert protocol.ping_acks == [b"unasked!"]
    assert protocol.failure is None


# -- stream states: GOAWAY, RST_STREAM, frames on closed streams --------------------------------


def test_goaway_mid_streams_with_error_code_and_binary_debug_data() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 5)
    debug = b"\xff\xfe shutting down \x00" + b"d" * 1000
    protocol.receive_data(raw(GOAWAY, 0, 0, u32(0x80000000 | 5) + u32(INTERNAL_ERROR) + debug))
    assert protocol.goaway_last_stream_id == 5
    late = [call.error for call in calls[3:]]
    assert all(e is not None and e.code is StatusCode.UNAVAILABLE and e.not_processed for e in late)
    assert "shutting down" in (late[0].details if late[0] else "")
    assert resets(server, protocol) == {7: 0x8, 9: 0x8}
    assert [call.code for call in calls[:3]] == [None] * 3
    protocol.receive_data(server.reply(1, b"a") + server.rst(3, 0x7) + server.reply(5, b"c"))
    assert [call.code for call in calls[:3]] == [
        StatusCode.OK,
        StatusCode.UNAVAILABLE,
        StatusCode.OK,
    ]
    assert protocol.drained
    assert protocol.failure is None


def test_a_server_reset_is_never_answered_with_a_reset() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)  # not half-closed
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.rst(1, INTERNAL_ERROR))
    assert call.code is StatusCode.INTERNAL
    assert resets(server, protocol) == {}
    protocol.end_stream(call)
    assert protocol.send_data(call, memoryview(b"x"), end_stream=True) == 1
    assert server.parse(protocol.data_to_send()) == []


def test_frames_after_our_reset_are_ignored_but_their_data_is_credited() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.cancel_call(calls[0], _cancelled())
    server.parse(protocol.data_to_send())
    payload = encode_message(b"x" * 16000)
    protocol.receive_data(
        (server.headers(1, OK_HEADERS) + server.data(1, payload)) * 1
        + server.data(1, payload, pad=100)
        + server.trailers(1)
        + server.rst(1, 0)
        + server.window_update(1, 5)
    )
    assert protocol.failure is None
    assert calls[0].code is StatusCode.CANCELLED
    assert protocol._credit == 2 * len(payload) + 101


def test_data_after_the_servers_end_stream_is_a_stream_closed_error() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(server.reply(1, b"done"))
    assert calls[0].code is StatusCode.OK
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.data(1, encode_message(b"zombie")))
    codes = [
        f.error_code
        for f in server.parse(protocol.data_to_send())
        if isinstance(f, (RstStreamFrame, GoAwayFrame))
    ]
    assert codes == [STREAM_CLOSED]


def test_impossible_padding_on_a_closed_stream_is_still_a_protocol_error() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.cancel_call(calls[0], _cancelled())
    server.parse(protocol.data_to_send())
    protocol.receive_data(raw(DATA, PADDED, 1, b"\x09abc"))
    assert_connection_error(server, protocol, [calls[1]], PROTOCOL_ERROR)


def test_data_after_the_servers_end_stream_changes_no_outcome() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.receive_data(
        server.reply(1, b"done")
        + server.data(1, encode_message(b"zombie"))
        + server.reply(3, b"next")
    )
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == b"done"
    assert protocol.consume(calls[0]) is None
    assert protocol.consume(calls[1]) == b"next"


# -- gRPC response semantics (PROTOCOL-HTTP2.md) -------------------------------------------------


def test_informational_responses_carry_no_metadata_into_the_call() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(
        server.headers(1, [(":status", "100")])
        + server.headers(1, [(":status", "103"), ("link", "</x>")])
        + server.headers(1, [*OK_HEADERS, ("x-real", "1")])
    )
    assert calls[0].initial_metadata == (("x-real", "1"),)
    protocol.receive_data(server.trailers(1))
    assert calls[0].code is StatusCode.OK


def test_an_informational_response_that_ends_the_stream_fails_the_call() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)
    protocol.receive_data(server.headers(1, [(":status", "100")], end=True) + server.reply(3))
    assert calls[0].code not in (None, StatusCode.OK)
    assert calls[0].released
    assert calls[1].code is StatusCode.OK


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([(":status", "200")], StatusCode.UNKNOWN),
        ([(":status", "200"), ("content-type", "application/json")], StatusCode.UNKNOWN),
        ([(":status", "200"), ("content-type", "application/grpc+proto")], StatusCode.OK),
        ([(":status", "200"), ("content-type", "application/grpc+json")], StatusCode.OK),
        ([("content-type", "application/grpc")], StatusCode.INTERNAL),
        ([(":status", "2x0"), ("content-type", "application/grpc")], StatusCode.INTERNAL),
        ([(":status", "429"), ("content-type", "application/grpc")], StatusCode.UNAVAILABLE),
    ],
)
def test_response_header_variants(headers: list[tuple[str, str]], code: StatusCode) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(server.headers(1, headers))
    if code is StatusCode.OK:
        protocol.receive_data(server.data(1, encode_message(b"p")) + server.trailers(1))
        assert protocol.consume(calls[0]) == b"p"
    else:
        # Not a gRPC response: the stream is reset at once, with PROTOCOL_ERROR.
        assert resets(server, protocol) == {1: PROTOCOL_ERROR}
    assert calls[0].code is code
    assert calls[0].released
    assert protocol.failure is None


@pytest.mark.parametrize(
    ("trailers", "acceptable"),
    [
        ([("grpc-message", "lost")], {StatusCode.INTERNAL}),
        ([("grpc-status", "0"), ("grpc-status", "13")], {StatusCode.OK, StatusCode.INTERNAL}),
        ([("grpc-status", "abc")], {StatusCode.UNKNOWN}),
        ([("grpc-status", "-1")], {StatusCode.UNKNOWN}),
        ([("grpc-status", "")], {StatusCode.UNKNOWN}),
        ([("grpc-status", "99999999999999999999")], {StatusCode.UNKNOWN}),
        ([("grpc-status", "٣")], {StatusCode.UNKNOWN}),  # a non-ASCII digit
        ([("grpc-status", "2"), ("grpc-message", "%ZZ%E2%82")], {StatusCode.UNKNOWN}),
    ],
)
def test_odd_trailers_give_a_synthesized_status(
    trailers: list[tuple[str, str]], acceptable: set[StatusCode]
) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode([(n.encode(), v.encode()) for n, v in trailers])
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + raw(HEADERS, END_HEADERS | END_STREAM, 1, block)
    )
    assert calls[0].code in acceptable
    assert calls[0].released
    assert protocol.failure is None


# -- frame size limits (RFC 9113 4.2) -----------------------------------------------------------


@pytest.mark.parametrize("frame_type", [DATA, HEADERS, CONTINUATION, PING, 0xEE])
def test_a_frame_above_our_max_frame_size_fails_as_soon_as_its_header_arrives(
    frame_type: int,
) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(struct.pack(">IBI", 16385 << 8 | frame_type, 0, 1))
    assert_connection_error(server, protocol, calls, FRAME_SIZE_ERROR)


def test_a_frame_of_exactly_our_max_frame_size_is_accepted() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    body = b"e" * (16384 - 5)
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + raw(DATA, 0, 1, encode_message(body)) + server.trailers(1)
    )
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == body


def _cancelled() -> RpcError:
    return RpcError(StatusCode.CANCELLED, "bye")


# -- the trio layer: hostile bytes must wake every parked task -----------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff" * 64,  # a frame header announcing 16 MiB
        raw(HEADERS, END_HEADERS, 1, b"\x80"),  # undecodable HPACK
        raw(HEADERS, 0, 1, b"\x88") + raw(DATA, 0, 1, b""),  # interrupted header block
        b"",  # the server just closes
    ],
)
async def test_hostile_bytes_wake_receivers_senders_and_slot_waiters(garbage: bytes) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    protocol = GrpcProtocol(max_receive_message_size=1 << 20, stream_window=65536)
    connection = Connection(client_end, protocol, endpoint="test", headers=TEMPLATE)
    server = ServerPeer()
    outcomes: dict[str, object] = {}

    async def receive(call: CallState) -> None:
        outcomes["receive"] = await connection.receive(call)

    async def send(call: CallState) -> None:
        await connection.send(call, encode_message(b"blocked"), end_stream=True)
        outcomes["send"] = call.code

    async def wait_for_slot() -> None:
        try:
            await connection.start_call(CallState(1024), "/pkg.Svc/Do", math.inf, b"")
        except ConnectionUnusable:
            outcomes["slot"] = "unusable"

    with trio.fail_after(10):
        await server_end.send_all(server.settings(max_concurrent_streams=1, initial_window_size=0))
        await connection.handshake()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            call = CallState(1 << 20)
            assert connection.try_start_call(call, "/pkg.Svc/Do", math.inf, b"")
            nursery.start_soon(receive, call)
            nursery.start_soon(send, call)
            nursery.start_soon(wait_for_slot)
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == {}
            if garbage:
                await server_end.send_all(garbage)
            else:
                await server_end.aclose()
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == {"receive": None, "send": StatusCode.UNAVAILABLE, "slot": "unusable"}
            assert call.code is StatusCode.UNAVAILABLE
        assert connection.closed
