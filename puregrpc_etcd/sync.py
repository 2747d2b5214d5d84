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
same name (``puregrpc_etcd._face``), so their signatures are the trio client's by construction.

- Any number of threads may share one client.
- Ctrl-C (or any exception raised while a call waits) cancels the call: its stream is reset
  and the connection stays usable; a lock the call took just before (``acquire_lock``,
  ``try_lock``, ``with client.lock(...)``) is released before the interruption goes on. A
  block (``with client.lock(...)``) whose lease is lost is not interrupted while it runs
  (there is no trio cancellation in a thread): check ``lease.lost.is_set()``; with
  ``cancel_on_loss=True`` leaving the block raises the error.
- After ``os.fork()`` the child cannot use a client (or anything opened from it) made before
  the fork: it raises ``ForkedError``; connect again in the child.
- A client left open is closed at interpreter exit (leases revoked, bounded, silently), or by
  ``client.close()``; calls on a closed client, and calls it ended, raise ``ClientClosedError``.
  Python waits for non-daemon threads before that exit: one blocked in a call (an endless
  watch) keeps the interpreter alive until the client is closed; use a daemon thread for it.
- ``for event in client.watch(...)`` closes the watcher when the loop is left on CPython at
  once; on PyPy only when the iterator is collected, so prefer ``with client.watch(...) as w``.
- ``try_lock(name)`` gives a ``TryLock``: ``with client.try_lock(name) as lock:`` (``lock`` is
  None when taken elsewhere), or ``client.try_lock(name).acquire()`` -> ``Lock | None``.
- ``watch_callback`` (it takes a trio nursery) is not part of this face: iterate a watch in a
  thread instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from puregrpc_etcd import _forwards, _portal
from puregrpc_etcd import client as _client
from puregrpc_etcd import election as _election
from puregrpc_etcd import lock as _lock
from puregrpc_etcd import mirror as _mirror
from puregrpc_etcd import watch as _watch
from puregrpc_etcd._blocking import BlockingFace as _Face

# Held: what ``with client.lease(...)`` gives, kept importable from here for annotations.
from puregrpc_etcd._blocking import Held as Held  # noqa: PLC0414
from puregrpc_etcd._blocking import HeldFace, IteratorFace, iterate, run, run_taking
from puregrpc_etcd._face import Awaited, Entered, Made, await_it, like
from puregrpc_etcd._pending import ClientClosedError, ForkedError
from puregrpc_etcd.types import KeyValue

if TYPE_CHECKING:
    from collections.abc import Iterator

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
    """``client.cluster``: membership (blocking ``puregrpc_etcd.Cluster``)."""

    __slots__ = ()


class Maintenance(_forwards.MaintenanceForwards, _Face):
    """``client.maintenance`` (blocking ``puregrpc_etcd.Maintenance``)."""

    __slots__ = ()


class Auth(_forwards.AuthForwards, _Face):
    """``client.auth`` (blocking ``puregrpc_etcd.Auth``)."""

    __slots__ = ()


class Lock(_forwards.LockForwards, _Face):
    """A held lock (``puregrpc_etcd.Lock``): ``name``, ``key``, ``lease_id``, ``revision``
    (a fencing token), ``lost`` (a ``trio.Event``: read ``lost.is_set()``), ``release()``."""

    __slots__ = ()


def _lock_or_none(portal: _portal.Portal, lock: _lock.Lock | None) -> Lock | None:
    return None if lock is None else Lock(portal, lock)


class TryLock(HeldFace["Lock | None"]):
    """``client.try_lock(name)``: ``with ... as lock:`` (None when held elsewhere; released on
    exit), or ``.acquire()`` for a ``Lock`` or None that you ``release()`` yourself."""

    __slots__ = ()
    _target: _lock.TryLock

    def acquire(self) -> Lock | None:
        """Try once, never waiting: the ``Lock``, or None when another holds it."""
        return _lock_or_none(self._portal, run_taking(self._portal, await_it, self._target))

    def _wrap(self, lock: _lock.Lock | None) -> Lock | None:
        return _lock_or_none(self._portal, lock)


class Watcher(_forwards.WatcherForwards, IteratorFace[_watch.Event]):
    """An open watch (``puregrpc_etcd.Watcher``): iterate it for ``Event``s."""

    __slots__ = ()
    _target: _watch.Watcher


class WatchContext(HeldFace[Watcher]):
    """``client.watch(...)``: ``with ... as watcher:``, or iterate it directly (the watch is
    created on the first ``next`` and cancelled when the iterator is closed)."""

    __slots__ = ()
    _target: _watch.WatchContext

    def _wrap(self, watcher: _watch.Watcher) -> Watcher:
        return Watcher(self._portal, watcher)

    def __iter__(self) -> Iterator[Event]:
        with self as watcher:
            yield from watcher


class LeaderObserver(IteratorFace[KeyValue]):
    """``election.observe()``: iterate the leader's values; ``close()`` or ``with`` ends it."""

    __slots__ = ()
    _target: _election.LeaderObserver

    def close(self) -> None:
        """End it (nothing to end once the client is closed)."""
        try:
            run(self._portal, self._target.aclose)
        except ClientClosedError:
            pass

    def __enter__(self) -> LeaderObserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Election(_forwards.ElectionForwards, _Face):
    """``client.election(name)`` (blocking ``puregrpc_etcd.Election``)."""

    __slots__ = ()
    _target: _election.Election
    observe = Made(_election.Election.observe, LeaderObserver)


class Mirror(_forwards.MirrorForwards, _Face):
    """A local, always-current copy of a prefix (``puregrpc_etcd.Mirror``)."""

    __slots__ = ()
    _target: _mirror.Mirror
    changes = Made(_mirror.Mirror.changes, iterate)

    def __iter__(self) -> Iterator[MirrorChange]:
        return self.changes()


def _view(portal: _portal.Portal, target: Any) -> Client:
    return Client(portal, target, owner=False)


# The client.


class Client(_forwards.ClientForwards, _Face):
    """A blocking etcd client: ``puregrpc_etcd.Client``'s API, each call waiting for its result.

    Make one with ``connect()``; close it with ``close()`` or by leaving its ``with`` block.
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


@like(_client.connect)
def connect(*args: Any, **kwargs: Any) -> Client:
    """Connect to etcd and give a blocking ``Client``; the arguments of
    ``puregrpc_etcd.connect()``. As there, it does not wait for a connection: the first call
    raises ``ConnectionFailedError`` when no endpoint answers within ``connect_timeout``; with
    ``username`` the client authenticates here, so this raises it."""
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
