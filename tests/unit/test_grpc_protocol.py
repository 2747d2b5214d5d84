"""The sans-IO protocol core against a server scripted frame by frame with hyperframe/hpack.

``ServerPeer`` (grpc_support.py) is also the server side of test_grpc_connection.py."""

from __future__ import annotations

import pytest
from grpc_support import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    OK_HEADERS,
    REFUSED_STREAM,
    ServerPeer,
    connect,
    start,
)
from hyperframe.frame import (
    DataFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from puregrpc_etcd.grpc import RpcError, StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.protocol import GrpcProtocol


def test_preface_settings_and_connection_window() -> None:
    server = ServerPeer()
    connect(server)
    settings = server.of_type(SettingsFrame)[0]
    assert settings.settings[SettingsFrame.ENABLE_PUSH] == 0
    assert settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 64 * 1024
    increments = [f.window_increment for f in server.of_type(WindowUpdateFrame, 0)]
    assert increments == [2**31 - 1 - 65535]
    assert server.of_type(SettingsFrame)[-1].flags == {"ACK"}


def test_unary_request_and_reply() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, timeout=2.0)
    frames = server.parse(protocol.data_to_send())
    headers, data = frames
    assert headers.decoded == {
        ":method": "POST",
        ":scheme": "http",
        ":path": "/pkg.Svc/Do",
        ":authority": "127.0.0.1:1",
        "grpc-timeout": "2000000u",
        "te": "trailers",
        "content-type": "application/grpc",
        "user-agent": "test/1",
    }
    assert "END_STREAM" not in headers.flags
    assert data.data == encode_message(b"req")
    assert "END_STREAM" in data.flags
    protocol.receive_data(server.reply(1, b"resp"))
    assert call.code is StatusCode.OK
    assert call.error is None
    assert protocol.consume(call) == b"resp"
    assert protocol.consume(call) is None
    assert call.released
    assert protocol.open_streams == 0
    assert call in protocol.changed


def test_trailers_only_error_with_percent_encoded_message_and_metadata() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(
        server.headers(
            1,
            [
                *OK_HEADERS,
                ("grpc-status", "5"),
                ("grpc-message", "no%20such%20key %E2%82%AC"),
                ("grpc-status-details-bin", "AQI"),
                ("x-info", "1"),
            ],
            end=True,
        )
    )
    assert call.code is StatusCode.NOT_FOUND
    assert call.error is not None
    assert call.error.details == "no such key €"
    assert call.error.trailing_metadata == (
        ("grpc-status-details-bin", b"\x01\x02"),
        ("x-info", "1"),
    )
    assert call.initial_metadata == ()
    assert call.released


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("503", StatusCode.UNAVAILABLE),
        ("404", StatusCode.UNIMPLEMENTED),
        ("500", StatusCode.UNKNOWN),
    ],
)
def test_non_200_status_is_mapped_and_the_stream_reset(status: str, code: StatusCode) -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, [(":status", status), ("content-type", "text/html")]))
    assert call.code is code
    assert status in call.details
    assert server.parse(protocol.data_to_send())[0].error_code != NO_ERROR


def test_wrong_content_type_is_unknown() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(
        server.headers(1, [(":status", "200"), ("content-type", "text/plain")], end=True)
    )
    assert call.code is StatusCode.UNKNOWN


def test_missing_grpc_status_and_missing_trailers_are_internal() -> None:
    server = ServerPeer()
    protocol = connect(server)
    first, second = start(protocol), start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.headers(1, [("x", "y")], end=True))
    protocol.receive_data(
        server.headers(3, OK_HEADERS) + server.data(3, encode_message(b"m"), end=True)
    )
    assert first.code is StatusCode.INTERNAL
    assert "grpc-status" in first.details
    assert second.code is StatusCode.INTERNAL
    assert "trailers" in second.details
    assert protocol.consume(second) == b"m"


def test_unknown_status_number_is_unknown() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.reply(1, status=42))
    assert call.code is StatusCode.UNKNOWN


@pytest.mark.parametrize(
    ("error_code", "code", "not_processed"),
    [
        (REFUSED_STREAM, StatusCode.UNAVAILABLE, True),
        (CANCEL, StatusCode.CANCELLED, False),
        (ENHANCE_YOUR_CALM, StatusCode.RESOURCE_EXHAUSTED, False),
        (NO_ERROR, StatusCode.INTERNAL, False),
        (0x2, StatusCode.INTERNAL, False),
    ],
)
def test_rst_stream_is_mapped(error_code: int, code: StatusCode, not_processed: bool) -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.rst(1, error_code))
    assert call.code is code
    assert call.error is not None
    assert call.error.not_processed is not_processed
    assert call.released
    assert protocol.open_streams == 0


