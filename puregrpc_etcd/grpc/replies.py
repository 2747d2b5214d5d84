"""What the server's responses, trailers, DATA, resets and GOAWAYs mean for gRPC calls (see
protocol.py for the theory of operation). ``FrameReader`` (inbound.py) has checked the frames
and calls these; they update the books below (books.py) and never call back up."""

from __future__ import annotations

from . import http2 as h
from .books import ConnectionBooks
from .call_state import CallState
from .framing import PREFIX_SIZE, FramingError
from .http2 import Headers
from .metadata import decode_metadata
from .status import (
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    RpcError,
    StatusCode,
    scan_response_headers,
    status_from_reset,
    status_from_response,
    status_from_trailers,
)

__all__ = ["ReplyEvents"]

_ENDED_STREAMS_KEPT = 256


class ReplyEvents(ConnectionBooks):
    """The gRPC meaning of checked inbound frames, applied to the books."""

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
