"""The sans-IO gRPC client protocol: HTTP/2 frames out (``http2.py``) and in (``inbound.py``),
per-call state (headers, messages, final status) and the flow-control books. No awaits,
clocks or sockets: the trio layer feeds bytes in, writes bytes out, wakes tasks.

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
connection (GOAWAY queued, then sent by the I/O layer) and fails every call as UNAVAILABLE.

Hostile servers. What a server sends costs us at most in proportion to it, and what it can
make us hold is bounded: a header block by its size and CONTINUATION count (inbound.py), the
acks owed between two writes by a count, a call's unread messages by its stream window (DATA
beyond it resets the call), an unfinished message by its size (framing.py); empty DATA is not
kept at all. Floods of GOAWAY, WINDOW_UPDATE or SETTINGS cost what they change, not the number
of calls each time, and a read whose header blocks are costly to decode is processed in passes
(``backlogged``) so that the I/O layer can let other tasks run in between. Past a bound the
connection ends (ENHANCE_YOUR_CALM or PROTOCOL_ERROR) and its calls fail as UNAVAILABLE.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple, Union

from . import http2 as h
from .call_state import CallState
from .framing import PREFIX_SIZE, FramingError
from .http2 import Headers
from .inbound import MAX_HEADER_LIST_SIZE, FrameReader, HeaderBlock
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
# Stream ids are 31 bits and never reused; drain the connection a little before they run out.
_LAST_USABLE_STREAM_ID = 2**31 - 1 - 2 * 1024
_UNLIMITED_STREAMS = 2**32
_CONNECTION_CREDIT_THRESHOLD = h.MAX_WINDOW // 2
_ENDED_STREAMS_KEPT = 256
#: At most this many acknowledgements alone wait for a request to carry them (``only_acks``).
ACKS_TO_HOLD = 8
_frame_header = h.frame_header
_DATA, _HEADERS, _END_STREAM = h.DATA, h.HEADERS, h.END_STREAM


class GrpcProtocol(FrameReader):
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
        self.backlogged = False
        self.frame_completed = False
        # Connection-level outcome.
        self.goaway_last_stream_id: Optional[int] = None
        self.too_many_pings = False
        self.failure: Optional[RpcError] = None
        self.goaway_error: Optional[int] = None  # of the GOAWAY we queued, if any
        # HTTP/2 connection state.
        self._out: List[Union[bytes, memoryview]] = []
        self._unparsed = b""
        self._next_stream_id = 1
        # The first header block tells the server we use no dynamic table (RFC 7541 6.3).
        self._block_prefix = b"\x20"
        self._decoder = h.HeaderDecoder(MAX_HEADER_LIST_SIZE)
        self._continuation: Optional[HeaderBlock] = None
        self._pending_acks = 0
        self._field_budget = 0
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
        self._pending_acks = 0
        return data

    @property
    def has_output(self) -> bool:
        """Whether bytes are waiting for data_to_send."""
        return bool(self._out)

    @property
    def only_acks(self) -> bool:
        """Whether what waits for data_to_send is a few PING and SETTINGS acknowledgements
        alone (the connection lets those wait a little for a request to carry them; more than
        ``ACKS_TO_HOLD``, a flood, leave at once)."""
        return 0 < len(self._out) == self._pending_acks <= ACKS_TO_HOLD

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
            self.goaway_error = error_code

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

    # -- the gRPC meaning of what arrives (FrameReader calls these) -----------------------------

    def _on_call_data(self, call: CallState, flow_controlled_length: int, data: memoryview) -> None:
        if call.code is not None:
            self._acknowledge(call, flow_controlled_length)
        else:
            size = len(data)
            if size != flow_controlled_length:
                self._acknowledge(call, flow_controlled_length - size)  # the padding
            if not size:
                return  # nothing to keep: an empty frame must cost nothing but its window
            call.unacked_bytes += size
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

    def _on_trailers(self, call: CallState, trailers: Headers) -> None:
        if call.code is None:
            _, _, grpc_status, grpc_message = scan_response_headers(trailers)
            self._finish(call, trailers, grpc_status, grpc_message)

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
        cut = call.decoder.partial_bytes
        if cut and code is StatusCode.OK:
            # A reply cut short is an error whatever the server says (grpc-go: INTERNAL).
            code = StatusCode.INTERNAL
            details = f"the server ended the call OK after {cut} bytes of an unfinished message"
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

    def _on_stream_reset(self, call: CallState, error_code: int) -> None:
        if call.code is None:
            code, not_processed = status_from_reset(error_code)
            name = h.error_name(error_code)
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

    def _on_goaway(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        if self.goaway_last_stream_id is not None:
            last_stream_id = min(last_stream_id, self.goaway_last_stream_id)
        self.goaway_last_stream_id = last_stream_id
        if error_code == ENHANCE_YOUR_CALM and debug == b"too_many_pings":
            self.too_many_pings = True
        # Calls are kept in stream-id order, so the refused ones are the last: a flood of
        # GOAWAYs costs what it refuses, not the number of calls each time.
        refused = []
        for stream_id in reversed(self.calls):
            if stream_id <= last_stream_id:
                break
            refused.append(self.calls[stream_id])
        if refused:
            reason = debug.decode("utf-8", "replace")
            error = RpcError(
                StatusCode.UNAVAILABLE,
                "the server is going away and did not accept this call"
                + (f" ({reason})" if reason else ""),
                not_processed=True,
            )
            for call in refused:
                self.cancel_call(call, error)
        self.slots_freed = True