def test_rst_after_trailers_changes_nothing() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.reply(1, b"x") + server.rst(1, NO_ERROR))
    assert call.code is StatusCode.OK
    assert protocol.failure is None


def test_trailers_before_half_close_reset_the_stream_with_no_error() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.trailers(1))
    assert call.code is StatusCode.OK
    assert [f.error_code for f in server.parse(protocol.data_to_send())] == [NO_ERROR]
    assert call.released


def test_goaway_fails_later_streams_as_not_processed_and_lets_earlier_ones_finish() -> None:
    server = ServerPeer()
    protocol = connect(server)
    calls = [start(protocol) for _ in range(3)]
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.goaway(3, debug=b"restarting"))
    assert protocol.draining
    assert not protocol.drained
    assert calls[0].code is None
    assert calls[1].code is None
    late = calls[2].error
    assert late is not None
    assert late.code is StatusCode.UNAVAILABLE
    assert late.not_processed
    assert "restarting" in late.details
    protocol.receive_data(server.reply(1, b"a") + server.reply(3, b"b"))
    assert [call.code for call in calls[:2]] == [StatusCode.OK, StatusCode.OK]
    assert protocol.consume(calls[1]) == b"b"
    assert protocol.drained


def test_goaway_too_many_pings_is_flagged() -> None:
    server = ServerPeer()
    protocol = connect(server)
    protocol.receive_data(server.goaway(0, ENHANCE_YOUR_CALM, b"too_many_pings"))
    assert protocol.too_many_pings
    assert protocol.drained


def test_a_second_goaway_only_lowers_the_last_stream_id() -> None:
    server = ServerPeer()
    protocol = connect(server)
    calls = [start(protocol) for _ in range(2)]
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.goaway(2**31 - 1))
    assert calls[1].code is None
    protocol.receive_data(server.goaway(1) + server.goaway(3))
    assert protocol.goaway_last_stream_id == 1
    assert calls[1].error is not None
    assert calls[1].error.not_processed
    assert calls[0].code is None


def test_protocol_error_fails_every_call() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.data(99, b"x"))  # DATA on a stream never opened
    assert protocol.failure is not None
    assert call.code is StatusCode.UNAVAILABLE


def test_received_size_limit_fails_only_that_call() -> None:
    server = ServerPeer()
    protocol = connect(server)
    small, other = start(protocol, limit=4), start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.data(1, encode_message(b"12345")))
    assert small.code is StatusCode.RESOURCE_EXHAUSTED
    assert [
        f.error_code for f in server.parse(protocol.data_to_send()) if isinstance(f, RstStreamFrame)
    ] == [CANCEL]
    protocol.receive_data(server.reply(3, b"fine"))
    assert other.code is StatusCode.OK


def test_compressed_message_without_encoding_is_internal() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.data(1, b"\x01\x00\x00\x00\x01z"))
    assert call.code is StatusCode.INTERNAL


def stream_window_updates(server: ServerPeer, protocol: GrpcProtocol, stream_id: int) -> int:
    frames = server.parse(protocol.data_to_send())
    return sum(
        f.window_increment
        for f in frames
        if isinstance(f, WindowUpdateFrame) and f.stream_id == stream_id
    )


def pump(
    server: ServerPeer,
    protocol: GrpcProtocol,
    call: CallState,
    payload: bytes,
    *,
    pad: int = 0,
    consume: bool = True,
    frame_size: int = 16384,
) -> list[bytes]:
    """Plays a server that honours the 64 KiB stream window: sends ``payload`` in frames as
    the window allows, adding the client's WINDOW_UPDATEs; fails if the window runs dry."""
    window, sent, received = 64 * 1024, 0, []
    overhead = pad + 1 if pad else 0
    for _round in range(1000):
        if sent == len(payload):
            return received
        chunk = min(len(payload) - sent, frame_size - overhead, window - overhead)
        if chunk <= 0:
            pytest.fail(f"stalled after {sent} of {len(payload)} bytes")
        protocol.receive_data(server.data(1, payload[sent : sent + chunk], pad=pad))
        window -= chunk + overhead
        sent += chunk
        while consume and call.messages:
            received.append(protocol.consume(call))
        window += stream_window_updates(server, protocol, 1)
    pytest.fail("too many rounds")


def open_reply(server: ServerPeer, protocol: GrpcProtocol) -> CallState:
    call = start(protocol, payload=None)
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.headers(1, OK_HEADERS))
    return call


def test_credit_is_held_for_unread_messages_and_returned_as_they_are_read() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = open_reply(server, protocol)
    message = encode_message(b"m" * 16 * 1024)
    protocol.receive_data(server.data(1, message * 3))
    assert len(call.messages) == 3
    assert stream_window_updates(server, protocol, 1) == 0
    for _ in range(3):
        assert protocol.consume(call) is not None
    # h2 batches WINDOW_UPDATEs: once half the window is consumed, it is handed back.
    assert 32 * 1024 <= stream_window_updates(server, protocol, 1) <= 3 * len(message)


