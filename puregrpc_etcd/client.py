"""The etcd ``Client`` and ``connect()``.

A ``Client`` is the flat API (``client.get``, ``client.watch``, ``client.lock``, ...) of
stateless feature mixins over two values: a ``_caller.Caller``, which owns the calls, the
connection and everything shared (watch stream, kept leases, auth token), and a
``_keys.KeySpace``, its namespace. ``client.namespace(p)`` is another ``Client`` over the same
caller with a longer key space.
"""

from __future__ import annotations

import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Sequence, TypeVar

import trio

from puregrpc_etcd._caller import Caller
from puregrpc_etcd._client_contract import check_timeout
from puregrpc_etcd._credentials import warn_if_exposed
from puregrpc_etcd._endpoints import (
    ConnectSettings,
    EndpointsArg,
    make_tls_context,
    parse_endpoints,
    settings_from_env,
)
from puregrpc_etcd._exception_groups import strip_own_group
from puregrpc_etcd._keys import ROOT, KeyLike, KeySpace
from puregrpc_etcd.concurrency import ConcurrencyMixin
from puregrpc_etcd.grpc.channel import connect_channel
from puregrpc_etcd.kv import KVMixin
from puregrpc_etcd.lease import LeaseMixin
from puregrpc_etcd.mirror import MirrorMixin
from puregrpc_etcd.watch import WatchMixin

if TYPE_CHECKING:
    from puregrpc_etcd.auth import Auth
    from puregrpc_etcd.cluster import Cluster
    from puregrpc_etcd.maintenance import Maintenance

__all__ = ["Client", "connect"]

C = TypeVar("C", bound="Client")

_MiB = 1024 * 1024
#: How long a connection attempt may take when neither the caller nor the URL/env says.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Ping a connection whose open streams have heard nothing for this long (gRFC A8's floor for
#: clients; etcd allows one ping every 5 s while streams are open).
DEFAULT_KEEPALIVE_INTERVAL = 10.0
#: A ping unanswered (and nothing else received) for this long ends the connection.
DEFAULT_KEEPALIVE_TIMEOUT = 5.0


class Client(ConcurrencyMixin, MirrorMixin, KVMixin, WatchMixin, LeaseMixin):
    """A connection to an etcd cluster; make one with ``connect()`` (or ``Client.from_env()``).

    All calls are methods of the client (``get``, ``put``, ``watch``, ``lease``, ...); cluster,
    maintenance and auth administration hang off ``client.cluster``, ``client.maintenance`` and
    ``client.auth``.
    """

    def __init__(self, caller: Caller, keyspace: KeySpace = ROOT) -> None:
        """A client over ``caller`` (made by ``connect()``) in ``keyspace`` (its namespace)."""
        self._caller = caller
        self._keyspace = keyspace
        # Bound once: the feature mixins call these on every request.
        self._unary = caller.unary
        self._stream = caller.stream

    def __repr__(self) -> str:
        caller = self._caller
        endpoint = getattr(getattr(caller, "channel", None), "current_endpoint", None)
        user = f", user={caller.username!r}" if caller.username else ""
        namespace = f", namespace={self._keyspace.prefix!r}" if self._keyspace.prefix else ""
        return f"<Client endpoint={endpoint!r}{user}{namespace}>"

    @classmethod
    def from_env(cls, **options: Any) -> AsyncContextManager[Client]:
        """``connect()`` configured from etcdctl's ``ETCDCTL_*`` variables."""
        return connect(from_env=True, **options)

    def namespace(self: C, prefix: KeyLike) -> C:
        """A view of this client in which every key lives under ``prefix``, as Go's
        ``client/v3/namespace``.

        Keys going out (KV, txn compares and nested ops, watches, locks, elections, lease
        attachments) get ``prefix`` in front, and keys coming back lose it; a range that runs to
        the end of the keyspace (``prefix=True`` on an empty key, ``from_key=True``,
        ``range_end=b"\\0"``) ends at the end of the namespace instead. The view shares the
        client's connection, nursery, watch stream and leases, and lives as long as the client.
        Views nest: ``client.namespace("a/").namespace("b/")`` is ``client.namespace("a/b/")``.
        Cluster, maintenance and auth calls are not namespaced (as in Go).
        """
        return type(self)(self._caller, self._keyspace.under(prefix))

    @property
    def cluster(self) -> Cluster:
        """Cluster membership: ``members()``, ``add_member()``, ``promote_member()``, ..."""
        from puregrpc_etcd.cluster import Cluster  # on first use: a one-shot get needs none

        return Cluster(self._caller)

    @property
    def maintenance(self) -> Maintenance:
        """Per-member maintenance: ``status()``, ``snapshot()``, ``defragment()``, ..."""
        from puregrpc_etcd.maintenance import Maintenance

        return Maintenance(self._caller)

    @property
    def auth(self) -> Auth:
        """Users, roles and permissions, and turning auth on and off."""
        from puregrpc_etcd.auth import Auth

        return Auth(self._caller)


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

    ``endpoints`` takes every form (``host:port``, ``http(s)://``, lists,
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
    caller = Caller(
        username=username,
        password=password,
        timeout=timeout,
        retries=retries,
        retry_backoff=retry_backoff,
        metadata=metadata,
        require_leader=require_leader,
    )
    client = Client(caller)
    try:
        async with trio.open_nursery() as outer:
            # Background tasks live behind a shield that only the client lifts, after the
            # close-time jobs: a caller's cancelled scope around the block must not kill the
            # connection that revoking leases and deleting lock keys still needs.
            system_scope = trio.CancelScope(shield=True)
            nursery: trio.Nursery = await outer.start(_run_system_nursery, system_scope)
            caller.nursery = nursery
            caller.channel_options = channel_options
            caller.tls = tls_context is not None
            try:
                caller.channel = await connect_channel(
                    nursery, settings.endpoints, **channel_options
                )
            except BaseException:
                # A channel option refused (ValueError): the shielded system nursery must end
                # too, or leaving the block would wait for it forever.
                system_scope.cancel()
                raise
            try:
                # Before the first dial: a warning turned into an error stops the password there.
                warn_if_exposed(caller, settings.endpoints, stacklevel=3)
                if username is not None:
                    await caller.authenticate()
                if auto_sync_interval is not None:
                    from puregrpc_etcd.cluster import auto_sync

                    await nursery.start(auto_sync, caller, auto_sync_interval)
                yield client
            finally:
                await caller.run_closers()
                caller.close_channels()
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
