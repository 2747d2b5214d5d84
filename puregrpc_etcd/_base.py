"""The internal contract between the Client and its feature modules.

KV, watch, lease, concurrency, cluster, maintenance and auth are written against ``ClientBase``
only: how calls are sent (token, ``hasleader``, retries, deadlines, error mapping) and how keys
are namespaced live in one place, ``client.py``, which implements the abstract parts.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, AsyncContextManager, Awaitable, Callable, TypeVar

from puregrpc_etcd._keys import ALL_KEYS, key_range, prefix_range_end, to_key

if TYPE_CHECKING:
    import trio
    from google.protobuf.message import Message

    from puregrpc_etcd._rpcs import Rpc
    from puregrpc_etcd._streams import EtcdStream
    from puregrpc_etcd.grpc import Channel

M = TypeVar("M", bound="Message")


def check_timeout(timeout: object, what: str = "timeout") -> float | None:
    """A ``timeout`` argument as seconds: None, or a positive real number (not a bool).

    Every network call checks its ``timeout`` here before any I/O, so a bad one is a
    ``TypeError`` or ``ValueError`` rather than an instant ``DeadlineExceededError``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    seconds = float(timeout)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{what} must be > 0 seconds, or None, not {timeout!r}")
    return seconds


class ClientBase:
    """What every feature module may use of a client; ``client.Client`` fills it in.

    - ``_nursery``: the client's nursery; every background task of the client lives in it.
    - ``_channel``: the ``grpc.Channel`` (one HTTP/2 connection at a time, failover inside).
    - ``_timeout``: the client's default per-call timeout in seconds (None: no default).
    - ``_namespace``: a prefix added to every key going out and removed from every key coming
      back (``b""`` for a plain client; see ``client.namespace()``).
    - ``_closers``: coroutine functions run, in reverse order of registration, when the client
      closes, before its nursery is cancelled (each shielded and bounded in time by the client);
      e.g. the lease module revokes the leases it granted.
    - ``_unreachable_at``: when (trio time) a clean-up call on the way out last found no
      endpoint reachable (see ``_cleanup.cleanup_call``).
    - ``_username``: the user the client authenticates as (None: no password, no token).
    - ``_tls``: whether the client dials with TLS; endpoints it learns (``auto_sync``) keep to it.
    - ``_plaintext_warned``: whether ``_credentials.warn_if_exposed`` has warned already.
    """

    _nursery: trio.Nursery
    _channel: Channel
    _timeout: float | None
    _namespace: bytes = b""
    _closers: list[Callable[[], Awaitable[None]]]
    _unreachable_at: float = -math.inf
    _username: str | None = None
    _tls: bool = False
    _plaintext_warned: bool = False

    async def _unary(
        self,
        rpc: Rpc[M],
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
        raise NotImplementedError

    def _stream(
        self,
        rpc: Rpc[M],
        *,
        timeout: float | None = None,
    ) -> AsyncContextManager[EtcdStream[M]]:
        """Open one streaming call with the current auth token and ``hasleader`` metadata
        (``timeout`` checked by ``check_timeout``).

        The token is taken fresh (re-authenticating first if it is known to be stale) every time
        a stream is opened. Failures, opening it or on any message, are raised as the typed
        ``EtcdError`` subclasses of ``errors.py`` (``_streams.py``), as for unary calls.
        """
        raise NotImplementedError

    # Auth tokens, for the streams (a stream keeps the token it was opened with).

    def _token_marker(self) -> object:
        """An object that changes whenever the auth token does; None for a client without a
        user (no token to renew)."""
        return None

    async def _renew_token(self, stale: object) -> None:
        """Authenticate again, unless the token already changed since ``stale`` (a
        ``_token_marker()``) was taken; nothing for a client without a user."""

    def _is_stale_token(self, error: BaseException | None) -> bool:
        """Whether ``error`` means "authenticate again and repeat" (invalid or old token)."""
        return False

    # Keys: validation and namespacing, in and out.

    def _key(self, key: object, *, what: str = "key") -> bytes:
        """A single key, validated (non-empty) and namespaced."""
        return self._namespace + to_key(key, what=what)

    def _range(
        self,
        key: object,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: object = None,
    ) -> tuple[bytes, bytes]:
        """The namespaced (key, range_end) of a range request (see ``_keys.key_range``)."""
        start, end = key_range(key, prefix=prefix, from_key=from_key, range_end=range_end)
        namespace = self._namespace
        if not namespace:
            return start, end
        if start == ALL_KEYS and end == ALL_KEYS:
            return namespace, prefix_range_end(namespace)
        if end == ALL_KEYS:
            return namespace + start, prefix_range_end(namespace)
        return namespace + start, (namespace + end if end else b"")

    def _unkey(self, key: bytes) -> bytes:
        """A key as the caller sees it: the namespace removed."""
        namespace = self._namespace
        if namespace and key.startswith(namespace):
            return key[len(namespace) :]
        return key
