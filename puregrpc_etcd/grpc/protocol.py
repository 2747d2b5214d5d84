"""The sans-IO gRPC client protocol: HTTP/2 frames in and out (``http2.py``), per-call state
(headers, messages, final status) and the flow-control books. No awaits, clocks or sockets:
the trio layer feeds bytes in, writes bytes out, wakes tasks.

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
consuming stops the server after at most one window. Credit goes back in WINDOW_UPDATEs once
half a window has gathered. Whatever is unread when the stream closes is handed back then,
for the connection window's sake.

Outbound flow control. ``send_data`` sends chunks of min(window, max frame size, rest) and
returns how much it sent; the caller waits and retries when the window is exhausted (it may
be negative after a SETTINGS change). Calls waiting for window register in ``send_blocked``;
every WINDOW_UPDATE on the connection or their stream, and every INITIAL_WINDOW_SIZE change,
lists them in ``changed`` so the I/O layer wakes them.

Requests. Header blocks use HPACK literals only (``http2.encode_literal``): the server's
dynamic table is never touched, so the I/O layer builds a block per method once and reuses
it. A unary call is one HEADERS and one DATA frame, queued for a single write.

GOAWAY. RFC 9113 lets the streams up to last-stream-id finish. Calls above it fail as
UNAVAILABLE and not processed; the connection then drains: no new calls, and ``drained``
turns True when the last call is released. Any protocol violation by the server ends the
connection (GOAWAY queued) and fails every call as UNAVAILABLE.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple, Union

from . import http2 as h
from .call_state import CallState
from .framing import PREFIX_SIZE, FramingError
from .http2 import Headers, Http2Error
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
MAX_HEADER_LIST_SIZE = 64 * 1024
# Stream ids are 31 bits and never reused; drain the connection a little before they run out.
_LAST_USABLE_STREAM_ID = 2**31 - 1 - 2 * 1024
_UNLIMITED_STREAMS = 2**32
_CONNECTION_CREDIT_THRESHOLD = h.MAX_WINDOW // 2
_ENDED_STREAMS_KEPT = 256
_SETTINGS_ACK = h.frame(h.SETTINGS, h.ACK, 0)
_unpack_frame_header = h.FRAME_HEADER.unpack_from
_frame_header = h.frame_header
_DATA, _HEADERS, _END_STREAM, _PADDED = h.DATA, h.HEADERS, h.END_STREAM, h.PADDED


class GrpcProtocol:
    """One HTTP/2 connection's gRPC client state. See the module docstring."""

    def __init__(
        self, *, max_receive_message_size: int, stream_window: int = DEFAULT_STREAM_WINDOW
    ) -> None:
        self.max_receive_message_size = max_receive_message_size
        self._stream_window = stream_window
        self._stream_credit_threshold = stream_window // 2
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
        # HTTP/2 connection state.
        self._out: List[Union[bytes, memoryview]] = []
        self._unparsed = b""
        self._next_stream_id = 1
        # The first header block tells the server we use no dynamic table (RFC 7541 6.3).
        self._block_prefix = b"\x20"
        self._decoder = h.HeaderDecoder(MAX_HEADER_LIST_SIZE)
        self._continuation: Optional[Tuple[int, int, List[bytes]]] = None
        self._send_window = h.DEFAULT_WINDOW
        self._peer_initial_window = h.DEFAULT_WINDOW
        self._peer_max_frame_size = h.DEFAULT_MAX_FRAME_SIZE
        self._peer_max_streams = _UNLIMITED_STREAMS
        self._recv_window = h.DEFAULT_WINDOW
        self._credit = 0
        # The latest streams the server ended itself, and their order.
        self._ended_by_server: set[int] = set()
        self._ended_order: Deque[int] = deque()

    # -- connection ---------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the client preface, our SETTINGS and a connection window increase."""
        self._out += [
            h.PREFACE,
            h.settings_frame(
                {
                    h.ENABLE_PUSH: 0,
                    h.INITIAL_WINDOW_SIZE: self._stream_window,
                    h.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                }
            ),
            h.window_update_frame(0, h.MAX_WINDOW - h.DEFAULT_WINDOW),
        ]
        self._recv_window = h.MAX_WINDOW

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    @property
    def has_output(self) -> bool:
        """Whether bytes are waiting for data_to_send."""
        return bool(self._out)

    @property
    def draining(self) -> bool:
        """No new calls may start here (GOAWAY received, failed, or stream ids used up)."""
        return (
            self.goaway_last_stream_id is not None
            or self.failure is not None
            or self._next_stream_id > _LAST_USABLE_STREAM_ID
        )

    @property
    def drained(self) -> bool:
        return self.draining and self.open_streams == 0

    @property
    def has_free_slot(self) -> bool:
        return self.open_streams < self._peer_max_streams

    @property
    def free_slots(self) -> int:
        return max(self._peer_max_streams - self.open_streams, 0)

    def send_ping(self, opaque_data: bytes) -> None:
        self._out.append(h.frame(h.PING, 0, 0, opaque_data))

    def close(self, error_code: int = NO_ERROR) -> None:
        """Queue a GOAWAY (when the connection is still usable)."""
        if self.failure is None:
            self._out.append(h.goaway_frame(0, error_code))

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
        self.open_streams = 0
        self.send_blocked.clear()
        self.slots_freed = True

    # -- calls --------------------------------------------------------------------------------

    def start_call(
        self,
        call: CallState,
        headers: Union[bytes, Sequence[Tuple[bytes, bytes]]],
        *,
        end_stream: bool = False,
    ) -> None:
        """Queue the HEADERS of a new call (``headers`` as pairs, or an encoded block). The
        caller has checked has_free_slot/draining."""
        block = headers if isinstance(headers, bytes) else h.encode_header_list(headers)
        if self._block_prefix:
            block = self._block_prefix + block
            self._block_prefix = b""
        stream_id = self._next_stream_id
        self._next_stream_id = stream_id + 2
        flags = _END_STREAM if end_stream else 0
        out = self._out
        max_frame_size = self._peer_max_frame_size
        if len(block) <= max_frame_size:
            out.append(_frame_header(_HEADERS, flags | h.END_HEADERS, stream_id, len(block)))
            out.append(block)
        else:
            pieces = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
            for index, piece in enumerate(pieces):
                last = h.END_HEADERS if index == len(pieces) - 1 else 0
                kind = h.CONTINUATION if index else _HEADERS
                out.append(h.frame(kind, (0 if index else flags) | last, stream_id, piece))
        call.stream_id = stream_id
        call.local_closed = end_stream
        call.send_window = self._peer_initial_window
        call.recv_window = self._stream_window
        self.calls[stream_id] = call
        self.open_streams += 1

    def send_data(self, call: CallState, data: memoryview, *, end_stream: bool) -> int:
        """Queue as much of ``data`` as flow control allows; returns how much. The stream is
        half-closed only once all of it is queued."""
        if call.released or call.local_closed:
            return len(data)
        stream_id = call.stream_id
        total = len(data)
        out = self._out
        if total == 0:
            if end_stream:
                out.append(_frame_header(_DATA, _END_STREAM, stream_id, 0))
                call.local_closed = True
            return 0
        sent = 0
        max_frame_size = self._peer_max_frame_size
        while sent < total:
            chunk = min(total - sent, self._send_window, call.send_window, max_frame_size)
            if chunk <= 0:
                break
            last = sent + chunk == total
            flags = _END_STREAM if end_stream and last else 0
            out.append(_frame_header(_DATA, flags, stream_id, chunk))
            out.append(data[sent : sent + chunk] if sent or not last else data)
            self._send_window -= chunk
            call.send_window -= chunk
            sent += chunk
        if sent == total and end_stream:
            call.local_closed = True
        return sent

    def end_stream(self, call: CallState) -> None:
        """Half-close: we send no more messages."""
        if not (call.released or call.local_closed):
            self._out.append(_frame_header(_DATA, _END_STREAM, call.stream_id, 0))
            call.local_closed = True

    def cancel_call(self, call: CallState, error: RpcError, error_code: int = CANCEL) -> None:
        """End a call from our side: RST_STREAM queued, outcome set, slot released."""
        if call.code is None:
            self._set_error(call, error)
        if not call.released and call.stream_id:
            self._out.append(h.rst_stream_frame(call.stream_id, error_code))
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
            self._acknowledge(call, excess)

    def _acknowledge(self, call: CallState | None, size: int) -> None:
        """Count ``size`` received bytes as processed; hand the credit back in batches."""
        credit = self._credit + size
        if credit >= _CONNECTION_CREDIT_THRESHOLD:
            self._out.append(h.window_update_frame(0, credit))
            self._recv_window += credit
            credit = 0
        self._credit = credit
        if call is None or call.released:
            return
        credit = call.credit + size
        if credit >= self._stream_credit_threshold or (
            call.recv_window <= 0 and credit > min(1024, self._stream_window // 4)
        ):
            self._out.append(h.window_update_frame(call.stream_id, credit))
            call.recv_window += credit
            credit = 0
        call.credit = credit

    def _set_error(self, call: CallState, error: RpcError) -> None:
        call.code = error.code
        call.details = error.details
        call.error = error
        self.changed.append(call)

    def _release(self, call: CallState) -> None:
        if call.released:
            return
        call.released = True
        self.calls.pop(call.stream_id, None)
        self.send_blocked.discard(call)
        self.open_streams -= 1
        if call.unacked_bytes:
            self._acknowledge(None, call.unacked_bytes)
            call.unacked_bytes = 0
        self.slots_freed = True

    # -- inbound ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; results land in calls, ``changed`` and the flags."""
        if self.failure is not None:
            return
        if self._unparsed:
            data = self._unparsed + data
        elif type(data) is not bytes:
            data = bytes(data)  # received messages may keep views of it: it must not change
        try:
            used = self._receive_frames(data)
        except Http2Error as exc:
            self.close(exc.error_code)
            self.fail(RpcError(StatusCode.UNAVAILABLE, f"HTTP/2 protocol error from server: {exc}"))
            return
        self._unparsed = bytes(data[used:]) if used < len(data) else b""

    def _receive_frames(self, data: bytes) -> int:
        """Handle every whole frame in ``data``; returns how many bytes they took."""
        view = memoryview(data)
        size = len(data)
        offset = 0
        while size - offset >= 9:
            head, flags, stream_id = _unpack_frame_header(data, offset)
            length = head >> 8
            if length > h.DEFAULT_MAX_FRAME_SIZE:
                raise Http2Error(h.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            end = offset + 9 + length
            if end > size:
                break
            frame_type = head & 0xFF
            stream_id &= 0x7FFFFFFF
            payload = view[offset + 9 : end]
            offset = end
            if self._continuation is not None and frame_type != h.CONTINUATION:
                raise Http2Error(h.PROTOCOL_ERROR, "header block interrupted")
            if frame_type == _DATA:
                self._on_data(stream_id, flags, payload)
            elif frame_type == _HEADERS:
                self._on_headers(stream_id, flags, payload)
            else:
                self._on_control_frame(frame_type, flags, stream_id, payload)
        return offset

    def _check_opened(self, stream_id: int) -> None:
        """Frames for streams we closed are ignored; for any other stream they are an error."""
        if not stream_id % 2 or stream_id >= self._next_stream_id:
            raise Http2Error(h.PROTOCOL_ERROR, f"frame on stream {stream_id}, never opened")

    def _on_data(self, stream_id: int, flags: int, payload: memoryview) -> None:
        flow_controlled_length = len(payload)
        self._recv_window -= flow_controlled_length
        if self._recv_window < 0:
            raise Http2Error(h.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        data = h.strip_padding(payload, flags) if flags & _PADDED else payload
        call = self.calls.get(stream_id)
        if call is None:
            self._check_opened(stream_id)
            self._acknowledge(None, flow_controlled_length)
            if stream_id in self._ended_by_server:
                self._ended_by_server.discard(stream_id)
                self._out.append(h.rst_stream_frame(stream_id, h.STREAM_CLOSED))
            return
        if not call.headers_seen:
            raise Http2Error(h.PROTOCOL_ERROR, f"DATA before HEADERS on stream {stream_id}")
        call.recv_window -= flow_controlled_length
        if call.code is not None:
            self._acknowledge(call, flow_controlled_length)
        else:
            padding = flow_controlled_length - len(data)
            if padding:
                self._acknowledge(call, padding)
            call.unacked_bytes += len(data)
            try:
                messages = call.decoder.feed(data)
            except FramingError as exc:
                self.cancel_call(
                    call,
                    RpcError(
                        exc.code,
                        exc.message,
                        initial_metadata=decode_metadata(call.response_headers or ()),
                    ),
                )
                return
            if messages:
                queue = call.messages
                for message in messages:
                    queue.append(message)
                    call.queued_bytes += len(message) + PREFIX_SIZE
                self.changed.append(call)
            if call.unacked_bytes > call.queued_bytes:
                self._return_credit(call)
        if flags & _END_STREAM:
            self._on_stream_ended(call)

    def _on_headers(self, stream_id: int, flags: int, payload: memoryview) -> None:
        if not stream_id:
            raise Http2Error(h.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = h.strip_padding(payload, flags)
        if flags & h.PRIORITY_FLAG:
            if len(block) < 5:
                raise Http2Error(h.PROTOCOL_ERROR, "HEADERS too short for its priority")
            block = block[5:]
        if flags & h.END_HEADERS:
            self._on_header_block(stream_id, flags, bytes(block))
        else:
            self._continuation = (stream_id, flags, [bytes(block)])

    def _on_continuation(self, stream_id: int, flags: int, payload: memoryview) -> None:
        pending = self._continuation
        if pending is None or pending[0] != stream_id:
            raise Http2Error(h.PROTOCOL_ERROR, f"unexpected CONTINUATION on stream {stream_id}")
        pieces = pending[2]
        pieces.append(bytes(payload))
        if sum(map(len, pieces)) > 2 * MAX_HEADER_LIST_SIZE:
            raise Http2Error(h.PROTOCOL_ERROR, "header block too large")
        if flags & h.END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, pending[1], b"".join(pieces))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self._decoder.decode(block)  # always: the HPACK state must stay in step
        call = self.calls.get(stream_id)
        if call is None:
            self._check_opened(stream_id)
            return
        ended = bool(flags & _END_STREAM)
        if not call.headers_seen:
            if not ended and _informational(headers):
                return
            call.headers_seen = 1
            self._on_response(call, headers, ended)
        elif ended:
            call.headers_seen = 2
            _, _, grpc_status, grpc_message = scan_response_headers(headers)
            if call.code is None:
                self._finish(call, headers, grpc_status, grpc_message)
        else:
            raise Http2Error(h.PROTOCOL_ERROR, f"trailers without END_STREAM on {stream_id}")
        if ended:
            self._on_stream_ended(call)

    def _on_response(self, call: CallState, headers: Headers, ended: bool) -> None:
        if call.code is not None:
            return
        http_status, content_type, grpc_status, grpc_message = scan_response_headers(headers)
        not_grpc = status_from_response(http_status, content_type)
        if not_grpc is not None:
            error = RpcError(*not_grpc, initial_metadata=decode_metadata(headers))
            if ended:
                self._set_error(call, error)
            else:
                self.cancel_call(call, error, h.PROTOCOL_ERROR)
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
            self._set_error(
                call,
                RpcError(
                    code,
                    details,
                    trailing_metadata=decode_metadata(trailers),
                    initial_metadata=decode_metadata(call.response_headers or ()),
                ),
            )

    def _on_stream_ended(self, call: CallState) -> None:
        if call.released:
            return
        if call.code is None:
            self._set_error(
                call,
                RpcError(
                    StatusCode.INTERNAL,
                    "server closed the stream without sending trailers",
                    initial_metadata=decode_metadata(call.response_headers or ()),
                ),
            )
        if not call.local_closed:
            # Early server closure (PROTOCOL-HTTP2.md): free the stream on both sides.
            self._out.append(h.rst_stream_frame(call.stream_id, NO_ERROR))
            call.local_closed = True
        else:
            # Fully closed by the server: DATA that follows is an error to answer (RFC 9113 6.1).
            self._ended_by_server.add(call.stream_id)
            order = self._ended_order
            order.append(call.stream_id)
            if len(order) > _ENDED_STREAMS_KEPT:
                self._ended_by_server.discard(order.popleft())
        self._release(call)
        self.changed.append(call)

    def _on_control_frame(
        self, frame_type: int, flags: int, stream_id: int, payload: memoryview
    ) -> None:
        if frame_type == h.WINDOW_UPDATE:
            self._on_window_update(stream_id, h.parse_u32(payload, "WINDOW_UPDATE") & 0x7FFFFFFF)
        elif frame_type == h.CONTINUATION:
            self._on_continuation(stream_id, flags, payload)
        elif frame_type in (h.SETTINGS, h.PING, h.GOAWAY):
            if stream_id:
                raise Http2Error(h.PROTOCOL_ERROR, f"frame type {frame_type} on a stream")
            if frame_type == h.SETTINGS:
                self._on_settings(flags, payload)
            elif frame_type == h.PING:
                self._on_ping(flags, payload)
            else:
                self._on_goaway(*h.parse_goaway(payload))
        elif frame_type == h.RST_STREAM:
            error_code = h.parse_u32(payload, "RST_STREAM")
            call = self.calls.get(stream_id)
            if call is None:
                self._check_opened(stream_id)
            else:
                self._on_stream_reset(call, error_code)
        elif frame_type == h.PRIORITY:
            # Checked (RFC 9113 6.3), then ignored: we do not prioritise.
            if not stream_id:
                raise Http2Error(h.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise Http2Error(h.FRAME_SIZE_ERROR, "PRIORITY payload must be 5 bytes")
        elif frame_type == h.PUSH_PROMISE:
            raise Http2Error(h.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")
        # Unknown frame types are ignored (RFC 9113 4.1, 5.5).

    def _on_stream_reset(self, call: CallState, error_code: int) -> None:
        if call.code is None:
            code, not_processed = status_from_reset(error_code)
            name = h.ERROR_NAMES.get(error_code, f"error code {error_code}")
            self._set_error(
                call,
                RpcError(
                    code,
                    f"stream reset by server: {name}",
                    initial_metadata=decode_metadata(call.response_headers or ()),
                    not_processed=not_processed,
                ),
            )
        self._release(call)
        self.changed.append(call)

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if not stream_id:
            if not increment:
                raise Http2Error(h.PROTOCOL_ERROR, "connection WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > h.MAX_WINDOW:
                raise Http2Error(h.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            if self.send_blocked:
                self.changed.extend(self.send_blocked)
            return
        call = self.calls.get(stream_id)
        if call is None:
            self._check_opened(stream_id)
            return
        call.send_window += increment
        if not increment or call.send_window > h.MAX_WINDOW:
            self.cancel_call(
                call,
                RpcError(
                    StatusCode.INTERNAL, f"invalid WINDOW_UPDATE of {increment} from the server"
                ),
                h.PROTOCOL_ERROR if not increment else h.FLOW_CONTROL_ERROR,
            )
        elif call in self.send_blocked:
            self.changed.append(call)

    def _on_settings(self, flags: int, payload: memoryview) -> None:
        if flags & h.ACK:
            if payload:
                raise Http2Error(h.FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        for code, value in h.parse_settings(payload):
            if code == h.INITIAL_WINDOW_SIZE:
                if value > h.MAX_WINDOW:
                    raise Http2Error(h.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for call in self.calls.values():
                    call.send_window += delta
                    if call.send_window > h.MAX_WINDOW:
                        raise Http2Error(h.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
                self.changed.extend(self.send_blocked)
            elif code == h.MAX_FRAME_SIZE:
                if not h.DEFAULT_MAX_FRAME_SIZE <= value < 2**24:
                    raise Http2Error(h.PROTOCOL_ERROR, f"invalid MAX_FRAME_SIZE {value}")
                self._peer_max_frame_size = value
            elif code == h.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
                self.slots_freed = True
            elif code == h.ENABLE_PUSH and value:
                raise Http2Error(h.PROTOCOL_ERROR, f"a server sent ENABLE_PUSH {value}")
        self._out.append(_SETTINGS_ACK)
        self.settings_received = True

    def _on_ping(self, flags: int, payload: memoryview) -> None:
        if len(payload) != 8:
            raise Http2Error(h.FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
        if flags & h.ACK:
            self.ping_acks.append(bytes(payload))
        else:
            self._out.append(h.frame(h.PING, h.ACK, 0, bytes(payload)))

    def _on_goaway(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        if self.goaway_last_stream_id is not None:
            last_stream_id = min(last_stream_id, self.goaway_last_stream_id)
        self.goaway_last_stream_id = last_stream_id
        if error_code == ENHANCE_YOUR_CALM and debug == b"too_many_pings":
            self.too_many_pings = True
        for stream_id, call in list(self.calls.items()):
            if stream_id > last_stream_id:
                reason = debug.decode("utf-8", "replace")
                self.cancel_call(
                    call,
                    RpcError(
                        StatusCode.UNAVAILABLE,
                        "the server is going away and did not accept this call"
                        + (f" ({reason})" if reason else ""),
                        not_processed=True,
                    ),
                )
        self.slots_freed = True


def _informational(headers: Headers) -> bool:
    """A 1xx response: more headers follow (RFC 9113 8.1)."""
    for name, value in headers:
        if name == b":status":
            return value[:1] == b"1"
    return False
