"""gRPC over HTTP/2 in pure Python on trio (our own framing, HPACK from hpack): channels, unary
and streaming calls. Knows nothing of etcd; usable with any service of protobuf messages.

The names below are imported on first use (PEP 562), so that importing a light submodule such
as ``grpc.endpoints`` or ``grpc.status`` does not import trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .call import Stream, StreamContext
    from .channel import Channel, connect_channel
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
]

_HOMES = {
    "Stream": "call",
    "StreamContext": "call",
    "Channel": "channel",
    "connect_channel": "channel",
    "Metadata": "metadata",
    "RpcError": "status",
    "StatusCode": "status",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
