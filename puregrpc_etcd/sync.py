"""The blocking face: the trio client's API for threads and plain scripts.

```python
from puregrpc_etcd import sync

with sync.connect("127.0.0.1:2379") as client:
    client.put("config/app/name", "MyApp")
    with client.lock("jobs/nightly", ttl=30):
        ...
    for event in client.watch("config/", prefix=True):
        ...  # leaving the loop closes the watcher
```

Every method of ``puregrpc_etcd.Client`` is here with the same arguments, results and errors;
where the trio client awaits, this one blocks; its async context managers are context
managers and its async iterators iterators. The trio client does the work, in a daemon thread
this client owns (``puregrpc_etcd._portal``); each method forwards to the trio method of the
same name, so their signatures are the trio client's by construction.

- Any number of threads may share one client.
- Ctrl-C (or any exception raised while a call waits) cancels the call: its stream is reset
  and the connection stays usable. A block (``with client.lock(...)``) whose lease is lost is
  not interrupted while it runs (there is no trio cancellation in a thread): check
  ``lease.lost.is_set()``; with ``cancel_on_loss=True`` leaving the block raises the error.
- After ``os.fork()`` the child cannot use a client (or anything opened from it) made before
  the fork: it raises ``ForkedError``; connect again in the child.
- A client left open is closed at interpreter exit (leases revoked, bounded, silently), or by
  ``client.close()``.
- ``for event in client.watch(...)`` closes the watcher when the loop is left on CPython at
  once; on PyPy only when the iterator is collected, so prefer ``with client.watch(...) as w``.
- ``try_lock(name)`` gives a ``TryLock``: ``with client.try_lock(name) as lock:`` (``lock`` is
  None when taken elsewhere), or ``client.try_lock(name).acquire()`` -> ``Lock | None``.
- ``watch_callback`` (it takes a trio nursery) is not part of this face: iterate a watch in a
  thread instead.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Callable,
    Generic,
    Iterator,
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

R = TypeVar("R")
T = TypeVar("T")
W = TypeVar("W")


_wait = _portal.wait


def _run(portal: _portal.Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    call = portal.submit(fn, *args, **kw)
    return _wait(portal, call.outcome, call)


_Face = _portal.Face
_same = _portal.same


class _Blocking(_portal.Forward, Generic[P, T, W]):
    """``name = _Blocking(TrioClass.name[, wrap])``: the blocking form of an async method."""

    @overload
    def __init__(
        self: _Blocking[P, T, T], method: Callable[Concatenate[Any, P], Awaitable[T]]
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
    def __get__(self, face: None, owner: type) -> _Blocking[P, T, W]: ...
    @overload
    def __get__(self, face: _Face, owner: type) -> Callable[P, W]: ...
    def __get__(self, face: _Face | None, owner: type) -> Any:
        return self._bind(face, _blocking)


def _blocking(portal: _portal.Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def blocking(*args: Any, **kwargs: Any) -> Any:
        return wrap(portal, _run(portal, method, *args, **kwargs))

    return blocking


_Made = _portal.Made


class Held(Generic[W]):
    """A trio async context manager entered from this thread: ``with held as value:``."""

    __slots__ = ("_cm", "_holder", "_portal", "_wrap")

    def __init__(
        self, portal: _portal.Portal, cm: AsyncContextManager[Any], wrap: Callable[[Any], W]
    ) -> None:
        self._portal = portal
        self._cm = cm
        self._wrap = wrap
        self._holder: _portal.Holder | None = None

    def __enter__(self) -> W:
        if self._holder is not None:
            raise RuntimeError("this context manager can be entered only once")
        holder = self._holder = self._portal.hold(self._cm)
        try:
            value = _wait(self._portal, holder.entered, holder)
        except BaseException:
            if not holder.exited.done:
                holder.exited.wait(_portal.CANCEL_WAIT)
            raise
        return self._wrap(value)

    def __exit__(
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
        if self._portal.on_own_thread():  # collected there: leaving goes on without us
            return False
        return bool(_wait(self._portal, holder.exited, holder))


class _Entering(_portal.Forward, Generic[P, T, W]):
    """``name = _Entering(TrioClass.name[, wrap])``: an async context manager method, entered
    from a thread (``with client.lease(10) as lease:``); ``wrap(portal, value)`` gives what
    ``with`` binds."""

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
    """``name = _Iterating(TrioClass.name)``: an async generator method, iterated from a thread."""

    def __init__(self, method: Callable[Concatenate[Any, P], AsyncIterator[T]]) -> None:
        super().__init__(method, _same)

    @overload
    def __get__(self, face: None, owner: type) -> _Iterating[P, T]: ...
    @overload
    def __get__(self, face: _Face, owner: type) -> Callable[P, Iterator[T]]: ...
    def __get__(self, face: _Face | None, owner: type) -> Any:
        return self._bind(face, _iterating)


def _iterating(portal: _portal.Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def iterating(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return _iterate(portal, method(*args, **kwargs))

    return iterating


def _iterate(portal: _portal.Portal, iterator: AsyncIterator[T]) -> Iterator[T]:
    """Iterate a trio async iterator from a thread; closing this closes that (``aclose``)."""
    try:
        while True:
            yield _run(portal, iterator.__anext__)
    except StopAsyncIteration:
        return
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None and not portal.on_own_thread():
            try:
                _run(portal, aclose)
            except ClientClosedError:
                pass


# The sub-objects.


class Cluster(_Face):
    """``client.cluster``: membership (blocking ``puregrpc_etcd.Cluster``)."""

    __slots__ = ()
    members = _Blocking(_cluster.Cluster.members)
    add_member = _Blocking(_cluster.Cluster.add_member)
    remove_member = _Blocking(_cluster.Cluster.remove_member)
    update_member = _Blocking(_cluster.Cluster.update_member)
    promote_member = _Blocking(_cluster.Cluster.promote_member)


class Maintenance(_Face):
    """``client.maintenance`` (blocking ``puregrpc_etcd.Maintenance``)."""

    __slots__ = ()
    status = _Blocking(_maintenance.Maintenance.status)
    alarms = _Blocking(_maintenance.Maintenance.alarms)
    disarm = _Blocking(_maintenance.Maintenance.disarm)
    defragment = _Blocking(_maintenance.Maintenance.defragment)
    hash_kv = _Blocking(_maintenance.Maintenance.hash_kv)
    snapshot = _Blocking(_maintenance.Maintenance.snapshot)
    move_leader = _Blocking(_maintenance.Maintenance.move_leader)


class Auth(_Face):
    """``client.auth`` (blocking ``puregrpc_etcd.Auth``)."""

    __slots__ = ()
    enable = _Blocking(_auth.Auth.enable)
    disable = _Blocking(_auth.Auth.disable)
    status = _Blocking(_auth.Auth.status)
    user_add = _Blocking(_auth.Auth.user_add)
    user_delete = _Blocking(_auth.Auth.user_delete)
    user_list = _Blocking(_auth.Auth.user_list)
    user_get = _Blocking(_auth.Auth.user_get)
    user_grant_role = _Blocking(_auth.Auth.user_grant_role)
    user_revoke_role = _Blocking(_auth.Auth.user_revoke_role)
    user_change_password = _Blocking(_auth.Auth.user_change_password)
    role_add = _Blocking(_auth.Auth.role_add)
    role_delete = _Blocking(_auth.Auth.role_delete)
    role_list = _Blocking(_auth.Auth.role_list)
    role_get = _Blocking(_auth.Auth.role_get)
    role_grant_permission = _Blocking(_auth.Auth.role_grant_permission)
    role_revoke_permission = _Blocking(_auth.Auth.role_revoke_permission)


class Lock(_portal.LockFields):
    """A held lock (``puregrpc_etcd.Lock``): ``name``, ``key``, ``lease_id``, ``revision``
    (a fencing token), ``lost`` (a ``trio.Event``: read ``lost.is_set()``), ``release()``."""

    __slots__ = ()
    release = _Blocking(_lock.Lock.release)


class TryLock(_Face):
    """``client.try_lock(name)``: ``with ... as lock:`` (None when held elsewhere; released on
    exit), or ``.acquire()`` for a ``Lock`` or None that you ``release()`` yourself."""

    __slots__ = ("_held",)
    _target: _lock.TryLock

    def acquire(self) -> Lock | None:
        """Try once, never waiting: the ``Lock``, or None when another holds it."""
        lock = _run(self._portal, _portal.await_it, self._target)
        return None if lock is None else Lock(self._portal, lock)

    def __enter__(self) -> Lock | None:
        self._held = Held(self._portal, self._target, self._wrap)
        return self._held.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._held.__exit__(exc_type, exc, tb)

    def _wrap(self, lock: _lock.Lock | None) -> Lock | None:
        return None if lock is None else Lock(self._portal, lock)


class Watcher(_portal.WatcherFields):
    """An open watch (``puregrpc_etcd.Watcher``): iterate it for ``Event``s."""

    __slots__ = ()
    _target: _watch.Watcher
    request_progress = _Blocking(_watch.Watcher.request_progress)

    def __iter__(self) -> Iterator[Event]:
        return _iterate(self._portal, self._target)


class WatchContext(_Face):
    """``client.watch(...)``: ``with ... as watcher:``, or iterate it directly (the watch is
    created on the first ``next`` and cancelled when the iterator is closed)."""

    __slots__ = ("_held",)
    _target: _watch.WatchContext

    def __enter__(self) -> Watcher:
        self._held = Held(self._portal, self._target, self._wrap)
        return self._held.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._held.__exit__(exc_type, exc, tb)

    def _wrap(self, watcher: _watch.Watcher) -> Watcher:
        return Watcher(self._portal, watcher)

    def __iter__(self) -> Iterator[Event]:
        with self as watcher:
            yield from watcher


class LeaderObserver(_Face):
    """``election.observe()``: iterate the leader's values; ``close()`` or ``with`` ends it."""

    __slots__ = ()
    _target: _election.LeaderObserver

    def __iter__(self) -> Iterator[KeyValue]:
        return _iterate(self._portal, self._target)

    def close(self) -> None:
        _run(self._portal, self._target.aclose)

    def __enter__(self) -> LeaderObserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Election(_Face):
    """``client.election(name)`` (blocking ``puregrpc_etcd.Election``)."""

    __slots__ = ()
    _target: _election.Election
    campaign = _Entering(_election.Election.campaign)
    leader = _Blocking(_election.Election.leader)
    proclaim = _Blocking(_election.Election.proclaim)
    resign = _Blocking(_election.Election.resign)

    observe = _Made(_election.Election.observe, LeaderObserver)

    @property
    def leader_key(self) -> LeaderKey | None:
        return self._target.leader_key


