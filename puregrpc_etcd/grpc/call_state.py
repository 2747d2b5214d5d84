"""What one call knows about its HTTP/2 stream: response headers, queued messages, the
final status, flow-control counts and the tasks parked on it. Written by the protocol,
read by the trio layer."""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Optional, Sequence, Tuple

from .framing import MessageDecoder
from .metadata import decode_metadata
from .status import RpcError, StatusCode

__all__ = ["CallState", "Headers"]

Headers = Sequence[Tuple[bytes, bytes]]


class CallState:
    """What one call knows about its stream; read by the trio layer, written here."""

    __slots__ = (
        "code",
        "credit",
        "decoder",
        "details",
        "error",
        "headers_seen",
        "local_closed",
        "messages",
        "queued_bytes",
        "recv_waiter",
        "recv_window",
        "released",
        "response_headers",
        "send_waiter",
        "send_window",
        "stream_id",
        "trailers",
        "unacked_bytes",
    )

    def __init__(self, max_receive_message_size: int) -> None:
        self.stream_id = 0
        self.decoder = MessageDecoder(max_receive_message_size)
        self.messages: Deque[bytes] = deque()
        self.queued_bytes = 0
        self.unacked_bytes = 0
        self.response_headers: Optional[Headers] = None
        self.trailers: Optional[Headers] = None
        self.code: Optional[StatusCode] = None
        self.details = ""
        self.error: Optional[RpcError] = None
        self.local_closed = False
        self.released = False
        # HTTP/2 stream state: header blocks received (response headers, then trailers), our
        # sending window, the receiving window we advertised and credit not yet handed back.
        self.headers_seen = 0
        self.send_window = 0
        self.recv_window = 0
        self.credit = 0
        # Owned by the I/O layer: the tasks parked on this call, if any.
        self.recv_waiter: Any = None
        self.send_waiter: Any = None

    @property
    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        headers = self.response_headers
        return None if headers is None else decode_metadata(headers)

    @property
    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        trailers = self.trailers
        return None if trailers is None else decode_metadata(trailers)
