"""The Channel: a list of endpoints and at most one live HTTP/2 connection to one of them.
It connects on demand (TLS with ALPN h2 where asked), fails over to the next endpoint,
backs off with jitter between failed rounds, and hands calls to ``call.py``."""

from __future__ import annotations

import math
import random
import ssl
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, AsyncIterator, List, Optional, Sequence, Tuple, Type, TypeVar

import trio
from google.protobuf.message import Message

from . import call as _call
from .connection import Connection
from .endpoints import Endpoint, TlsOption, parse_endpoint
from .liveness import KeepalivePolicy
from .metadata import Metadata, RequestHeaderTemplate
from .protocol import GrpcProtocol
from .status import RpcError, StatusCode
from .tls import check_tls_option, default_context, open_tls

__all__ = ["Channel", "connect_channel", "open_channel"]

ReplyT = TypeVar("ReplyT", bound=Message)

DEFAULT_USER_AGENT = "grpc-python-puregrpc_etcd/0.1"
_MIN_WRITE_TIMEOUT = 10.0


class _ConnectAttempt:
    """One round over the endpoints, shared by every call that needs a connection meanwhile."""

    __slots__ = ("connection", "done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.connection: Optional[Connection] = None
        self.error: Optional[RpcError] = None


class Channel:
    """A gRPC channel over one HTTP/2 connection at a time. See API.md, "The generic gRPC
    layer". Use ``async with Channel(...)``, ``open_channel(...)`` or ``connect_channel``.

    ``connect_timeout`` bounds each connection attempt as a whole: TCP connect, TLS handshake
    and the wait for the server's first SETTINGS (a stopped process's kernel still completes
    TCP handshakes); the failure names the step. ``keepalive_interval`` (None: no pings) and
    ``keepalive_timeout`` set the ``KeepalivePolicy`` that finds a silent peer (liveness.py).
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
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self._endpoints: List[Endpoint] = [parse_endpoint(text) for text in endpoints]
        if not self._endpoints:
            raise ValueError("a channel needs at least one endpoint")
        check_tls_option(tls, self._endpoints)
        if keepalive_interval is not None and keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be positive (or None for no pings)")
        self._tls = tls
        self._default_tls_context: Optional[ssl.SSLContext] = None
        self.connect_timeout = connect_timeout
        self._keepalive = (
            None
            if keepalive_interval is None
            else KeepalivePolicy(keepalive_interval, keepalive_timeout)
        )
        # A write that the peer does not take for this long ends the connection. Not the
        # liveness check (pings are, and a blocked write leaves them unanswered), so it stays
        # generous for slow links: at least the 10 s it was when connect() waited 10 s for acks.
        self._write_timeout = max(keepalive_timeout, _MIN_WRITE_TIMEOUT)
        self.max_send_message_size = max_send_message_size
        self.max_receive_message_size = max_receive_message_size
        self._user_agent = user_agent or DEFAULT_USER_AGENT
        self._backoff_initial, self._backoff_max = backoff
        self._failed_rounds = 0
        self._retry_at = -math.inf
        self._next_index = 0
        # How far the running connect attempt got, for the message if it times out.
        self._connect_phase = "tcp"
        self._connection: Optional[Connection] = None
        self._attempt: Optional[_ConnectAttempt] = None
        self._nursery: Optional[trio.Nursery] = None
        self._own_nursery: Any = None
        self._closed = False
        #: HPACK blocks of the metadata tuples sent lately (``metadata.metadata_block``).
        self.metadata_blocks: dict[object, bytes] = {}

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
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def close(self) -> None:
        """Fail running calls, close the connection and stop the channel's tasks."""
        if self._closed:
            return
        self._closed = True
        self.metadata_blocks.clear()  # they hold auth tokens
        if self._connection is not None:
            self._connection.close(RpcError(StatusCode.CANCELLED, "channel closed"))
            self._connection = None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    # -- endpoints ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [endpoint.text for endpoint in self._endpoints]

    def set_endpoints(self, endpoints: Sequence[str]) -> None:
        """Replace the endpoint list; the current connection stays if its endpoint is listed."""
        parsed = [parse_endpoint(text) for text in endpoints]
        if not parsed:
            raise ValueError("a channel needs at least one endpoint")
        check_tls_option(self._tls, parsed)
        self._endpoints = parsed
        connection = self._connection
        current = [e.text for e in parsed]
        if connection is not None and connection.endpoint in current:
            self._next_index = current.index(connection.endpoint)
        else:
            self._next_index = 0
            self._drop_connection()

    @property
    def current_endpoint(self) -> str | None:
        connection = self._connection
        return connection.endpoint if connection is not None and connection.usable else None

    async def rotate(self) -> None:
        """Leave the current endpoint: running calls finish on the old connection, the next
        call connects to the next endpoint in the list."""
        if self._connection is not None:
            self._drop_connection()
            self._next_index = (self._next_index + 1) % len(self._endpoints)
        await trio.lowlevel.checkpoint()

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.drain()

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
            self,
            method=method,
            request=request,
            reply_type=reply_type,
            timeout=timeout,
            metadata=metadata,
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
        return _call.StreamContext(self, method, reply_type, timeout, metadata)

    # -- connecting ---------------------------------------------------------------------------

    def ready_connection(self) -> Connection | None:
        """The live connection if there is one, without waiting."""
        connection = self._connection
        return connection if connection is not None and connection.usable else None

    async def get_connection(self) -> Connection:
        """The live connection, connecting first if there is none."""
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if self._closed or self._nursery is None:
            state = "closed" if self._closed else "not open (use `async with Channel(...)`)"
            raise RpcError(StatusCode.UNAVAILABLE, f"channel is {state}", not_processed=True)
        attempt = self._attempt
        if attempt is None:
            if connection is not None:
                # It went away (GOAWAY, failure): that server may be going down; try another.
                self._connection = None
                self._next_index = (self._next_index + 1) % len(self._endpoints)
            attempt = self._attempt = _ConnectAttempt()
            self._nursery.start_soon(self._connect_round, attempt)
        await attempt.done.wait()
        if attempt.connection is not None:
            return attempt.connection
        assert attempt.error is not None
        raise attempt.error

    async def _connect_round(self, attempt: _ConnectAttempt) -> None:
        try:
            await trio.sleep_until(self._retry_at)
            failures: list[str] = []
            count = len(self._endpoints)
            for offset in range(count):
                index = (self._next_index + offset) % count
                endpoint = self._endpoints[index]
                self._connect_phase = "tcp"
                try:
                    with trio.fail_after(self.connect_timeout):
                        connection = await self._open(endpoint)
                except trio.TooSlowError:
                    failures.append(f"{endpoint.text}: {self._timeout_message()}")
                except (OSError, trio.BrokenResourceError, RpcError) as exc:
                    failures.append(f"{endpoint.text}: {_describe(exc)}")
                else:
                    self._next_index = index
                    self._failed_rounds = 0
                    self._retry_at = -math.inf
                    self._connection = attempt.connection = connection
                    return
            self._failed_rounds += 1
            delay = min(self._backoff_max, self._backoff_initial * 2 ** (self._failed_rounds - 1))
            self._retry_at = trio.current_time() + delay * random.uniform(0.5, 1.0)
            attempt.error = RpcError(
                StatusCode.UNAVAILABLE,
                "cannot connect to any endpoint: " + "; ".join(failures),
                not_processed=True,
            )
        finally:
            if attempt.connection is None and attempt.error is None:
                attempt.error = RpcError(
                    StatusCode.UNAVAILABLE, "channel is closed", not_processed=True
                )
            self._attempt = None
            attempt.done.set()

    def _timeout_message(self) -> str:
        """What the connect timeout cut short: the TCP connect, the TLS handshake, or the wait
        for the server's first SETTINGS (a port that accepts and then says nothing, such as a
        stopped process whose kernel still completes TCP handshakes)."""
        limit = f"{self.connect_timeout:g} s"
        if self._connect_phase == "tls":
            return f"TLS handshake not finished within {limit}"
        if self._connect_phase == "settings":
            return f"connection accepted but the server sent no HTTP/2 settings within {limit}"
        return f"TCP connect timed out after {limit}"

    def _tls_context(self, endpoint: Endpoint) -> ssl.SSLContext | None:
        wants_tls = endpoint.scheme_tls if endpoint.scheme_tls is not None else bool(self._tls)
        if not wants_tls:
            return None
        if isinstance(self._tls, ssl.SSLContext):
            return self._tls  # the caller's: offered h2 only while wrapping (tls.py)
        if self._default_tls_context is None:
            self._default_tls_context = default_context()
        return self._default_tls_context

    async def _open_stream(self, endpoint: Endpoint) -> tuple[trio.abc.Stream, str]:
        """A byte stream to the endpoint and its scheme (in-memory tests override this)."""
        tcp_stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        context = self._tls_context(endpoint)
        if context is None:
            return tcp_stream, "http"
        self._connect_phase = "tls"
        return await open_tls(tcp_stream, context, endpoint.host), "https"

    async def _open(self, endpoint: Endpoint) -> Connection:
        assert self._nursery is not None
        stream, scheme = await self._open_stream(endpoint)
        try:
            headers = RequestHeaderTemplate(
                scheme=scheme, authority=endpoint.authority, user_agent=self._user_agent
            )
            connection = Connection(
                stream,
                GrpcProtocol(max_receive_message_size=self.max_receive_message_size),
                endpoint=endpoint.text,
                headers=headers,
                keepalive=self._keepalive,
                write_timeout=self._write_timeout,
            )
            self._connect_phase = "settings"
            await connection.handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        self._nursery.start_soon(connection.run)
        return connection


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return exc.details
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    cause = exc.__cause__
    if cause is not None and not str(exc):
        return _describe(cause)
    return str(exc) or type(exc).__name__


@asynccontextmanager
async def open_channel(endpoints: Sequence[str], **options: Any) -> AsyncIterator[Channel]:
    """``async with open_channel([...]) as channel``: the same as ``async with Channel(...)``."""
    async with Channel(endpoints, **options) as channel:
        yield channel


async def connect_channel(
    nursery: trio.Nursery, endpoints: Sequence[str], **options: Any
) -> Channel:
    """A channel whose tasks live in the caller's nursery; call ``close()`` when done."""
    channel = Channel(endpoints, **options)
    await nursery.start(channel._serve)
    return channel
