"""The asyncio face: the trio client's API for asyncio programs.

```python
import asyncio
from puregrpc_etcd import aio

async def main():
    async with aio.connect("127.0.0.1:2379") as client:
        await client.put("config/app/name", "MyApp")
        async with client.watch("config/", prefix=True) as events:
            async for event in events:
                ...

asyncio.run(main())
```

Every method of ``puregrpc_etcd.Client`` is here with the same arguments, results and errors,
as awaitables; its async context managers and async iterators are asyncio ones. The trio client
does the work in a daemon thread this client owns (``puregrpc_etcd._portal``); each method
forwards to the trio method of the same name, so their signatures are the trio client's by
construction. Works with any asyncio loop (uvloop too) on CPython and PyPy.

- Cancelling the awaiting task (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``)
  cancels the call at once: its HTTP/2 stream is reset and the connection stays usable. asyncio
  gives no way to read an enclosing deadline, so it does not travel to the server; pass
  ``timeout=`` (every call takes it) for a deadline that etcd sees as ``grpc-timeout``.
- A block (``async with client.lock(...)``) whose lease is lost is not interrupted while it runs:
  check ``lease.lost.is_set()``; with ``cancel_on_loss=True`` leaving the block raises the error.
- Any number of tasks (and loops in other threads) may share one client. After ``os.fork()``
  the child cannot use a client made before: it raises ``ForkedError``; connect again there.
- A client left open is closed at interpreter exit (bounded, silently), or by ``aclose()``.
- ``client.mirror(...).get()``/``items()``, ``client.watch(...)``, ``client.election(...)`` and
  the other plain (non-async) trio methods stay plain: they wait for one hop to the client's
  thread (no I/O).
- ``watch_callback`` (it takes a trio nursery) is not part of this face: iterate a watch in a
  task instead.
"""

from __future__ import annotations

import asyncio
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Generic,
    TypeVar,
    overload,
)

from puregrpc_etcd import _portal
from puregrpc_etcd import auth as _auth
from puregrpc_etcd import client as _client
from puregrpc_etcd import cluster as _cluster
from puregrpc_etcd import election as _election
from puregrpc_etcd import lock as _lock
from puregrpc_etcd import maintenance as _maintenance
from puregrpc_etcd import mirror as _mirror
from puregrpc_etcd import watch as _watch
from puregrpc_etcd._portal import ClientClosedError, ForkedError, P

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Concatenate

    from puregrpc_etcd.election import LeaderKey
    from puregrpc_etcd.mirror import MirrorChange
    from puregrpc_etcd.types import KeyValue
    from puregrpc_etcd.watch import Event

__all__ = [
    "Auth",
    "Client",
    "ClientClosedError",
    "Cluster",
    "Election",
    "ForkedError",
    "LeaderObserver",
    "Lock",
    "Maintenance",
    "Mirror",
    "TryLock",
    "WatchContext",
    "Watcher",
    "connect",
]

T = TypeVar("T")
W = TypeVar("W")

_Face = _portal.Face
_Made = _portal.Made
_same = _portal.same


async def _outcome(
    portal: _portal.Portal, outcome: _portal.Pending, what: _portal.Call | _portal.Holder | None
) -> Any:
    """Await an outcome; if the awaiting task is cancelled, cancel ``what``'s trio task."""
    if not outcome.done:
        loop = asyncio.get_running_loop()
        try:
            await outcome.wait_async(loop)
        except asyncio.CancelledError:
            if what is not None:
                portal.cancel(what)
                # Trio ends the call at once (its stream reset, a lock's waiting key deleted):
                # let that finish, bounded, so that the task's cancellation is complete.
                ending = outcome.wait_async(loop)
                await asyncio.wait({ending}, timeout=_portal.CANCEL_WAIT)
                if ending.done():
                    ending.exception()  # seen: asyncio must not log it as never retrieved
                else:
                    ending.cancel()
            raise
    return outcome.result()


