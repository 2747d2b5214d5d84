"""The sans-IO gRPC client protocol: wraps ``h2.connection.H2Connection``, turns h2 events
into per-call state (headers, messages, final status) and keeps the flow-control books.
No awaits, clocks or sockets: the trio layer feeds bytes in, writes bytes out, wakes tasks.

Theory of operation
-------------------
Calls. A ``CallState`` lives from ``start_call`` (HEADERS queued, stream id assigned) to
``_release`` (its HTTP/2 stream is closed: both sides ended, or either side reset). Its
outcome is set exactly once: ``code`` (and ``error`` unless OK) comes from trailers, a
Trailers-Only response, an RST_STREAM, a GOAWAY that excludes it, a local cancel, or the loss
of the connection. Messages received before the outcome stay readable after it. When the
server ends the stream before we half-closed, we reset it with NO_ERROR so that both sides
free it. Each released call gives back one stream slot (``open_streams`` against the peer's
MAX_CONCURRENT_STREAMS); the caller waits for a slot, never fails for lack of one.

Inbound flow control. We advertise a large connection window and a per-stream window of
``stream_window`` bytes. Received bytes are counted in ``unacked_bytes`` (padding is handed
back at once). Credit is returned for every received byte except those of complete messages
still queued for the application (``queued_bytes``); so a partial message never holds back
its own credit (no deadlock on messages larger than the window), while a reader that stops
consuming stops the server after at most one window. Whatever is unread when the stream
closes is handed back then, for the connection window's sake.

Outbound flow control. ``send_data`` sends chunks of min(window, max frame size, rest) and
returns how much it sent; the caller waits and retries when the window is exhausted (it may
be negative after a SETTINGS change). Calls waiting for window register in ``send_blocked``;
every WINDOW_UPDATE on the connection or their stream, and every INITIAL_WINDOW_SIZE change,
lists them in ``changed`` so the I/O layer wakes them.

GOAWAY. h2 closes its state machine and drops queued output on any GOAWAY; RFC 9113 lets the
streams up to last-stream-id finish, so GrpcH2Connection records the GOAWAY instead. Calls
above the last stream id fail as UNAVAILABLE and not processed; the connection then drains:
no new calls, and ``drained`` turns True when the last call is released.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from .call_state import CallState, Headers
from .framing import PREFIX_SIZE, FramingError
from .h2_connection import GrpcH2Connection
from .metadata import decode_metadata
from .status import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    RpcError,
    StatusCode,
    scan_response_headers,
    status_from_reset,
    status_from_response,
    status_from_trailers,
)

__all__ = ["GrpcProtocol"]


DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024
_MAX_WINDOW = 2**31 - 1
# Stream ids are 31 bits and never reused; drain the connection a little before they run out.
_LAST_USABLE_STREAM_ID = 2**31 - 1 - 2 * 1024


class GrpcProtocol:
    """One HTTP/2 connection's gRPC client state. See the module docstring."""

    def __init__(
        self,
        *,
        max_receive_message_size: int,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        validate_inbound_headers: bool = False,
    ) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=validate_inbound_headers,
        )
        self._h2 = GrpcH2Connection(config=config)
        self.max_receive_message_size = max_receive_message_size
        self._stream_window = stream_window
        self.calls: Dict[int, CallState] = {}
        self.open_streams = 0
        # Set by receive_data for the I/O layer, which clears them after acting on them.
        self.changed: List[CallState] = []
        self.send_blocked: set[CallState] = set()
        self.slots_freed = False
        self.ping_acks: List[bytes] = []
        self.settings_received = False
        # Connection-level outcome.
        self.goaway_last_stream_id: Optional[int] = None
        self.too_many_pings = False
        self.failure: Optional[RpcError] = None
        self._handlers: Dict[type, Callable[[Any], None]] = {
            h2.events.ResponseReceived: self._on_response,
            h2.events.DataReceived: self._on_data,
            h2.events.TrailersReceived: self._on_trailers,
            h2.events.StreamEnded: self._on_stream_ended,
            h2.events.StreamReset: self._on_stream_reset,
            h2.events.WindowUpdated: self._on_window_updated,
            h2.events.RemoteSettingsChanged: self._on_settings,
            h2.events.PingAckReceived: self._on_ping_ack,
            h2.events.ConnectionTerminated: self._on_goaway,
        }

    # -- connection ---------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the client preface, our SETTINGS and a connection window increase."""
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self._stream_window,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_MAX_WINDOW - 65535)

    def data_to_send(self) -> bytes:
        return self._h2.data_to_send()

    @property
    def has_output(self) -> bool:
        """Whether bytes are waiting for data_to_send (cheap; relies on an h2 detail)."""
        return bool(getattr(self._h2, "_data_to_send", True))

    @property
    def draining(self) -> bool:
        """No new calls may start here (GOAWAY received, failed, or stream ids used up)."""
        return (
            self.goaway_last_stream_id is not None
            or self.failure is not None
            or self._h2.highest_outbound_stream_id >= _LAST_USABLE_STREAM_ID
        )

    @property
    def drained(self) -> bool:
        return self.draining and self.open_streams == 0

    @property
    def has_free_slot(self) -> bool:
        return self.open_streams < self._h2.remote_settings.max_concurrent_streams

    @property
    def free_slots(self) -> int:
        return max(self._h2.remote_settings.max_concurrent_streams - self.open_streams, 0)

    def send_ping(self, opaque_data: bytes) -> None:
        self._h2.ping(opaque_data)

    def close(self, error_code: int = NO_ERROR) -> None:
        """Queue a GOAWAY (when the connection is still usable)."""
        if self.failure is None:
            self._h2.close_connection(error_code)

    def fail(self, error: RpcError) -> None:
        """The connection is gone: every call not finished ends with ``error``."""
        if self.failure is None:
            self.failure = error
        for call in list(self.calls.values()):
            if call.code is None:
                self._set_error(call, error)
            call.released = True
            self.changed.append(call)
        self.calls.clear()
        self.open_streams = self._h2.open_stream_count = 0
        self.send_blocked.clear()
        self.slots_freed = True

    # -- calls --------------------------------------------------------------------------------

    def start_call(
        self, call: CallState, headers: Sequence[Any], *, end_stream: bool = False
    ) -> None:
        """Queue the HEADERS of a new call. The caller has checked has_free_slot/draining."""
        h2_connection = self._h2
        stream_id = h2_connection.get_next_available_stream_id()
        h2_connection.send_headers(stream_id, headers, end_stream=end_stream)
        call.stream_id = stream_id
        call.local_closed = end_stream
        self.calls[stream_id] = call
        self.open_streams += 1
        h2_connection.open_stream_count = self.open_streams

    def send_data(self, call: CallState, data: memoryview, *, end_stream: bool) -> int:
        """Queue as much of ``data`` as flow control allows; returns how much. The stream is
        half-closed only once all of it is queued."""
        if call.released or call.local_closed:
            return len(data)
        h2_connection = self._h2
        stream_id = call.stream_id
        total = len(data)
        if total == 0:
            if end_stream:
                h2_connection.end_stream(stream_id)
                call.local_closed = True
            return 0
        sent = 0
        max_frame = h2_connection.max_outbound_frame_size
        while sent < total:
            window = h2_connection.local_flow_control_window(stream_id)
            chunk = min(total - sent, window, max_frame)
            if chunk <= 0:
                break
            last = sent + chunk == total
            h2_connection.send_data(
                stream_id, data[sent:sent + chunk] if sent or not last else data,
                end_stream=end_stream and last,
            )
            sent += chunk
        if sent == total and end_stream:
            call.local_closed = True
        return sent

    def end_stream(self, call: CallState) -> None:
        """Half-close: we send no more messages."""
        if not (call.released or call.local_closed):
            self._h2.end_stream(call.stream_id)
            call.local_closed = True

    def cancel_call(self, call: CallState, error: RpcError, error_code: int = CANCEL) -> None:
        """End a call from our side: RST_STREAM queued, outcome set, slot released."""
        if call.code is None:
            self._set_error(call, error)
        if not call.released and call.stream_id:
            self._h2.reset_stream(call.stream_id, error_code)
            self._release(call)

    def consume(self, call: CallState) -> bytes | None:
        """The next received message of a call, returning its flow-control credit."""
        messages = call.messages
        if not messages:
            return None
        message = messages.popleft()
        call.queued_bytes -= len(message) + PREFIX_SIZE
        if not call.released:
            self._return_credit(call)
        return message

    def _return_credit(self, call: CallState) -> None:
        excess = call.unacked_bytes - call.queued_bytes
        if excess > 0:
            call.unacked_bytes -= excess
            self._h2.acknowledge_received_data(excess, call.stream_id)

    def _set_error(self, call: CallState, error: RpcError) -> None:
        call.code = error.code
        call.details = error.details
        call.error = error
        self.changed.append(call)

    def _release(self, call: CallState) -> None:
        if call.released:
            return
        call.released = True
        stream_id = call.stream_id
        self.calls.pop(stream_id, None)
        self.send_blocked.discard(call)
        self.open_streams -= 1
        h2_connection = self._h2
        h2_connection.open_stream_count = self.open_streams
        if call.unacked_bytes:
            h2_connection.acknowledge_received_data(call.unacked_bytes, stream_id)
            call.unacked_bytes = 0
        h2_connection.forget_stream(stream_id)
        self.slots_freed = True

    # -- inbound ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; results land in calls, ``changed`` and the flags."""
        if self.failure is not None:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.fail(RpcError(StatusCode.UNAVAILABLE, f"HTTP/2 protocol error from server: {exc}"))
            return
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        call = self.calls.get(event.stream_id)
        if call is None or call.code is not None:
            return
        headers: Headers = event.headers
        http_status, content_type, grpc_status, grpc_message = scan_response_headers(headers)
        ended = event.stream_ended is not None
        not_grpc = status_from_response(http_status, content_type)
        if not_grpc is not None:
            error = RpcError(*not_grpc, initial_metadata=decode_metadata(headers))
            if ended:
                self._set_error(call, error)
            else:
                self.cancel_call(call, error, ErrorCodes.PROTOCOL_ERROR)
        elif ended:
            # Trailers-Only: the only HEADERS carry the status; there is no initial metadata.
            call.response_headers = ()
            self._finish(call, headers, grpc_status, grpc_message)
        else:
            call.response_headers = headers
            self.changed.append(call)

    def _finish(
        self,
        call: CallState,
        trailers: Headers,
        grpc_status: bytes | None,
        grpc_message: bytes | None,
    ) -> None:
        call.trailers = trailers
        code, details = status_from_trailers(grpc_status, grpc_message)
        if code is StatusCode.OK:
            call.code = code
            call.details = details
            self.changed.append(call)
        else:
            self._set_error(call, RpcError(
                code,
                details,
                trailing_metadata=decode_metadata(trailers),
                initial_metadata=decode_metadata(call.response_headers or ()),
            ))

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        data: bytes = event.data
        flow_controlled_length: int = event.flow_controlled_length
        call = self.calls.get(stream_id)
        if call is None or call.code is not None:
            self._h2.acknowledge_received_data(flow_controlled_length, stream_id)
            return
        padding = flow_controlled_length - len(data)
        if padding:
            self._h2.acknowledge_received_data(padding, stream_id)
        call.unacked_bytes += len(data)
        try:
            messages = call.decoder.feed(data)
        except FramingError as exc:
            self.cancel_call(call, RpcError(
                exc.code, exc.message, initial_metadata=decode_metadata(call.response_headers or ())
            ))
            return
        if messages:
            queue = call.messages
            for message in messages:
                queue.append(message)
                call.queued_bytes += len(message) + PREFIX_SIZE
            self.changed.append(call)
        if call.unacked_bytes > call.queued_bytes:
            self._return_credit(call)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        call = self.calls.get(event.stream_id)
        if call is None or call.code is not None:
            return
        trailers: Headers = event.headers
        _, _, grpc_status, grpc_message = scan_response_headers(trailers)
        self._finish(call, trailers, grpc_status, grpc_message)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        call = self.calls.get(event.stream_id)
        if call is None:
            return
        if call.code is None:
            self._set_error(call, RpcError(
                StatusCode.INTERNAL,
                "server closed the stream without sending trailers",
                initial_metadata=decode_metadata(call.response_headers or ()),
            ))
        if not call.local_closed:
            # Early server closure (PROTOCOL-HTTP2.md): free the stream on both sides.
            self._h2.reset_stream(call.stream_id, NO_ERROR)
            call.local_closed = True
        self._release(call)
        self.changed.append(call)

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        call = self.calls.get(event.stream_id)
        if call is None:
            return
        if call.code is None:
            error_code = int(event.error_code)
            code, not_processed = status_from_reset(error_code)
            try:
                name = ErrorCodes(error_code).name
            except ValueError:
                name = f"error code {error_code}"
            self._set_error(call, RpcError(
                code,
                f"stream reset by server: {name}",
                initial_metadata=decode_metadata(call.response_headers or ()),
                not_processed=not_processed,
            ))
        self._release(call)
        self.changed.append(call)

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if not self.send_blocked:
            return
        if event.stream_id:
            call = self.calls.get(event.stream_id)
            if call is not None and call in self.send_blocked:
                self.changed.append(call)
        else:
            self.changed.extend(self.send_blocked)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self.settings_received = True
        changed = event.changed_settings
        if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self.changed.extend(self.send_blocked)
        if h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            self.slots_freed = True

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        self.ping_acks.append(event.ping_data)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        last_stream_id = event.last_stream_id or 0
        if self.goaway_last_stream_id is not None:
            last_stream_id = min(last_stream_id, self.goaway_last_stream_id)
        self.goaway_last_stream_id = last_stream_id
        error_code = int(event.error_code or 0)
        debug = event.additional_data or b""
        if error_code == ENHANCE_YOUR_CALM and debug == b"too_many_pings":
            self.too_many_pings = True
        for stream_id, call in list(self.calls.items()):
            if stream_id > last_stream_id:
                reason = debug.decode("utf-8", "replace")
                self.cancel_call(call, RpcError(
                    StatusCode.UNAVAILABLE,
                    "the server is going away and did not accept this call"
                    + (f" ({reason})" if reason else ""),
                    not_processed=True,
                ))
        self.slots_freed = True
