"""The sans-IO protocol core against an independent HTTP/2 implementation: h2's own server-side
state machine (``h2.connection.H2Connection(client_side=False)``), in memory.

test_grpc_protocol.py scripts a server frame by frame; here h2 judges every byte the client
sends (it raises ``h2.exceptions.ProtocolError`` on any breach: frames on closed streams, data
beyond its flow-control window, more streams than it allows) and answers as a server would."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from puregrpc_etcd.grpc import RpcError, StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.metadata import RequestHeaderTemplate
from puregrpc_etcd.grpc.protocol import GrpcProtocol

TEMPLATE = RequestHeaderTemplate(scheme="http", authority="127.0.0.1:1", user_agent="test/1")
OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]
MAX_ROUNDS = 10_000


class H2Server:
    """h2's server end, fed the client's bytes; ``events`` collects what h2 made of them."""

    def __init__(self, **settings: int) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(
                {getattr(SettingCodes, k.upper()): v for k, v in settings.items()}
            )
        self.events: list[Any] = []

    def feed(self, data: bytes) -> list[Any]:
        events = self.conn.receive_data(data) if data else []
        self.events += events
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                # A server that reads everything at once hands the window straight back.
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        return events

    def of_type(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def received(self, stream_id: int) -> bytes:
        return b"".join(
            e.data for e in self.of_type(h2.events.DataReceived) if e.stream_id == stream_id
        )


def exchange(server: H2Server, protocol: GrpcProtocol) -> None:
    """Pass bytes both ways until neither side has anything more to say."""
    for _ in range(MAX_ROUNDS):
        to_server = protocol.data_to_send()
        server.feed(to_server)
        to_client = server.conn.data_to_send()
        if to_client:
            protocol.receive_data(to_client)
        if not to_server and not to_client:
            return
    pytest.fail("the two sides never went quiet")


def connect(server: H2Server) -> GrpcProtocol:
    protocol = GrpcProtocol(max_receive_message_size=4 * 1024 * 1024, stream_window=64 * 1024)
    protocol.initiate()
    exchange(server, protocol)
    assert protocol.settings_received
    protocol.changed.clear()
    return protocol


def start(protocol: GrpcProtocol, payload: bytes | None = b"req") -> CallState:
    call = CallState(4 * 1024 * 1024)
    protocol.start_call(call, TEMPLATE.build("/pkg.Svc/Do", None, None))
    if payload is not None:
        assert protocol.send_data(call, memoryview(encode_message(payload)), end_stream=True)
    return call


def reply(server: H2Server, stream_id: int, *messages: bytes, status: int = 0) -> None:
    """Answer as a gRPC server does (small messages: h2 refuses DATA beyond its window)."""
    server.conn.send_headers(stream_id, OK_HEADERS)
    body = b"".join(encode_message(m) for m in messages)
    if body:
        server.conn.send_data(stream_id, body)
    server.conn.send_headers(stream_id, [("grpc-status", str(status))], end_stream=True)


def test_preface_and_settings_are_accepted_and_acknowledged() -> None:
    server = H2Server(max_concurrent_streams=7)
    protocol = connect(server)
    changed = server.of_type(h2.events.RemoteSettingsChanged)[0].changed_settings
    assert changed[SettingCodes.ENABLE_PUSH].new_value == 0
    assert changed[SettingCodes.INITIAL_WINDOW_SIZE].new_value == 64 * 1024
    assert server.of_type(h2.events.SettingsAcknowledged)
    assert protocol.free_slots == 7


def test_a_unary_call_as_h2_sees_it() -> None:
    server = H2Server()
    protocol = connect(server)
    call = start(protocol)
    exchange(server, protocol)
    (request,) = server.of_type(h2.events.RequestReceived)
    headers = dict(request.headers)
    assert headers[":method"] == "POST"
    assert headers[":path"] == "/pkg.Svc/Do"
    assert headers["te"] == "trailers"
    assert server.received(request.stream_id) == encode_message(b"req")
    assert server.of_type(h2.events.StreamEnded)
    reply(server, request.stream_id, b"resp")
    exchange(server, protocol)
    assert call.code is StatusCode.OK
    assert protocol.consume(call) == b"resp"
    assert call.released


def test_a_reply_larger_than_every_window_arrives_whole() -> None:
    server = H2Server()
    protocol = connect(server)
    call = start(protocol)
    exchange(server, protocol)
    body = bytes(range(256)) * 4096  # 1 MiB: sixteen times the stream window
    wire = encode_message(body)
    server.conn.send_headers(1, OK_HEADERS)
    received: list[bytes] = []
    for _ in range(MAX_ROUNDS):
        if not wire:
            break
        window = server.conn.local_flow_control_window(1)
        chunk = min(len(wire), window, server.conn.max_outbound_frame_size)
        if chunk:
            server.conn.send_data(1, wire[:chunk])
            wire = wire[chunk:]
        exchange(server, protocol)
        while call.messages:
            received.append(protocol.consume(call) or b"")
        assert chunk or server.conn.local_flow_control_window(1), "the client gave no window"
    server.conn.send_headers(1, [("grpc-status", "0")], end_stream=True)
    exchange(server, protocol)
    assert received == [body]
    assert call.code is StatusCode.OK


def test_a_request_larger_than_the_servers_window_waits_for_it() -> None:
    server = H2Server()
    protocol = connect(server)
    call = start(protocol, payload=None)
    payload = memoryview(encode_message(b"u" * 200_000))
    sent = 0
    for _ in range(MAX_ROUNDS):
        if sent == len(payload):
            break
        # h2 would raise FlowControlError for a byte beyond the window it granted.
        sent += protocol.send_data(call, payload[sent:], end_stream=True)
        exchange(server, protocol)
    assert sent == len(payload)
    assert server.received(1) == bytes(payload)
    assert server.of_type(h2.events.StreamEnded)


def test_no_more_streams_than_the_server_allows() -> None:
    server = H2Server(max_concurrent_streams=2)
    protocol = connect(server)
    calls = [start(protocol)]
    calls.append(start(protocol))
    assert not protocol.has_free_slot
    exchange(server, protocol)  # h2 raises TooManyStreamsError if a third one came
    reply(server, 1, b"one")
    exchange(server, protocol)
    assert protocol.has_free_slot
    calls.append(start(protocol))
    exchange(server, protocol)
    for stream_id in (3, 5):
        reply(server, stream_id, b"more")
    exchange(server, protocol)
    assert [call.code for call in calls] == [StatusCode.OK] * 3


@pytest.mark.parametrize(
    ("error_code", "code", "not_processed"),
    [
        (ErrorCodes.REFUSED_STREAM, StatusCode.UNAVAILABLE, True),
        (ErrorCodes.CANCEL, StatusCode.CANCELLED, False),
        (ErrorCodes.ENHANCE_YOUR_CALM, StatusCode.RESOURCE_EXHAUSTED, False),
        (ErrorCodes.INTERNAL_ERROR, StatusCode.INTERNAL, False),
    ],
)
def test_a_stream_reset_by_h2_is_mapped(
    error_code: ErrorCodes, code: StatusCode, not_processed: bool
) -> None:
    server = H2Server()
    protocol = connect(server)
    call = start(protocol)
    exchange(server, protocol)
    server.conn.reset_stream(1, error_code)
    exchange(server, protocol)
    assert call.code is code
    assert call.error is not None
    assert call.error.not_processed is not_processed
    assert f"stream reset by server: {error_code.name}" in call.error.details


def test_a_cancelled_call_is_reset_with_cancel() -> None:
    server = H2Server()
    protocol = connect(server)
    call = start(protocol, payload=None)
    exchange(server, protocol)
    protocol.cancel_call(call, RpcError(StatusCode.CANCELLED, "bye"))
    exchange(server, protocol)
    (reset,) = server.of_type(h2.events.StreamReset)
    assert reset.error_code == ErrorCodes.CANCEL
    assert call.released


def test_goaway_from_h2_fails_later_streams_as_not_processed() -> None:
    server = H2Server()
    protocol = connect(server)
    first = start(protocol)
    exchange(server, protocol)
    second = start(protocol)  # not yet sent when the server says goodbye
    server.conn.close_connection(ErrorCodes.NO_ERROR, b"restarting", last_stream_id=1)
    protocol.receive_data(server.conn.data_to_send())
    assert protocol.draining
    assert second.error is not None
    assert second.error.not_processed
    assert first.code is None
    with pytest.raises(h2.exceptions.ProtocolError):
        # h2 has closed its side: the test's peer is real, not a recorder.
        server.conn.send_headers(1, OK_HEADERS)
