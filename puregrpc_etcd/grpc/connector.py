"""The connections of a channel: a list of endpoints and at most one live HTTP/2 connection to
one of them. Connects on demand (TLS with ALPN h2 where asked), fails over to the next
endpoint and backs off with jitter between failed rounds. ``call.py`` takes its connections
from here; this module knows nothing of calls or of the ``Channel`` above it."""

from __future__ import annotations

import math
import random
import ssl
from typing import Any, Awaitable, Callable, List, Optional, Sequence, Tuple

import trio

from .connection import Connection
from .endpoints import Endpoint, TlsOption, parse_endpoint
from .liveness import KeepalivePolicy
from .metadata import RequestHeaderTemplate
from .protocol import GrpcProtocol
from .status import RpcError, StatusCode
from .tls import check_tls_option, default_context, open_tls

__all__ = ["Connector", "StreamOpener"]

#: How a connection's bytes are reached: ``(host, port) -> stream``, as ``trio.open_tcp_stream``
#: (the default). TLS, where asked, is layered on what it returns.
StreamOpener = Callable[[str, int], Awaitable[trio.abc.Stream]]


class _ConnectAttempt:
    """One round over the endpoints, shared by every call that needs a connection meanwhile."""

    __slots__ = ("connection", "done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.connection: Optional[Connection] = None
        self.error: Optional[RpcError] = None


class Connector:
    """Endpoints, and the live connection to one of them. Its tasks (connect rounds, each
    connection's ``run``) live in the nursery that ``serve`` provides."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TlsOption,
        connect_timeout: float,
        keepalive: KeepalivePolicy | None,
        write_timeout: float,
        max_receive_message_size: int,
        user_agent: str,
        backoff: Tuple[float, float],
        open_stream: StreamOpener | None,
    ) -> None:
        self._endpoints: List[Endpoint] = _parse(endpoints, tls)
        self._tls = tls
        self._default_tls_context: Optional[ssl.SSLContext] = None
        self._open_stream: StreamOpener = open_stream or trio.open_tcp_stream
        self.connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._write_timeout = write_timeout
        self.max_receive_message_size = max_receive_message_size
        self._user_agent = user_agent
        self._backoff_initial, self._backoff_max = backoff
        self._failed_rounds = 0
        self._retry_at = -math.inf
        self._next_index = 0
        # How far the running connect attempt got, for the message if it times out.
        self._connect_phase = "tcp"
        self.connection: Optional[Connection] = None
        self._attempt: Optional[_ConnectAttempt] = None
        self._nursery: Optional[trio.Nursery] = None
        self._closed = False

    # -- lifetime -----------------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the connector's tasks until ``close``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def close(self, error: RpcError) -> None:
        """Fail the calls of the connection with ``error`` and stop the tasks."""
        if self._closed:
            return
        self._closed = True
        if self.connection is not None:
            self.connection.close(error)
            self.connection = None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- endpoints ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [endpoint.text for endpoint in self._endpoints]

    def set_endpoints(self, endpoints: Sequence[str]) -> None:
        """Replace the endpoint list; the current connection stays if its endpoint is listed."""
        self._endpoints = parsed = _parse(endpoints, self._tls)
        connection = self.connection
        current = [e.text for e in parsed]
        if connection is not None and connection.endpoint in current:
            self._next_index = current.index(connection.endpoint)
        else:
            self._next_index = 0
            self._drop_connection()

    def rotate(self) -> None:
        """Leave the current endpoint: running calls finish on the old connection, the next
        call connects to the next endpoint in the list."""
        if self.connection is not None:
            self._drop_connection()
            self._next_index = (self._next_index + 1) % len(self._endpoints)

    def _drop_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.drain()

    # -- connections --------------------------------------------------------------------------

    def ready_connection(self) -> Connection | None:
        """The live connection if there is one, without waiting."""
        connection = self.connection
        return connection if connection is not None and connection.usable else None

    async def get_connection(self) -> Connection:
        """The live connection, connecting first if there is none."""
        connection = self.connection
        if connection is not None and connection.usable:
            return connection
        if self._closed or self._nursery is None:
            state = "closed" if self._closed else "not open (use `async with Channel(...)`)"
            raise RpcError(StatusCode.UNAVAILABLE, f"channel is {state}", not_processed=True)
        attempt = self._attempt
        if attempt is None:
            if connection is not None:
                # It went away (GOAWAY, failure): that server may be going down; try another.
                self.connection = None
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
            # The list as the round began: set_endpoints (auto-sync) may replace it meanwhile.
            endpoints, start = self._endpoints, self._next_index
            count = len(endpoints)
            for offset in range(count):
                endpoint = endpoints[(start + offset) % count]
                self._connect_phase = "tcp"
                try:
                    with trio.fail_after(self.connect_timeout):
                        connection = await self._open(endpoint)
                except trio.TooSlowError:
                    failures.append(f"{endpoint.text}: {self._timeout_message()}")
                except (OSError, trio.BrokenResourceError, RpcError, ValueError) as exc:
                    # ValueError: a host name the ssl module refuses for TLS.
                    failures.append(f"{endpoint.text}: {_describe(exc)}")
                else:
                    self._failed_rounds = 0
                    self._retry_at = -math.inf
                    self.connection = attempt.connection = connection
                    listed = self.endpoints
                    if endpoint.text in listed:
                        self._next_index = listed.index(endpoint.text)
                    else:  # the list changed during the round and left this endpoint out
                        self._next_index = 0
                        self._drop_connection()  # its callers move to a listed endpoint
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

    async def _open(self, endpoint: Endpoint) -> Connection:
        assert self._nursery is not None
        stream = await self._open_stream(endpoint.host, endpoint.port)
        scheme = "http"
        context = self._tls_context(endpoint)
        if context is not None:
            self._connect_phase = "tls"
            stream = await open_tls(stream, context, endpoint.host)  # closes it on failure
            scheme = "https"
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


def _parse(endpoints: Sequence[str], tls: TlsOption) -> List[Endpoint]:
    parsed = [parse_endpoint(text) for text in endpoints]
    if not parsed:
        raise ValueError("a channel needs at least one endpoint")
    check_tls_option(tls, parsed)
    return parsed


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return exc.details
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    cause = exc.__cause__
    if cause is not None and not str(exc):
        return _describe(cause)
    return str(exc) or type(exc).__name__
