"""h2's H2Connection with the two changes a long-lived, busy gRPC client connection needs:
a stream count kept by the caller, and GOAWAY that lets accepted streams finish."""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.errors
import h2.events

__all__ = ["GrpcH2Connection"]


class GrpcH2Connection(h2.connection.H2Connection):
    """H2Connection with two changes for a long-lived, busy gRPC client connection."""

    # Counted by GrpcProtocol. h2's own count walks every stream on each new stream, which is
    # quadratic with thousands of concurrent calls.
    open_stream_count = 0

    @property
    def open_outbound_streams(self) -> int:
        return self.open_stream_count

    def forget_stream(self, stream_id: int) -> None:
        """Drop a closed stream as h2's own count would have done while walking."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.closed:
            del self.streams[stream_id]
            self._closed_streams[stream_id] = stream.closed_by

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[h2.events.Event]]:
        # Keep the state machine open and queued output intact: accepted streams may finish.
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors._error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]