class Mirror(_portal.MirrorFields):
    """A local, always-current copy of a prefix (``puregrpc_etcd.Mirror``)."""

    __slots__ = ()
    _target: _mirror.Mirror
    wait_for = _Blocking(_mirror.Mirror.wait_for)
    get = _Made(_mirror.Mirror.get, _same)
    items = _Made(_mirror.Mirror.items, _same)
    changes = _Made(_mirror.Mirror.changes, _iterate)

    def __iter__(self) -> Iterator[MirrorChange]:
        return self.changes()


def _lock_or_none(portal: _portal.Portal, lock: _lock.Lock | None) -> Lock | None:
    return None if lock is None else Lock(portal, lock)


def _view(portal: _portal.Portal, target: Any) -> Client:
    return Client(portal, target, owner=False)


# The client.


class Client(_Face):
    """A blocking etcd client: ``puregrpc_etcd.Client``'s API, each call waiting for its result.

    Make one with ``connect()``; close it with ``close()`` or by leaving its ``with`` block.
    """

    __slots__ = ("__weakref__", "_owner")

    get = _Blocking(_client.Client.get)
    get_value = _Blocking(_client.Client.get_value)
    get_prefix = _Blocking(_client.Client.get_prefix)
    get_json = _Blocking(_client.Client.get_json)
    exists = _Blocking(_client.Client.exists)
    put = _Blocking(_client.Client.put)
    put_json = _Blocking(_client.Client.put_json)  # type: ignore[arg-type]  # its **options
    delete = _Blocking(_client.Client.delete)
    compact = _Blocking(_client.Client.compact)
    txn = _Blocking(_client.Client.txn)
    scan = _Iterating(_client.Client.scan)
    grant = _Blocking(_client.Client.grant)
    revoke = _Blocking(_client.Client.revoke)
    time_to_live = _Blocking(_client.Client.time_to_live)
    leases = _Blocking(_client.Client.leases)
    keepalive_once = _Blocking(_client.Client.keepalive_once)
    lease = _Entering(_client.Client.lease)
    keep_alive = _Entering(_client.Client.keep_alive)
    lock = _Entering(_client.Client.lock, Lock)
    mirror = _Entering(_client.Client.mirror, Mirror)
    watch = _Made(_client.Client.watch, WatchContext)
    try_lock = _Made(_client.Client.try_lock, TryLock)
    acquire_lock = _Blocking(_client.Client.acquire_lock, _lock_or_none)
    election = _Made(_client.Client.election, Election)
    observe_rpc = _Made(_client.Client.observe_rpc, LeaderObserver)
    namespace = _Made(_client.Client.namespace, _view)
    lock_rpc = _Blocking(_client.Client.lock_rpc)
    unlock_rpc = _Blocking(_client.Client.unlock_rpc)
    release_lock = _Blocking(_client.Client.release_lock)
    campaign_rpc = _Blocking(_client.Client.campaign_rpc)
    proclaim_rpc = _Blocking(_client.Client.proclaim_rpc)
    leader_rpc = _Blocking(_client.Client.leader_rpc)
    resign_rpc = _Blocking(_client.Client.resign_rpc)

    def __init__(self, portal: _portal.Portal, target: Any, owner: bool = True) -> None:
        super().__init__(portal, target)
        self._owner = owner

    def __repr__(self) -> str:
        return f"<sync {self._target!r}>"

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """``connect()`` configured from etcdctl's ``ETCDCTL_*`` variables."""
        return connect(from_env=True, **options)

    # Lifetime.

    def close(self) -> None:
        """Close the client: cancel running calls, revoke its leases, end its thread."""
        if self._owner:
            self._portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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


@_portal.like(_client.connect)
def connect(*args: Any, **kwargs: Any) -> Client:
    """Connect to etcd and give a blocking ``Client``; the arguments of
    ``puregrpc_etcd.connect()``. Blocks until connected (or raises its error)."""
    portal = _portal.Portal(lambda: _client.connect(*args, **kwargs), "puregrpc-etcd sync")
    try:
        portal.opened.wait()
    except BaseException:
        portal.close()
        raise
    try:
        target = portal.opened.result()
    except BaseException:
        portal.close()
        raise
    return Client(portal, target)