def test_a_reader_that_stops_stops_the_server_after_one_window() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = open_reply(server, protocol)
    with pytest.raises(pytest.fail.Exception, match="stalled"):
        pump(server, protocol, call, encode_message(b"s" * 1000) * 200, consume=False)
    assert call.queued_bytes <= 64 * 1024


def test_a_reader_that_reads_never_stalls() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = open_reply(server, protocol)
    messages = [bytes([n % 256]) * 3000 for n in range(300)]
    received = pump(server, protocol, call, b"".join(encode_message(m) for m in messages))
    assert received == messages


def test_a_message_larger_than_the_window_does_not_deadlock() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = open_reply(server, protocol)
    body = b"b" * 300 * 1024  # more than four times the 64 KiB stream window
    assert pump(server, protocol, call, encode_message(body)) == [body]


def test_padding_is_handed_back() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = open_reply(server, protocol)
    # One message per frame: 400 frames' padding alone would exhaust the window if kept.
    messages = [b"p" * 100] * 400
    received = pump(
        server,
        protocol,
        call,
        b"".join(encode_message(m) for m in messages),
        pad=255,
        frame_size=105 + 256,
    )
    assert received == messages


def test_unread_data_is_handed_back_when_the_call_ends() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    server.parse(protocol.data_to_send())
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + server.data(1, encode_message(b"x" * 40000))
    )
    protocol.cancel_call(call, RpcError(StatusCode.CANCELLED, "bye"))
    frames = server.parse(protocol.data_to_send())
    assert [f.error_code for f in frames if isinstance(f, RstStreamFrame)] == [CANCEL]
    assert call.unacked_bytes == 0
    assert call.released


def test_send_stops_at_the_window_and_resumes_on_window_update() -> None:
    server = ServerPeer()
    protocol = connect(server, initial_window_size=10, max_frame_size=16384)
    call = start(protocol, payload=None)
    payload = memoryview(encode_message(b"z" * 20))
    assert protocol.send_data(call, payload, end_stream=True) == 10
    assert not call.local_closed
    protocol.send_blocked.add(call)
    protocol.receive_data(server.window_update(1, 100))
    assert call in protocol.changed
    assert protocol.send_data(call, payload[10:], end_stream=True) == 15
    assert call.local_closed
    frames = server.parse(protocol.data_to_send())
    sent = b"".join(f.data for f in frames if isinstance(f, DataFrame))
    assert sent == bytes(payload)


def test_send_respects_the_max_frame_size() -> None:
    server = ServerPeer()
    protocol = connect(server, initial_window_size=1 << 20)
    call = start(protocol, payload=None)
    payload = memoryview(encode_message(b"q" * 40000))
    protocol.receive_data(server.window_update(0, 1 << 20))
    assert protocol.send_data(call, payload, end_stream=True) == len(payload)
    frames = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, DataFrame)]
    assert max(len(f.data) for f in frames) <= 16384
    assert "END_STREAM" in frames[-1].flags
    assert len(frames) == 3


def test_initial_window_change_wakes_blocked_senders() -> None:
    server = ServerPeer()
    protocol = connect(server, initial_window_size=0)
    call = start(protocol, payload=None)
    assert protocol.send_data(call, memoryview(b"abc"), end_stream=False) == 0
    protocol.send_blocked.add(call)
    protocol.receive_data(server.settings(initial_window_size=100))
    assert call in protocol.changed


def test_slots_follow_max_concurrent_streams() -> None:
    server = ServerPeer()
    protocol = connect(server, max_concurrent_streams=2)
    first, _second = start(protocol), start(protocol)
    assert not protocol.has_free_slot
    server.parse(protocol.data_to_send())
    protocol.receive_data(server.reply(1))
    assert first.released
    assert protocol.has_free_slot
    assert protocol.slots_freed
    protocol.receive_data(server.settings(max_concurrent_streams=1))
    assert not protocol.has_free_slot


def test_connection_failure_ends_every_call_and_frees_slots() -> None:
    server = ServerPeer()
    protocol = connect(server)
    calls = [start(protocol) for _ in range(3)]
    protocol.fail(RpcError(StatusCode.UNAVAILABLE, "gone"))
    assert all(call.code is StatusCode.UNAVAILABLE for call in calls)
    assert protocol.open_streams == 0
    assert protocol.draining


def test_ping_ack_is_reported() -> None:
    server = ServerPeer()
    protocol = connect(server)
    protocol.send_ping(b"12345678")
    assert server.parse(protocol.data_to_send())[0].opaque_data == b"12345678"
    protocol.receive_data(server.ping_ack(b"12345678"))
    assert protocol.ping_acks == [b"12345678"]
