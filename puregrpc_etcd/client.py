"""The etcd ``Client`` and ``connect()``: one nursery, one channel, and the call path.

Every unary call goes through ``Client._unary``: auth token and ``hasleader`` metadata, one
deadline over all attempts, retries as Go's clientv3 does them, and typed errors.
"""

from __future__ import annotations

import math
import random
import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Sequence, TypeVar

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._base import check_timeout
from puregrpc_etcd._credentials import warn_if_exposed
from puregrpc_etcd._endpoints import (
    ConnectSettings,
    EndpointsArg,
    make_tls_context,
    parse_endpoints,
    settings_from_env,
)
from puregrpc_etcd._groups import strip_own_group
from puregrpc_etcd._outcome import final_error
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd._streams import etcd_stream
from puregrpc_etcd.auth import Auth
from puregrpc_etcd.cluster import Cluster, auto_sync
from puregrpc_etcd.concurrency import ConcurrencyMixin
from puregrpc_etcd.errors import CONNECT_FAILURE, DeadlineExceededError, EtcdError
from puregrpc_etcd.grpc.channel import Channel, connect_channel
from puregrpc_etcd.grpc.status import RpcError, StatusCode
from puregrpc_etcd.kv import KVMixin
from puregrpc_etcd.lease import LeaseMixin
from puregrpc_etcd.maintenance import Maintenance
from puregrpc_etcd.mirror import MirrorMixin
from puregrpc_etcd.namespace import NamespaceMixin
from puregrpc_etcd.watch import WatchMixin

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._streams import EtcdStream

__all__ = ["Client", "connect"]

M = TypeVar("M", bound="Message")

_MiB = 1024 * 1024
#: How long each close-time job (``_closers``) may take.
CLOSER_TIMEOUT = 2.0
#: How long a connection attempt may take when neither the caller nor the URL/env says.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Ping a connection whose open streams have heard nothing for this long (gRFC A8's floor for
#: clients; etcd allows one ping every 5 s while streams are open).
DEFAULT_KEEPALIVE_INTERVAL = 10.0
#: A ping unanswered (and nothing else received) for this long ends the connection.
DEFAULT_KEEPALIVE_TIMEOUT = 5.0

# etcd's answers that mean "authenticate again and repeat the call".
_REAUTH_MESSAGES = frozenset(
    {
        "etcdserver: invalid auth token",
        "etcdserver: revision of auth store is old",
        "etcdserver: user name is empty",
        # The auth store's own wording, passed through by the maintenance calls.
        "auth: invalid auth token",
        "auth: revision in header is old",
    }
)
_AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
_UNAVAILABLE = StatusCode.UNAVAILABLE
# Refused up front by the member (before any proposal), so even a write is safe to repeat.
_NO_LEADER = "etcdserver: no leader"


