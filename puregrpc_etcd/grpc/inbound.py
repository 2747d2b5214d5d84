"""The inbound half of the HTTP/2 connection under ``GrpcProtocol``: frames cut from the
byte stream, HPACK decoding, SETTINGS, PING and WINDOW_UPDATE, and the checks RFC 9113 asks
of a client. What responses, trailers, resets and GOAWAYs mean for calls is replies.py's;
the windows and calls it updates are books.py's. Each hop goes down that chain, never up."""

from __future__ import annotations

from typing import Optional

from . import http2 as h
from .books import DEFAULT_STREAM_WINDOW, MAX_HEADER_LIST_SIZE
from .http2 import Headers, Http2Error
from .replies import ReplyEvents
from .status import ENHANCE_YOUR_CALM, RpcError, StatusCode

__all__ = ["MAX_HEADER_LIST_SIZE", "MAX_PENDING_ACKS", "FrameReader", "HeaderBlock"]

# Bounds on what a server can make us hold or do (see "Hostile servers" in protocol.py): the
# encoded header block (an encoded field is never larger than its share of the header list),
# the CONTINUATION frames in one block, empty ones included (a legitimate server needs four
# for a 64 KiB block), and the PING and SETTINGS acknowledgements queued before a write takes
# them (nghttp2 allows 1000 as well).
MAX_HEADER_BLOCK_SIZE = 2 * MAX_HEADER_LIST_SIZE
MAX_CONTINUATIONS = 256
MAX_PENDING_ACKS = 1000
# Header fields decoded in one pass of receive_data (about 5 us each with hpack): past it the
# pass stops and ``backlogged`` asks the I/O layer to let other tasks run first. Every other
# frame costs at most a few microseconds, so a pass over a 256 KiB read stays under 0.1 s.
FIELDS_PER_PASS = 4096
_SETTINGS_ACK = h.frame(h.SETTINGS, h.ACK, 0)
_unpack_frame_header = h.FRAME_HEADER.unpack_from
_DATA, _HEADERS, _END_STREAM, _PADDED = h.DATA, h.HEADERS, h.END_STREAM, h.PADDED
_LARGEST_FRAME = 9 + h.DEFAULT_MAX_FRAME_SIZE  # we never raise SETTINGS_MAX_FRAME_SIZE


class HeaderBlock:
    """A header block whose CONTINUATION frames are still arriving: its pieces, kept as they
    came (joined once at the end), and what it has cost so far."""

    __slots__ = ("flags", "frames", "pieces", "size", "stream_id")

    def __init__(self, stream_id: int, flags: int, first: bytes) -> None:
        self.stream_id = stream_id
        self.flags = flags
        self.pieces = [first]
        self.size = len(first)
        self.frames = 0


