"""The Channel: what a program holds. Its lifetime (a nursery of its own, or the caller's),
its endpoint list, and the two kinds of call. The calls are ``call.py``'s and the connections
``connector.py``'s: the channel hands each call the connector, and neither calls back up."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional, Sequence, Tuple, Type, TypeVar

import trio
from google.protobuf.message import Message

from . import call as _call
from .connector import Connector, StreamOpener
from .endpoints import TlsOption
from .liveness import KeepalivePolicy
from .metadata import Metadata, metadata_block
from .status import RpcError, StatusCode

__all__ = ["Channel", "connect_channel"]

ReplyT = TypeVar("ReplyT", bound=Message)

DEFAULT_USER_AGENT = "grpc-python-puregrpc_etcd/0.1"
_MIN_WRITE_TIMEOUT = 10.0


class Channel:
    """A gRPC channel over one HTTP/2 connection at a time. See README.md, "The gRPC layer
    on its own". Two ways to open one: ``async with Channel(...)``, or ``connect_channel`` for a
    channel whose tasks live in the caller's nursery.

    ``connect_timeout`` bounds each connection attempt as a whole: TCP connect, TLS handshake
    and the wait for the server's first SETTINGS (a stopped process's kernel still completes
    TCP handshakes); the failure names the step. ``keepalive_interval`` (None: no pings) and
    ``keepalive_timeout`` set the ``KeepalivePolicy`` that finds a silent peer (liveness.py).
    ``open_stream(host, port)`` opens the byte stream of a connection (default
    ``trio.open_tcp_stream``; tests pass in-memory streams); TLS, where asked, goes on top.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TlsOption = None,
        connect_timeout: float = 5.0,
        keepalive_interval: float | None = None,
        keepalive_timeout: float = 20.0,
        max_send_message_size: int = 2 * 1024 * 1024,
        max_receive_message_size: int = 2**31 - 1,
        user_agent: str | None = None,
        backoff: Tuple[float, float] = (0.05, 2.0),
        open_stream: StreamOpener | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if keepalive_interval is not None and keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be positive (or None for no pings)")
        self._keepalive = (
            None
            if keepalive_interval is None
            else KeepalivePolicy(keepalive_interval, keepalive_timeout)
        )
        self._connector = Connector(
            endpoints,
            tls=tls,
            connect_timeout=connect_timeout,
            keepalive=self._keepalive,
            # A write that the peer does not take for this long ends the connection. Not the
            # liveness check (pings are, and a blocked write leaves them unanswered), so it
            # stays generous for slow links: at least the 10 s it was when connect() waited
            # 10 s for acks.
            write_timeout=max(keepalive_timeout, _MIN_WRITE_TIMEOUT),
            max_receive_message_size=max_receive_message_size,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            backoff=backoff,
            open_stream=open_stream,
        )
        self.max_send_message_size = max_send_message_size
        self._own_nursery: Any = None
        self._closed = False
        #: HPACK blocks of the metadata tuples sent lately (``metadata.metadata_block``).
        self.metadata_blocks: dict[object, bytes] = {}

    @property
    def connect_timeout(self) -> float:
        """The bound of one connection attempt (read-only: fixed when the channel is made)."""
        return self._connector.connect_timeout

    @property
    def max_receive_message_size(self) -> int:
        """The largest reply message accepted (read-only: fixed when the channel is made)."""
        return self._connector.max_receive_message_size

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Channel:
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._own_nursery = manager
        try:
            await nursery.start(self._serve)
        except BaseException as exc:
            await manager.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()
        manager, self._own_nursery = self._own_nursery, None
        # The body's exception propagates by itself; handing it to the nursery would only wrap
        # it in an ExceptionGroup, and our own tasks never raise.
        await manager.__aexit__(None, None, None)

    async def _serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self._connector.serve(task_status=task_status)

    def close(self) -> None:
        """Fail running calls, close the connection and stop the channel's tasks."""
        if self._closed:
            return
        self._closed = True
        self.metadata_blocks.clear()  # they hold auth tokens
        self._connector.close(RpcError(StatusCode.CANCELLED, "channel closed"))

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    # -- endpoints ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return self._connector.endpoints

    def set_endpoints(self, endpoints: Sequence[str]) -> None:
        """Replace the endpoint list; the current connection stays if its endpoint is listed."""
        self._connector.set_endpoints(endpoints)

    @property
    def current_endpoint(self) -> str | None:
        connection = self._connector.ready_connection()
        return connection.endpoint if connection is not None else None

    async def rotate(self) -> None:
        """Leave the current endpoint: running calls finish on the old connection, the next
        call connects to the next endpoint in the list."""
        self._connector.rotate()
        await trio.lowlevel.checkpoint()

    # -- calls --------------------------------------------------------------------------------

    async def unary_unary(
        self,
        method: str,
        request: Message,
        reply_type: Type[ReplyT],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> ReplyT:
        """One request, one reply; RpcError on any status but OK."""
        return await _call.unary_unary(
            self._connector,
            method,
            _call.encode(request, self.max_send_message_size),
            metadata_block(metadata, self.metadata_blocks),
            reply_type,
            timeout=timeout,
        )

    def stream(
        self,
        method: str,
        reply_type: Type[ReplyT],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> _call.StreamContext[ReplyT]:
        """A call of any cardinality, as an async context manager yielding a ``Stream``."""
        return _call.StreamContext(
            self._connector,
            method,
            metadata_block(metadata, self.metadata_blocks),
            reply_type,
            timeout=timeout,
            max_send_message_size=self.max_send_message_size,
        )


async def connect_channel(
    nursery: trio.Nursery, endpoints: Sequence[str], **options: Any
) -> Channel:
    """A channel whose tasks live in the caller's nursery; call ``close()`` when done."""
    channel = Channel(endpoints, **options)
    await nursery.start(channel._serve)
    return channel
