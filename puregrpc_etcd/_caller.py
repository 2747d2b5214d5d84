"""The caller: one object that owns a client's calls, shared by the client and its namespaces.

Every unary call goes through ``Caller.unary``: auth token and ``hasleader`` metadata, one
deadline over all attempts, retries as Go's clientv3 does them, and typed errors; streams open
through ``Caller.stream``. It also holds the connection's lifetime (nursery, channels, close-time
jobs) and the state that every view of a client shares: the one Watch stream (``watch_hub``) and
the leases kept alive on the one LeaseKeepAlive stream. The feature modules (``kv.py``,
``watch/``, ``lease/``, ...) are stateless over it, as redis-py's command mixins are over
one ``execute_command``.
"""

from __future__ import annotations

import math
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._client_contract import check_timeout
from puregrpc_etcd._credentials import warn_if_exposed
from puregrpc_etcd._outcome import final_error
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd._streams import etcd_stream
from puregrpc_etcd.errors import CONNECT_FAILURE, DeadlineExceededError, EtcdError
from puregrpc_etcd.grpc.channel import Channel, connect_channel
from puregrpc_etcd.grpc.status import RpcError, StatusCode

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._streams import EtcdStream
    from puregrpc_etcd.lease._keepalive import KeptLease, LeaseKeeper
    from puregrpc_etcd.watch._hub import WatchHub

__all__ = ["Caller"]

M = TypeVar("M", bound="Message")

#: How long each close-time job (``closers``) may take.
CLOSER_TIMEOUT = 2.0

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