class FrameReader(ReplyEvents):
    """Reads the server's frames: checks them, keeps the connection-level ones (SETTINGS,
    PING, WINDOW_UPDATE) itself and hands the rest to the layers below (replies.py,
    books.py). Nothing below calls back into it."""

    def __init__(
        self, *, max_receive_message_size: int, stream_window: int = DEFAULT_STREAM_WINDOW
    ) -> None:
        super().__init__(
            max_receive_message_size=max_receive_message_size, stream_window=stream_window
        )
        # Set by receive_data for the I/O layer.
        self.backlogged = False
        self.frame_completed = False
        self._unparsed = b""
        self._decoder = h.HeaderDecoder(MAX_HEADER_LIST_SIZE)
        self._continuation: Optional[HeaderBlock] = None
        self._field_budget = 0

    # -- frames -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; results land in calls, ``changed`` and the flags. When
        ``backlogged`` is set after it, frames are left: call again (with b"" or more bytes)
        once other tasks have had their turn. ``frame_completed`` says whether these bytes
        completed a frame: bytes that never make one are no sign of a live peer."""
        self.backlogged = False
        self.frame_completed = False
        if self.failure is not None:
            return
        if type(data) is not bytes:
            data = bytes(data)  # received messages may keep views of it: it must not change
        self._field_budget = FIELDS_PER_PASS
        try:
            start = 0
            unparsed = self._unparsed
            if unparsed:
                # The frame cut by the last read is completed with the head of this one; the
                # rest is read where it lies rather than copied behind the cut frame.
                head = unparsed + data[:_LARGEST_FRAME]
                used = self._receive_frames(head, 0)
                self.frame_completed = used > 0
                if used < len(unparsed):  # still incomplete, or the pass stopped early
                    self._unparsed = head[used:] + data[_LARGEST_FRAME:]
                    return
                start = used - len(unparsed)
            used = self._receive_frames(data, start)
            if used > start:
                self.frame_completed = True
        except Http2Error as exc:
            self.close(exc.error_code)
            self.fail(RpcError(StatusCode.UNAVAILABLE, f"HTTP/2 protocol error from server: {exc}"))
            return
        self._unparsed = data[used:] if used < len(data) else b""

    def _receive_frames(self, data: bytes, offset: int) -> int:
        """Handle every whole frame in ``data`` from ``offset``; returns where they end."""
        view = memoryview(data)
        size = len(data)
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
                continue
            if frame_type == _HEADERS:
                self._on_headers(stream_id, flags, payload)
            else:
                self._on_control_frame(frame_type, flags, stream_id, payload)
            if self._field_budget <= 0:
                self.backlogged = True
                break
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
        if call.recv_window < 0:
            # Past the window we granted (never by a server that counts as we do, see
            # protocol.py): refusing it bounds what a call can be made to queue (grpc-go too).
            self._acknowledge(None, flow_controlled_length)
            error = RpcError(StatusCode.INTERNAL, "the server sent more than the stream window")
            self.cancel_call(call, error, h.FLOW_CONTROL_ERROR)
            return
        self._on_call_data(call, flow_controlled_length, data)
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
            self._continuation = HeaderBlock(stream_id, flags, bytes(block))

    def _on_continuation(self, stream_id: int, flags: int, payload: memoryview) -> None:
        pending = self._continuation
        if pending is None or pending.stream_id != stream_id:
            raise Http2Error(h.PROTOCOL_ERROR, f"unexpected CONTINUATION on stream {stream_id}")
        pending.frames += 1
        if pending.frames > MAX_CONTINUATIONS:
            raise Http2Error(
                ENHANCE_YOUR_CALM, f"more than {MAX_CONTINUATIONS} CONTINUATION frames in a block"
            )
        if payload:
            pending.size += len(payload)
            if pending.size > MAX_HEADER_BLOCK_SIZE:
                raise Http2Error(h.PROTOCOL_ERROR, "header block too large")
            pending.pieces.append(bytes(payload))
        if flags & h.END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, pending.flags, b"".join(pending.pieces))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self._decoder.decode(block)  # always: the HPACK state must stay in step
        self._field_budget -= len(headers)
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
            self._on_trailers(call, headers)
        else:
            raise Http2Error(h.PROTOCOL_ERROR, f"trailers without END_STREAM on {stream_id}")
        if ended:
            self._on_stream_ended(call)

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

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if not stream_id:
            if not increment:
                raise Http2Error(h.PROTOCOL_ERROR, "connection WINDOW_UPDATE of 0")
            window = self._send_window
            self._send_window = window + increment
            if self._send_window > h.MAX_WINDOW:
                raise Http2Error(h.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            # Senders wait only on a window <= 0: waking them for every update would cost a
            # flood of updates its size times the number of waiting calls.
            if window <= 0 and self.send_blocked:
                self.changed.extend(self.send_blocked)
            return
        call = self.calls.get(stream_id)
        if call is None:
            self._check_opened(stream_id)
            return
        window = call.send_window
        call.send_window = window + increment
        if not increment or call.send_window > h.MAX_WINDOW:
            self.cancel_call(
                call,
                RpcError(
                    StatusCode.INTERNAL, f"invalid WINDOW_UPDATE of {increment} from the server"
                ),
                h.PROTOCOL_ERROR if not increment else h.FLOW_CONTROL_ERROR,
            )
        elif window <= 0 and call in self.send_blocked:
            self.changed.append(call)

    def _on_settings(self, flags: int, payload: memoryview) -> None:
        if flags & h.ACK:
            if payload:
                raise Http2Error(h.FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        initial_window = highest = self._peer_initial_window
        for code, value in h.parse_settings(payload):
            if code == h.INITIAL_WINDOW_SIZE:
                if value > h.MAX_WINDOW:
                    raise Http2Error(h.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1")
                initial_window = value
                highest = max(highest, value)
            elif code == h.MAX_FRAME_SIZE:
                if not h.DEFAULT_MAX_FRAME_SIZE <= value < 2**24:
                    raise Http2Error(h.PROTOCOL_ERROR, f"invalid MAX_FRAME_SIZE {value}")
                self._peer_max_frame_size = value
            elif code == h.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
                self.slots_freed = True
            elif code == h.ENABLE_PUSH and value:
                raise Http2Error(h.PROTOCOL_ERROR, f"a server sent ENABLE_PUSH {value}")
        if initial_window != self._peer_initial_window or highest > initial_window:
            self._change_initial_window(initial_window, highest)
        self._queue_ack(_SETTINGS_ACK)
        self.settings_received = True

    def _change_initial_window(self, value: int, highest: int) -> None:
        """Apply a frame's INITIAL_WINDOW_SIZE changes at once: one pass over the calls per
        frame, not per setting. The windows are checked against the highest value the frame
        set, which is when they were largest had each been applied in turn."""
        delta = value - self._peer_initial_window
        overflow = h.MAX_WINDOW - (highest - self._peer_initial_window)
        self._peer_initial_window = value
        for call in self.calls.values():
            if call.send_window > overflow:
                raise Http2Error(h.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
            call.send_window += delta
        self.changed.extend(self.send_blocked)

    def _on_ping(self, flags: int, payload: memoryview) -> None:
        if len(payload) != 8:
            raise Http2Error(h.FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
        if flags & h.ACK:
            self.ping_acks.append(bytes(payload))
        else:
            self._queue_ack(h.frame(h.PING, h.ACK, 0, bytes(payload)))

    def _queue_ack(self, frame: bytes) -> None:
        """Acks are owed, but a server that sends pings faster than we can write must not grow
        our output without a bound; ``data_to_send`` resets the count."""
        self._pending_acks += 1
        if self._pending_acks > MAX_PENDING_ACKS:
            raise Http2Error(
                ENHANCE_YOUR_CALM, f"more than {MAX_PENDING_ACKS} PING or SETTINGS to acknowledge"
            )
        self._out.append(frame)


def _informational(headers: Headers) -> bool:
    """A 1xx response: more headers follow (RFC 9113 8.1)."""
    for name, value in headers:
        if name == b":status":
            return value[:1] == b"1"
    return False