async def _run(
    portal: _portal.Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
) -> Any:
    call = portal.submit(fn, *args, **kw)
    return await _outcome(portal, call.outcome, call)


class _Awaiting(_portal.Forward, Generic[P, T, W]):
    """``name = _Awaiting(TrioClass.name[, wrap])``: the asyncio form of an async method."""

    @overload
    def __init__(
        self: _Awaiting[P, T, T], method: Callable[Concatenate[Any, P], Awaitable[T]]
    ) -> None: ...
    @overload
    def __init__(
        self,
        method: Callable[Concatenate[Any, P], Awaitable[T]],
        wrap: Callable[[_portal.Portal, T], W],
    ) -> None: ...
    def __init__(self, method: Any, wrap: Any = _same) -> None:
        super().__init__(method, wrap)

    @overload
    def __get__(self, face: None, owner: type) -> _Awaiting[P, T, W]: ...
    @overload
    def __get__(self, face: _Face, owner: type) -> Callable[P, Awaitable[W]]: ...
    def __get__(self, face: _Face | None, owner: type) -> Any:
        return self._bind(face, _awaiting)


def _awaiting(portal: _portal.Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    if wrap is _same:

        async def awaiting(*args: Any, **kwargs: Any) -> Any:
            call = portal.submit(method, *args, **kwargs)
            return await _outcome(portal, call.outcome, call)

        return awaiting

    async def awaiting_wrapped(*args: Any, **kwargs: Any) -> Any:
        return wrap(portal, await _run(portal, method, *args, **kwargs))

    return awaiting_wrapped


class Held(Generic[W]):
    """A trio async context manager entered from asyncio: ``async with held as value:``."""

    __slots__ = ("_cm", "_holder", "_portal", "_wrap")

    def __init__(
        self, portal: _portal.Portal, cm: AsyncContextManager[Any], wrap: Callable[[Any], W]
    ) -> None:
        self._portal = portal
        self._cm = cm
        self._wrap = wrap
        self._holder: _portal.Holder | None = None

    async def __aenter__(self) -> W:
        if self._holder is not None:
            raise RuntimeError("this context manager can be entered only once")
        holder = self._holder = self._portal.hold(self._cm)
        return self._wrap(await _outcome(self._portal, holder.entered, holder))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        holder = self._holder
        if holder is None:
            return False
        try:
            holder.request_exit((exc_type, exc, tb))
        except ClientClosedError:
            return False
        return bool(await _outcome(self._portal, holder.exited, holder))


class _Entering(_portal.Forward, Generic[P, T, W]):
    """``name = _Entering(TrioClass.name[, wrap])``: an async context manager method, entered
    from asyncio (``async with client.lease(10) as lease:``)."""

    @overload
    def __init__(
        self: _Entering[P, T, T],
        method: Callable[Concatenate[Any, P], AsyncContextManager[T]],
    ) -> None: ...
    @overload
    def __init__(
        self,
        method: Callable[Concatenate[Any, P], AsyncContextManager[T]],
        wrap: Callable[[_portal.Portal, T], W],
    ) -> None: ...
    def __init__(self, method: Any, wrap: Any = _same) -> None:
        super().__init__(method, wrap)

    @overload
    def __get__(self, face: None, owner: type) -> _Entering[P, T, W]: ...
    @overload
    def __get__(self, face: _Face, owner: type) -> Callable[P, Held[W]]: ...
    def __get__(self, face: _Face | None, owner: type) -> Any:
        return self._bind(face, _entering)


def _entering(portal: _portal.Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def entering(*args: Any, **kwargs: Any) -> Held[Any]:
        return Held(portal, method(*args, **kwargs), lambda value: wrap(portal, value))

    return entering


class _Iterating(_portal.Forward, Generic[P, T]):
    """``name = _Iterating(TrioClass.name)``: an async generator method, iterated from asyncio."""

    def __init__(self, method: Callable[Concatenate[Any, P], AsyncIterator[T]]) -> None:
        super().__init__(method, _same)

    @overload
    def __get__(self, face: None, owner: type) -> _Iterating[P, T]: ...
    @overload
    def __get__(self, face: _Face, owner: type) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, face: _Face | None, owner: type) -> Any:
        return self._bind(face, _iterating)


def _iterating(portal: _portal.Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def iterating(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return _iterate(portal, method(*args, **kwargs))

    return iterating


async def _iterate(portal: _portal.Portal, iterator: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate a trio async iterator from asyncio; closing this closes that (``aclose``)."""
    try:
        while True:
            yield await _run(portal, iterator.__anext__)
    except StopAsyncIteration:
        return
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await _run(portal, aclose)
            except ClientClosedError:
                pass


# The sub-objects.


class Cluster(_Face):
    """``client.cluster``: membership (``puregrpc_etcd.Cluster`` for asyncio)."""

    __slots__ = ()
    members = _Awaiting(_cluster.Cluster.members)
    add_member = _Awaiting(_cluster.Cluster.add_member)
    remove_member = _Awaiting(_cluster.Cluster.remove_member)
    update_member = _Awaiting(_cluster.Cluster.update_member)
    promote_member = _Awaiting(_cluster.Cluster.promote_member)


class Maintenance(_Face):
    """``client.maintenance`` (``puregrpc_etcd.Maintenance`` for asyncio)."""

    __slots__ = ()
    status = _Awaiting(_maintenance.Maintenance.status)
    alarms = _Awaiting(_maintenance.Maintenance.alarms)
    disarm = _Awaiting(_maintenance.Maintenance.disarm)
    defragment = _Awaiting(_maintenance.Maintenance.defragment)
    hash_kv = _Awaiting(_maintenance.Maintenance.hash_kv)
    snapshot = _Awaiting(_maintenance.Maintenance.snapshot)
    move_leader = _Awaiting(_maintenance.Maintenance.move_leader)


class Auth(_Face):
    """``client.auth`` (``puregrpc_etcd.Auth`` for asyncio)."""

    __slots__ = ()
    enable = _Awaiting(_auth.Auth.enable)
    disable = _Awaiting(_auth.Auth.disable)
    status = _Awaiting(_auth.Auth.status)
    user_add = _Awaiting(_auth.Auth.user_add)
    user_delete = _Awaiting(_auth.Auth.user_delete)
    user_list = _Awaiting(_auth.Auth.user_list)
    user_get = _Awaiting(_auth.Auth.user_get)
    user_grant_role = _Awaiting(_auth.Auth.user_grant_role)
    user_revoke_role = _Awaiting(_auth.Auth.user_revoke_role)
    user_change_password = _Awaiting(_auth.Auth.user_change_password)
    role_add = _Awaiting(_auth.Auth.role_add)
    role_delete = _Awaiting(_auth.Auth.role_delete)
    role_list = _Awaiting(_auth.Auth.role_list)
    role_get = _Awaiting(_auth.Auth.role_get)
    role_grant_permission = _Awaiting(_auth.Auth.role_grant_permission)
    role_revoke_permission = _Awaiting(_auth.Auth.role_revoke_permission)


class Lock(_portal.LockFields):
    """A held lock (``puregrpc_etcd.Lock``): ``name``, ``key``, ``lease_id``, ``revision``
    (a fencing token), ``lost`` (a ``trio.Event``: read ``lost.is_set()``),
    ``await release()``."""

    __slots__ = ()
    release = _Awaiting(_lock.Lock.release)


class TryLock(_Face):
    """``client.try_lock(name)``: ``await`` it for a ``Lock`` or None (release it yourself), or
    ``async with ... as lock:`` (None when held elsewhere; released on exit)."""

    __slots__ = ("_held",)
    _target: _lock.TryLock

    def __await__(self) -> Generator[Any, None, Lock | None]:
        return self._acquire().__await__()

    async def _acquire(self) -> Lock | None:
        return _lock_or_none(self._portal, await _run(self._portal, _portal.await_it, self._target))

    async def __aenter__(self) -> Lock | None:
        self._held = Held(self._portal, self._target, self._wrap)
        return await self._held.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._held.__aexit__(exc_type, exc, tb)

    def _wrap(self, lock: _lock.Lock | None) -> Lock | None:
        return _lock_or_none(self._portal, lock)


class Watcher(_portal.WatcherFields):
    """An open watch (``puregrpc_etcd.Watcher``): ``async for event in watcher``."""

    __slots__ = ()
    _target: _watch.Watcher
    request_progress = _Awaiting(_watch.Watcher.request_progress)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        return await _run(self._portal, self._target.__anext__)  # type: ignore[no-any-return]


class WatchContext(_Face):
    """``client.watch(...)``: ``async with ... as watcher:``, or ``async for`` over it directly
    (the watch is created on the first step and cancelled when the iterator is closed)."""

    __slots__ = ("_held",)
    _target: _watch.WatchContext

    async def __aenter__(self) -> Watcher:
        self._held = Held(self._portal, self._target, self._wrap)
        return await self._held.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._held.__aexit__(exc_type, exc, tb)

    def _wrap(self, watcher: _watch.Watcher) -> Watcher:
        return Watcher(self._portal, watcher)

    async def __aiter__(self) -> AsyncIterator[Event]:
        async with self as watcher:
            async for event in watcher:
                yield event


class LeaderObserver(_Face):
    """``election.observe()``: ``async for`` the leader's values; ``aclose()`` or
    ``async with`` ends it."""

    __slots__ = ()
    _target: _election.LeaderObserver

    def __aiter__(self) -> LeaderObserver:
        return self

    async def __anext__(self) -> KeyValue:
        return await _run(self._portal, self._target.__anext__)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await _run(self._portal, self._target.aclose)

    def close(self) -> None:
        """End it without waiting (from plain code)."""
        self._portal.submit(self._target.aclose)

    async def __aenter__(self) -> LeaderObserver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Election(_Face):
    """``client.election(name)`` (``puregrpc_etcd.Election`` for asyncio)."""

    __slots__ = ()
    _target: _election.Election
    campaign = _Entering(_election.Election.campaign)
    leader = _Awaiting(_election.Election.leader)
    proclaim = _Awaiting(_election.Election.proclaim)
    resign = _Awaiting(_election.Election.resign)
    observe = _Made(_election.Election.observe, LeaderObserver)

    @property
    def leader_key(self) -> LeaderKey | None:
        return self._target.leader_key


class Mirror(_portal.MirrorFields):
    """A local, always-current copy of a prefix (``puregrpc_etcd.Mirror``)."""

    __slots__ = ()
    _target: _mirror.Mirror
    wait_for = _Awaiting(_mirror.Mirror.wait_for)
    get = _Made(_mirror.Mirror.get, _same)
    items = _Made(_mirror.Mirror.items, _same)
    changes = _Made(_mirror.Mirror.changes, _iterate)

    def __aiter__(self) -> AsyncIterator[MirrorChange]:
        return self.changes()


def _lock_or_none(portal: _portal.Portal, lock: _lock.Lock | None) -> Lock | None:
    return None if lock is None else Lock(portal, lock)


def _view(portal: _portal.Portal, target: Any) -> Client:
    return Client(portal, target, owner=False)


# The client.


class Client(_Face):
    """An asyncio etcd client: ``puregrpc_etcd.Client``'s API, each call an awaitable.

    Make one with ``connect()``; close it with ``await client.aclose()`` or by leaving its
    ``async with`` block.
    """

    __slots__ = ("__weakref__", "_owner")

    get = _Awaiting(_client.Client.get)
    get_value = _Awaiting(_client.Client.get_value)
    get_prefix = _Awaiting(_client.Client.get_prefix)
    get_json = _Awaiting(_client.Client.get_json)
    exists = _Awaiting(_client.Client.exists)
    put = _Awaiting(_client.Client.put)
    put_json = _Awaiting(_client.Client.put_json)  # type: ignore[arg-type]  # its **options
    delete = _Awaiting(_client.Client.delete)
    compact = _Awaiting(_client.Client.compact)
    txn = _Awaiting(_client.Client.txn)
    scan = _Iterating(_client.Client.scan)
    grant = _Awaiting(_client.Client.grant)
    revoke = _Awaiting(_client.Client.revoke)
    time_to_live = _Awaiting(_client.Client.time_to_live)
    leases = _Awaiting(_client.Client.leases)
    keepalive_once = _Awaiting(_client.Client.keepalive_once)
    lease = _Entering(_client.Client.lease)
    keep_alive = _Entering(_client.Client.keep_alive)
    lock = _Entering(_client.Client.lock, Lock)
    mirror = _Entering(_client.Client.mirror, Mirror)
    watch = _Made(_client.Client.watch, WatchContext)
    try_lock = _Made(_client.Client.try_lock, TryLock)
    acquire_lock = _Awaiting(_client.Client.acquire_lock, _lock_or_none)
    election = _Made(_client.Client.election, Election)
    observe_rpc = _Made(_client.Client.observe_rpc, LeaderObserver)
    namespace = _Made(_client.Client.namespace, _view)
    lock_rpc = _Awaiting(_client.Client.lock_rpc)
    unlock_rpc = _Awaiting(_client.Client.unlock_rpc)
    release_lock = _Awaiting(_client.Client.release_lock)
    campaign_rpc = _Awaiting(_client.Client.campaign_rpc)
    proclaim_rpc = _Awaiting(_client.Client.proclaim_rpc)
    leader_rpc = _Awaiting(_client.Client.leader_rpc)
    resign_rpc = _Awaiting(_client.Client.resign_rpc)

    def __init__(self, portal: _portal.Portal, target: Any, owner: bool = True) -> None:
        super().__init__(portal, target)
        self._owner = owner

    @classmethod
    def from_env(cls, **options: Any) -> Connecting:
        """``connect()`` configured from etcdctl's ``ETCDCTL_*`` variables."""
        return connect(from_env=True, **options)

    # Lifetime.

    async def aclose(self) -> None:
        """Close the client: cancel running calls, revoke its leases, end its thread."""
        if self._owner:
            portal = self._portal
            portal.close_soon()
            if not portal.finished.done:
                await asyncio.shield(portal.finished.wait_async(asyncio.get_running_loop()))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # Sub-objects.

    @property
    def cluster(self) -> Cluster:
        """Cluster membership: ``members()``, ``add_member()``, ``promote_member()``, ..."""
        return Cluster(self._portal, self._target.cluster)

    @property
    def maintenance(self) -> Maintenance:
        """Per-member maintenance: ``status()``, ``snapshot()``, ``defragment()``, ..."""
        return Maintenance(self._portal, self._target.maintenance)

    @property
    def auth(self) -> Auth:
        """Users, roles and permissions, and turning auth on and off."""
        return Auth(self._portal, self._target.auth)


class Connecting:
    """What ``connect()`` gives: ``async with`` it, or ``await`` it for a ``Client``."""

    __slots__ = ("_client", "_opener")

    def __init__(self, opener: Callable[[], AsyncContextManager[Any]]) -> None:
        self._opener = opener
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def _connect(self) -> Client:
        portal = _portal.Portal(self._opener, "puregrpc-etcd aio")
        try:
            target = await _outcome(portal, portal.opened, None)
        except BaseException:
            portal.close_soon()
            raise
        return Client(portal, target)

    async def __aenter__(self) -> Client:
        self._client = await self._connect()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()


@_portal.like(_client.connect)
def connect(*args: Any, **kwargs: Any) -> Connecting:
    """Connect to etcd: ``async with aio.connect(...) as client:`` (or ``client = await
    aio.connect(...)``, then ``await client.aclose()``); the arguments of
    ``puregrpc_etcd.connect()``."""
    return Connecting(lambda: _client.connect(*args, **kwargs))