class Caller:
    """Calls, deadlines, retries, auth and clean-up of one client and all its namespaces.

    - ``nursery``: every background task of the client lives in it (set by ``connect()``).
    - ``channel``: the ``grpc.Channel`` (one HTTP/2 connection at a time, failover inside);
      ``endpoint_channels``: one more per endpoint that per-member calls were sent to.
    - ``timeout``: the client's default per-call timeout in seconds (None: no default).
    - ``closers``: coroutine functions run, in reverse order of registration, when the client
      closes, before its nursery is cancelled (each shielded and bounded by ``CLOSER_TIMEOUT``);
      e.g. the lease module revokes the leases it granted.
    - ``unreachable_at``: when (trio time) a clean-up call on the way out last found no
      endpoint reachable (see ``_cleanup.cleanup_call``).
    - ``username``: the user the client authenticates as (None: no password, no token);
      ``token`` its current token, ``metadata`` what every call sends.
    - ``tls``: whether the client dials with TLS; endpoints it learns (``auto_sync``) keep to it.
    - ``plaintext_warned``: whether ``_credentials.warn_if_exposed`` has warned already.
    - Shared by every view: ``watch_hub`` (``watch/``; made on the first watch) and the lease
      state of ``lease/``: ``lease_keeper``, ``keepalive_token`` (the token the last
      LeaseKeepAlive stream was opened with) and ``owned_leases`` (granted for a block or a
      session, revoked when the client closes).
    """

    nursery: trio.Nursery
    channel: Channel
    tls: bool = False
    plaintext_warned: bool = False
    unreachable_at: float = -math.inf
    watch_hub: WatchHub | None = None
    lease_keeper: LeaseKeeper | None = None
    keepalive_token: object = None
    owned_leases: dict[int, KeptLease] | None = None

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
        self.username = username
        self._password = password
        self.token: str | None = None
        self.timeout = timeout
        self._retries = retries
        self._backoff = (low, high)
        self._user_metadata = tuple(metadata or ())
        self._require_leader = require_leader
        self.closers: list[Callable[[], Awaitable[None]]] = []
        self.endpoint_channels: dict[str, Channel] = {}
        self.channel_options: dict[str, Any] = {}
        self._auth_lock = trio.Lock()
        self.metadata = self._build_metadata()

    # The call path.

    def _build_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata = list(self._user_metadata)
        if self._require_leader:
            metadata.append(("hasleader", "true"))
        if self.token:
            metadata.append(("token", self.token))
        return tuple(metadata)

    async def unary(
        self,
        rpc: rpcs.Rpc[M],
        request: Message,
        *,
        timeout: float | None = None,
        repeatable: bool | None = None,
        endpoint: str | None = None,
        retries: int | None = None,
    ) -> M:
        """Send one unary etcd call (an entry of the table in ``_rpcs.py``); return its reply.

        Adds the auth token and ``hasleader`` metadata, applies ``timeout`` (checked by
        ``check_timeout``; else the client's default) together with the caller's trio deadline,
        retries on UNAVAILABLE when the call is repeatable (``rpc.repeatable``, unless
        ``repeatable`` says otherwise for this request) or when the request provably never
        reached the server, re-authenticates once on an invalid token, and raises the typed
        ``EtcdError`` subclasses of ``errors.py`` for every failure. ``endpoint`` sends the
        call to that one endpoint instead of the channel's current connection (no failover).
        ``retries`` overrides the client's retry count (0: one attempt, e.g. clean-up on exit).
        """
        method, reply_type = rpc.path, rpc.reply_type
        repeatable = rpc.repeatable if repeatable is None else repeatable
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        channel = self.channel if endpoint is None else await self.channel_for(endpoint)
        metadata = self.metadata
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
                and self.username is not None
                and error.details in _REAUTH_MESSAGES
                and rpc is not rpcs.AUTHENTICATE
            ):
                reauthenticated = True
                await self.reauthenticate(metadata)
            elif (
                error.code == _UNAVAILABLE
                and attempt < max_retries
                and (repeatable or error.not_processed or error.details == _NO_LEADER)
            ):
                attempt += 1
                delay = self.backoff_delay(attempt)
                if trio.current_time() + delay >= deadline:
                    raise final_error(error, first_error, method, repeatable)
                if endpoint is None and not error.not_processed and error.details:
                    # The member answered but cannot serve (no leader, stopping, ...): move on.
                    await _rotate(self.channel)
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
            metadata = self.metadata
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

    def backoff_delay(self, attempt: int) -> float:
        low, high = self._backoff
        # Full jitter over an exponentially growing window, as grpc's connection backoff.
        return min(high, low * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    @asynccontextmanager
    async def stream(
        self, rpc: rpcs.Rpc[M], *, timeout: float | None = None
    ) -> AsyncIterator[EtcdStream[M]]:
        """Open one streaming call with the current auth token and ``hasleader`` metadata
        (``timeout`` checked by ``check_timeout``).

        The token is taken fresh (re-authenticating first if it is known to be stale) every time
        a stream is opened. Failures, opening it or on any message, are raised as the typed
        ``EtcdError`` subclasses of ``errors.py`` (``_streams.py``), as for unary calls.
        """
        timeout = check_timeout(timeout)
        if self.username is not None and self.token is None:
            await self.reauthenticate(self.metadata)
        async with etcd_stream(self.channel, rpc, timeout, self.metadata) as stream:
            yield stream

    async def channel_for(self, endpoint: str) -> Channel:
        """A channel to that one endpoint (for per-member calls such as Status)."""
        channel = self.endpoint_channels.get(endpoint)
        if channel is None:
            warn_if_exposed(self, [endpoint], stacklevel=3)
            channel = await connect_channel(self.nursery, [endpoint], **self.channel_options)
            # Another call may have opened one meanwhile: keep a single channel per endpoint.
            kept = self.endpoint_channels.setdefault(endpoint, channel)
            if kept is not channel:
                channel.close()
            channel = kept
        return channel

    # Auth.

    async def authenticate(self) -> None:
        """Get a token for the configured user; without auth enabled carry on with none."""
        request = rpc_pb2.AuthenticateRequest(name=self.username, password=self._password or "")
        try:
            reply = await self.unary(rpcs.AUTHENTICATE, request)
        except EtcdError as error:
            if getattr(error, "details", None) == _AUTH_NOT_ENABLED:
                self.set_token(None)
                return
            raise
        self.set_token(reply.token or None)

    async def reauthenticate(self, stale_metadata: object) -> None:
        async with self._auth_lock:
            # Another call may have refreshed the token while this one waited for the lock.
            if self.metadata is stale_metadata or self.token is None:
                self.set_token(None)
                await self.authenticate()

    def set_token(self, token: str | None) -> None:
        self.token = token
        self.metadata = self._build_metadata()

    # Auth tokens, for the streams (a stream keeps the token it was opened with).

    def token_marker(self) -> object:
        """An object that changes whenever the auth token does; None for a client without a
        user (no token to renew)."""
        return self.metadata if self.username is not None else None

    async def renew_token(self, stale: object) -> None:
        """Authenticate again, unless the token already changed since ``stale`` (a
        ``token_marker()``) was taken; nothing for a client without a user."""
        if self.username is not None:
            await self.reauthenticate(stale)

    def is_stale_token(self, error: BaseException | None) -> bool:
        """Whether ``error`` means "authenticate again and repeat" (invalid or old token)."""
        details = getattr(error, "details", None)
        return self.username is not None and details in _REAUTH_MESSAGES

    # Lifetime.

    async def run_closers(self) -> None:
        for closer in reversed(self.closers):
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSER_TIMEOUT):
                try:
                    await closer()
                except Exception:  # closing goes on whatever one job did
                    pass
        self.closers.clear()

    def close_channels(self) -> None:
        for channel in (*self.endpoint_channels.values(), self.channel):
            channel.close()
        self.set_token(None)  # a closed client keeps no credential it got


async def _rotate(channel: Channel) -> None:
    if len(channel.endpoints) > 1:
        await channel.rotate()
