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
forwards to the trio method of the same name (``puregrpc_etcd._face``), so their signatures
are the trio client's by construction. Works with any asyncio loop (uvloop too) on CPython and PyPy.

- Cancelling the awaiting task (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``)
  cancels the call at once: its HTTP/2 stream is reset and the connection stays usable; a lock
  (or lease) it took just before is released before the task's cancellation ends. asyncio
  gives a call no way to read an enclosing deadline (an ``asyncio.timeout()``'s ``Timeout`` is
  known only to the code that opened it, ``asyncio.wait_for``'s to nobody), so it does not
  travel to the server; pass ``timeout=`` (every call takes it; inside ``async with
  asyncio.timeout(...) as scope``, ``timeout=scope.when() - loop.time()``) for a deadline that
  etcd sees as ``grpc-timeout``.
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
from typing import TYPE_CHECKING, Any, AsyncContextManager, Callable

from puregrpc_etcd import _forwards, _portal
from puregrpc_etcd import client as _client
from puregrpc_etcd import election as _election
from puregrpc_etcd import lock as _lock
from puregrpc_etcd import mirror as _mirror
from puregrpc_etcd import watch as _watch
from puregrpc_etcd._awaiting import AwaitingFace as _Face

# Held: what ``async with client.lease(...)`` gives, kept importable from here for annotations.
from puregrpc_etcd._awaiting import Held as Held  # noqa: PLC0414
from puregrpc_etcd._awaiting import HeldFace, IteratorFace, iterate, run, run_taking, wait_for
from puregrpc_etcd._face import Awaited, Entered, Made, await_it, like
from puregrpc_etcd._pending import ClientClosedError, ForkedError
from puregrpc_etcd.types import KeyValue

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator

    from puregrpc_etcd.mirror import MirrorChange
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


# The sub-objects.


class Cluster(_forwards.ClusterForwards, _Face):
    """``client.cluster``: membership (``puregrpc_etcd.Cluster`` for asyncio)."""

    __slots__ = ()


class Maintenance(_forwards.MaintenanceForwards, _Face):
    """``client.maintenance`` (``puregrpc_etcd.Maintenance`` for asyncio)."""

    __slots__ = ()


class Auth(_forwards.AuthForwards, _Face):
    """``client.auth`` (``puregrpc_etcd.Auth`` for asyncio)."""

    __slots__ = ()


class Lock(_forwards.LockForwards, _Face):
    """A held lock (``puregrpc_etcd.Lock``): ``name``, ``key``, ``lease_id``, ``revision``
    (a fencing token), ``lost`` (a ``trio.Event``: read ``lost.is_set()``),
    ``await release()``."""

    __slots__ = ()


def _lock_or_none(portal: _portal.Portal, lock: _lock.Lock | None) -> Lock | None:
    return None if lock is None else Lock(portal, lock)


class TryLock(HeldFace["Lock | None"]):
    """``client.try_lock(name)``: ``await`` it for a ``Lock`` or None (release it yourself), or
    ``async with ... as lock:`` (None when held elsewhere; released on exit)."""

    __slots__ = ()
    _target: _lock.TryLock

    def __await__(self) -> Generator[Any, None, Lock | None]:
        return self._acquire().__await__()

    async def _acquire(self) -> Lock | None:
        lock = await run_taking(self._portal, await_it, self._target)
        return _lock_or_none(self._portal, lock)

    def _wrap(self, lock: _lock.Lock | None) -> Lock | None:
        return _lock_or_none(self._portal, lock)


class Watcher(_forwards.WatcherForwards, IteratorFace[_watch.Event]):
    """An open watch (``puregrpc_etcd.Watcher``): ``async for event in watcher``."""

    __slots__ = ()
    _target: _watch.Watcher


class WatchContext(HeldFace[Watcher]):
    """``client.watch(...)``: ``async with ... as watcher:``, or ``async for`` over it directly
    (the watch is created on the first step and cancelled when the iterator is closed)."""

    __slots__ = ()
    _target: _watch.WatchContext

    def _wrap(self, watcher: _watch.Watcher) -> Watcher:
        return Watcher(self._portal, watcher)

    async def __aiter__(self) -> AsyncIterator[Event]:
        async with self as watcher:
            async for event in watcher:
                yield event


class LeaderObserver(IteratorFace[KeyValue]):
    """``election.observe()``: ``async for`` the leader's values; ``aclose()`` or
    ``async with`` ends it."""

    __slots__ = ()
    _target: _election.LeaderObserver

    async def aclose(self) -> None:
        """End it (nothing to end once the client is closed)."""
        try:
            await run(self._portal, self._target.aclose)
        except ClientClosedError:
            pass

    def close(self) -> None:
        """End it without waiting (from plain code)."""
        try:
            self._portal.submit(self._target.aclose)
        except ClientClosedError:
            pass

    async def __aenter__(self) -> LeaderObserver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Election(_forwards.ElectionForwards, _Face):
    """``client.election(name)`` (``puregrpc_etcd.Election`` for asyncio)."""

    __slots__ = ()
    _target: _election.Election
    observe = Made(_election.Election.observe, LeaderObserver)


class Mirror(_forwards.MirrorForwards, _Face):
    """A local, always-current copy of a prefix (``puregrpc_etcd.Mirror``)."""

    __slots__ = ()
    _target: _mirror.Mirror
    changes = Made(_mirror.Mirror.changes, iterate)

    def __aiter__(self) -> AsyncIterator[MirrorChange]:
        return self.changes()


def _view(portal: _portal.Portal, target: Any) -> Client:
    return Client(portal, target, owner=False)


# The client.


class Client(_forwards.ClientForwards, _Face):
    """An asyncio etcd client: ``puregrpc_etcd.Client``'s API, each call an awaitable.

    Make one with ``connect()``; close it with ``await client.aclose()`` or by leaving its
    ``async with`` block.
    """

    __slots__ = ("__weakref__",)

    lock = Entered(_client.Client.lock, Lock)
    mirror = Entered(_client.Client.mirror, Mirror)
    watch = Made(_client.Client.watch, WatchContext)
    try_lock = Made(_client.Client.try_lock, TryLock)
    acquire_lock = Awaited(_client.Client.acquire_lock, _lock_or_none)
    election = Made(_client.Client.election, Election)
    observe_rpc = Made(_client.Client.observe_rpc, LeaderObserver)
    namespace = Made(_client.Client.namespace, _view)

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
            if not portal.finished.done and not portal.forked():  # no thread to end in a child
                await asyncio.shield(portal.finished.wait_async(asyncio.get_running_loop()))
            portal.close()  # closed by now: only joins the thread, past its last await

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
            target = await wait_for(portal, portal.opened, None)
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


@like(_client.connect)
def connect(*args: Any, **kwargs: Any) -> Connecting:
    """Connect to etcd: ``async with aio.connect(...) as client:`` (or ``client = await
    aio.connect(...)``, then ``await client.aclose()``); the arguments of
    ``puregrpc_etcd.connect()``. As there, it does not wait for a connection: the first call
    raises ``ConnectionFailedError`` when no endpoint answers within ``connect_timeout``; with
    ``username`` the client authenticates on connecting, so that raises it."""
    return Connecting(lambda: _client.connect(*args, **kwargs))
