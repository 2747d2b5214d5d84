"""The sans-IO gRPC client protocol: HTTP/2 frames out (``http2.py``) and in (``inbound.py``),
per-call state (headers, messages, final status) and the flow-control books. No awaits,
clocks or sockets: the trio layer feeds bytes in, writes bytes out, wakes tasks.

Layers, each calling only the one below it: ``inbound.FrameReader`` checks the server's
frames and handles SETTINGS, PING and WINDOW_UPDATE; ``replies.ReplyEvents`` gives responses,
trailers, DATA, resets and GOAWAYs their gRPC meaning; ``books.ConnectionBooks`` keeps the
calls, stream ids and windows and queues our frames. ``GrpcProtocol`` is the whole stack.

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

from .books import DEFAULT_STREAM_WINDOW
from .inbound import FrameReader

__all__ = ["DEFAULT_STREAM_WINDOW", "GrpcProtocol"]


class GrpcProtocol(FrameReader):
    """One HTTP/2 connection's gRPC client state. See the module docstring."""