class Client(KVMixin, WatchMixin, LeaseMixin, ConcurrencyMixin, NamespaceMixin, MirrorMixin):
    """A connection to an etcd cluster; make one with ``connect()`` (or ``Client.from_env()``).

    All calls are methods of the client (``get``, ``put``, ``watch``, ``lease``, ...); cluster,
    maintenance and auth administration hang off ``client.cluster``, ``client.maintenance`` and
    ``client.auth``.
    """

    _username: str | None
    _password: str | None
    _token: str | None
    _retries: int
    _backoff: tuple[float, float]
    _metadata: tuple[tuple[str, str], ...]
    _endpoint_channels: dict[str, Channel]
    _channel_options: dict[str, Any]

    def __init__(
        self,
        *,
        username: str | None,
        password: str | None,
        timeout: float | None,
        retries: int,
        retry_backoff: tuple[float, float],
        metadata: Sequence[tuple[str, str]] | None,
        require_leader: bool,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        low, high = retry_backoff
        if not 0 <= low <= high:
            raise ValueError("retry_backoff must be (min, max) seconds with 0 <= min <= max")
        timeout = check_timeout(timeout)
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self._username = username
        self._password = password
        self._token = None
        self._timeout = timeout
        self._retries = retries
        self._backoff = (low, high)
        self._user_metadata = tuple(metadata or ())
        self._require_leader = require_leader
        self._closers = []
        self._endpoint_channels = {}
        self._channel_options = {}
        self._auth_lock = trio.Lock()
        self._metadata = self._build_metadata()

    def __repr__(self) -> str:
        endpoint = getattr(getattr(self, "_channel", None), "current_endpoint", None)
        user = f", user={self._username!r}" if self._username else ""
        return f"<Client endpoint={endpoint!r}{user}>"

    @classmethod
    def from_env(cls, **options: Any) -> AsyncContextManager[Client]:
        """``connect()`` configured from etcdctl's ``ETCDCTL_*`` variables."""
        return connect(from_env=True, **options)

    @property
    def cluster(self) -> Cluster:
        """Cluster membership: ``members()``, ``add_member()``, ``promote_member()``, ..."""
        return Cluster(self)

    @property
    def maintenance(self) -> Maintenance:
        """Per-member maintenance: ``status()``, ``snapshot()``, ``defragment()``, ..."""
        return Maintenance(self)

    @property
    def auth(self) -> Auth:
        """Users, roles and permissions, and turning auth on and off."""
        return Auth(self)

    # The call path.

    def _build_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata = list(self._user_metadata)
        if self._require_leader:
            metadata.append(("hasleader", "true"))
        if self._token:
            metadata.append(("token", self._token))
        return tuple(metadata)

    async def _unary(
        self,
        rpc: rpcs.Rpc[M],
        request: Message,
        *,
        timeout: float | None = None,
        repeatable: bool | None = None,
        endpoint: str | None = None,
        retries: int | None = None,
    ) -> M:
        method, reply_type = rpc.path, rpc.reply_type
        repeatable = rpc.repeatable if repeatable is None else repeatable
        timeout = self._timeout if timeout is None else check_timeout(timeout)
        channel = self._channel if endpoint is None else await self._channel_for(endpoint)
        metadata = self._metadata
        started = trio.current_time()
        deadline = math.inf if timeout is None else started + timeout
        try:
            return await channel.unary_unary(
                method, request, reply_type, timeout=timeout, metadata=metadata
            )
        except RpcError as caught:
            error = first_error = caught
        # The rare path: decide whether to authenticate again or retry, within one deadline.
        max_retries = self._retries if retries is None else retries
        attempt = 0
        reauthenticated = False
        while True:
            if (
                error.not_processed
                and error.details.startswith(CONNECT_FAILURE)
                and trio.current_time() - started >= channel.connect_timeout
            ):
                # A whole round of endpoints failed and the call has already waited a connect
                # timeout: more rounds would only multiply that wait (a hung member accepts TCP
                # and then says nothing), so this is the answer.
                raise final_error(error, first_error, method, repeatable)
            if (
                not reauthenticated
                and self._username is not None
                and error.details in _REAUTH_MESSAGES
                and rpc is not rpcs.AUTHENTICATE
            ):
                reauthenticated = True
                await self._reauthenticate(metadata)
            elif (
                error.code == _UNAVAILABLE
                and attempt < max_retries
                and (repeatable or error.not_processed or error.details == _NO_LEADER)
            ):
                attempt += 1
                delay = self._backoff_delay(attempt)
                if trio.current_time() + delay >= deadline:
                    raise final_error(error, first_error, method, repeatable)
                if endpoint is None and not error.not_processed and error.details:
                    # The member answered but cannot serve (no leader, stopping, ...): move on.
                    await _rotate(self._channel)
                await trio.sleep(delay)
            else:
                raise final_error(error, first_error, method, repeatable)
            remaining = None if timeout is None else deadline - trio.current_time()
            if remaining is not None and remaining <= 0:
                if error.code == _UNAVAILABLE:
                    # The backoff sleep overran the deadline (a loaded machine): as when the
                    # next backoff no longer fits, the failure met is what the caller needs.
                    raise final_error(error, first_error, method, repeatable)
                raise DeadlineExceededError(
                    StatusCode.DEADLINE_EXCEEDED, f"{method}: timed out after retries"
                )
            metadata = self._metadata
            try:
                return await channel.unary_unary(
                    method, request, reply_type, timeout=remaining, metadata=metadata
                )
            except RpcError as next_error:
                if next_error.code == StatusCode.DEADLINE_EXCEEDED and error.code == _UNAVAILABLE:
                    # The deadline ran out while retrying: as when the next backoff no longer
                    # fits, the earlier failure is what the caller needs to see.
                    raise final_error(error, first_error, method, repeatable) from None
                error = next_error

    def _backoff_delay(self, attempt: int) -> float:
        low, high = self._backoff
        # Full jitter over an exponentially growing window, as grpc's connection backoff.
        return min(high, low * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    @asynccontextmanager
    async def _stream(
        self, rpc: rpcs.Rpc[M], *, timeout: float | None = None
    ) -> AsyncIterator[EtcdStream[M]]:
        timeout = check_timeout(timeout)
        if self._username is not None and self._token is None:
            await self._reauthenticate(self._metadata)
        async with etcd_stream(self._channel, rpc, timeout, self._metadata) as stream:
            yield stream

    async def _channel_for(self, endpoint: str) -> Channel:
        """A channel to that one endpoint (for per-member calls such as Status)."""
        channel = self._endpoint_channels.get(endpoint)
        if channel is None:
            warn_if_exposed(self, [endpoint], stacklevel=3)
            channel = await connect_channel(self._nursery, [endpoint], **self._channel_options)
            # Another call may have opened one meanwhile: keep a single channel per endpoint.
            kept = self._endpoint_channels.setdefault(endpoint, channel)
            if kept is not channel:
                channel.close()
            channel = kept
        return channel

    # Auth.

    async def _authenticate(self) -> None:
        """Get a token for the configured user; without auth enabled carry on with none."""
        request = rpc_pb2.AuthenticateRequest(name=self._username, password=self._password or "")
        try:
            reply = await self._unary(rpcs.AUTHENTICATE, request)
        except EtcdError as error:
            if getattr(error, "details", None) == _AUTH_NOT_ENABLED:
                self._set_token(None)
                return
            raise
        self._set_token(reply.token or None)

    async def _reauthenticate(self, stale_metadata: object) -> None:
        async with self._auth_lock:
            # Another call may have refreshed the token while this one waited for the lock.
            if self._metadata is stale_metadata or self._token is None:
                self._set_token(None)
                await self._authenticate()

    def _set_token(self, token: str | None) -> None:
        self._token = token
        self._metadata = self._build_metadata()

    def _token_marker(self) -> object:
        return self._metadata if self._username is not None else None

    async def _renew_token(self, stale: object) -> None:
        if self._username is not None:
            await self._reauthenticate(stale)

    def _is_stale_token(self, error: BaseException | None) -> bool:
        details = getattr(error, "details", None)
        return self._username is not None and details in _REAUTH_MESSAGES

    # Lifetime.

    async def _run_closers(self) -> None:
        for closer in reversed(self._closers):
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSER_TIMEOUT):
                try:
                    await closer()
                except Exception:  # closing goes on whatever one job did
                    pass
        self._closers.clear()


async def _run_system_nursery(
    scope: trio.CancelScope, *, task_status: trio.TaskStatus[trio.Nursery]
) -> None:
    with scope:
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(nursery)
                await trio.sleep_forever()
        except BaseException as exc:
            unwrapped = strip_own_group(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from unwrapped.__cause__


async def _rotate(channel: Channel) -> None:
    if len(channel.endpoints) > 1:
        await channel.rotate()


@asynccontextmanager
async def connect(
    endpoints: EndpointsArg = None,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: ssl.SSLContext | bool | None = None,
    connect_timeout: float | None = None,
    timeout: float | None = None,
    retries: int = 5,
    retry_backoff: tuple[float, float] = (0.05, 2.0),
    keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    max_send_message_size: int = 2 * _MiB,
    max_receive_message_size: int = 2**31 - 1,
    metadata: Sequence[tuple[str, str]] | None = None,
    require_leader: bool = False,
    auto_sync_interval: float | None = None,
    from_env: bool = False,
) -> AsyncIterator[Client]:
    """Connect to etcd; an async context manager that gives a ``Client``.

    ``endpoints`` takes every form of API.md (``host:port``, ``http(s)://``, lists,
    comma-separated, one ``etcd://user:pw@h1,h2/?dial_timeout=5&command_timeout=10`` URL);
    ``from_env=True`` reads etcdctl's ``ETCDCTL_*`` variables. Settings from the URL or the
    environment apply where the caller did not give the argument (None): an explicit
    ``connect_timeout``, ``timeout``, ``username``/``password`` or TLS context wins over them,
    and ``connect_timeout`` falls back to 5 s. The client owns one nursery; leaving the block runs
    the clients' close-time jobs and ends every task.

    A silent member (hung, or cut off without FIN or RST) is found by pings within etcd's ping
    policy (``grpc.liveness``): with the defaults a call on it fails within 13 s (typically 7),
    an idle watch or lease stream moves within 16 s; reads retry on the next endpoint, writes
    raise ``UnavailableError`` saying they may have been applied. ``connect_timeout`` bounds
    each connect (TCP, TLS, the server's first SETTINGS; the error names the step), and a call
    stops reconnecting after a failed round once ``connect_timeout`` has passed.
    """
    if from_env:
        settings = settings_from_env()
        if endpoints is not None:
            settings = settings.overridden_by(parse_endpoints(endpoints))
    else:
        settings = parse_endpoints(endpoints)
    if username is None:
        username = settings.username
        if password is None:
            password = settings.password
    connect_timeout = check_timeout(connect_timeout, "connect_timeout")
    if connect_timeout is None:
        connect_timeout = settings.dial_timeout or DEFAULT_CONNECT_TIMEOUT
    if timeout is None:
        timeout = settings.command_timeout
    tls_context = _tls_context(tls, settings)
    channel_options: dict[str, Any] = {
        "tls": tls_context,
        "connect_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_timeout": keepalive_timeout,
        "max_send_message_size": max_send_message_size,
        "max_receive_message_size": max_receive_message_size,
        "backoff": retry_backoff,
    }
    client = Client(
        username=username,
        password=password,
        timeout=timeout,
        retries=retries,
        retry_backoff=retry_backoff,
        metadata=metadata,
        require_leader=require_leader,
    )
    try:
        async with trio.open_nursery() as outer:
            # Background tasks live behind a shield that only the client lifts, after the
            # close-time jobs: a caller's cancelled scope around the block must not kill the
            # connection that revoking leases and deleting lock keys still needs.
            system_scope = trio.CancelScope(shield=True)
            nursery: trio.Nursery = await outer.start(_run_system_nursery, system_scope)
            client._nursery = nursery
            client._channel_options = channel_options
            client._tls = tls_context is not None
            try:
                client._channel = await connect_channel(
                    nursery, settings.endpoints, **channel_options
                )
            except BaseException:
                # A channel option refused (ValueError): the shielded system nursery must end
                # too, or leaving the block would wait for it forever.
                system_scope.cancel()
                raise
            try:
                # Before the first dial: a warning turned into an error stops the password there.
                warn_if_exposed(client, settings.endpoints, stacklevel=3)
                if username is not None:
                    await client._authenticate()
                if auto_sync_interval is not None:
                    await nursery.start(auto_sync, client, auto_sync_interval)
                yield client
            finally:
                await client._run_closers()
                for channel in (*client._endpoint_channels.values(), client._channel):
                    channel.close()
                client._set_token(None)  # a closed client keeps no credential it got
                system_scope.cancel()
    except BaseException as exc:
        # Only the group the client's own nursery put around the error comes off: a group
        # raised by the body (say, by a nursery of its own) comes out as it went in.
        unwrapped = strip_own_group(exc)
        if unwrapped is exc:
            raise
        raise unwrapped from unwrapped.__cause__


def _tls_context(
    tls: ssl.SSLContext | bool | None, settings: ConnectSettings
) -> ssl.SSLContext | None:
    if isinstance(tls, ssl.SSLContext):
        return tls
    if tls is True:
        if settings.cacert or settings.cert or settings.insecure_skip_verify:
            return settings.tls_context() or make_tls_context()
        return make_tls_context()
    if tls is not None and tls is not False:
        raise TypeError("tls must be an ssl.SSLContext, True, or None")
    return settings.tls_context()
