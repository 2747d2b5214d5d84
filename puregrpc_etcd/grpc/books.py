"""The books of one HTTP/2 connection under ``GrpcProtocol`` (see protocol.py for the theory
of operation): its calls and stream ids, both directions' flow-control windows, and the frames
we queue for the I/O layer (HEADERS, DATA, WINDOW_UPDATE, RST_STREAM, PING, GOAWAY). The
layers above (replies.py, inbound.py) call into it; it calls nothing above it."""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple, Union

from . import http2 as h
from .call_state import CallState
from .framing import PREFIX_SIZE
from .status import CANCEL, NO_ERROR, RpcError

__all__ = ["ACKS_TO_HOLD", "DEFAULT_STREAM_WINDOW", "MAX_HEADER_LIST_SIZE", "ConnectionBooks"]

MAX_HEADER_LIST_SIZE = 64 * 1024
DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024
# Stream ids are 31 bits and never reused; drain the connection a little before they run out.
_LAST_USABLE_STREAM_ID = 2**31 - 1 - 2 * 1024
_UNLIMITED_STREAMS = 2**32
_CONNECTION_CREDIT_THRESHOLD = h.MAX_WINDOW // 2
#: At most this many acknowledgements alone wait for a request to carry them (``only_acks``).
ACKS_TO_HOLD = 8
_frame_header = h.frame_header
_DATA, _HEADERS, _END_STREAM = h.DATA, h.HEADERS, h.END_STREAM


class ConnectionBooks:
    """Calls, windows and queued frames of one connection. See the module docstring."""

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
        self.goaway_error: Optional[int] = None  # of the GOAWAY we queued, if any
        # HTTP/2 connection state.
        self._out: List[Union[bytes, memoryview]] = []
        self._next_stream_id = 1
        # The first header block tells the server we use no dynamic table (RFC 7541 6.3).
        self._block_prefix = b"\x20"
        self._pending_acks = 0  # PING and SETTINGS acks queued since the last write
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
