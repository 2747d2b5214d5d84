"""gRPC over HTTP/2 in pure Python on trio (our own framing, HPACK from hpack): channels, unary
and streaming calls. Knows nothing of etcd; usable with any service of protobuf messages."""

from __future__ import annotations

from .call import Stream, StreamContext
from .channel import Channel, connect_channel, open_channel
from .metadata import Metadata
from .status import RpcError, StatusCode

__all__ = [
    "Channel",
    "Metadata",
    "RpcError",
    "StatusCode",
    "Stream",
    "StreamContext",
    "connect_channel",
    "open_channel",
]
