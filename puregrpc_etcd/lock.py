"""Distributed locks by etcd's Go ``concurrency.Mutex`` recipe, so that they exclude its users.

Waiters queue as keys ``name/<owner>`` ordered by create revision; each waits (by watching) for
the deletion of the key just ahead of it, and the lowest create revision holds the lock.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Awaitable, TypeVar

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import errors, grpc
from puregrpc_etcd._cleanup import cleanup_call
from puregrpc_etcd._client_contract import check_timeout
from puregrpc_etcd._keys import to_key
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.lease._keepalive import KeptLease, cancelled_on_loss
from puregrpc_etcd.txn import Compare, Op

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType

    # What the recipes use of a client: its KV, watch and lease calls, on which
    # ConcurrencyMixin is built.
    from puregrpc_etcd.concurrency import ConcurrencyMixin


__all__ = [
    "Lock",
    "TryLock",
    "acquire",
    "holding",
    "lock_key",
    "remove_quietly",
    "wait_deletes",
    "within",
]

log = logging.getLogger("puregrpc_etcd.lock")

T = TypeVar("T")

#: The longest releasing a lock may take when leaving (or ``release()`` without a timeout):
#: deleting its key and then revoking its session lease share it.
CLEANUP_TIMEOUT = 5.0
#: What a lock's session lease keeps of the bound for itself (at most half of it): revoking it
#: also deletes the key, so it is the second chance of a key whose deletion timed out.
_LEASE_SHARE = 1.0


@dataclass(frozen=True)
class Lock:
    """A held lock.

    - ``key``: our key under the lock's name (``name/<lease id in hex>`` by default).
    - ``lease_id``: the lease the key is attached to; when it ends, the lock is released.
    - ``revision``: the create revision of our key. It grows with every new holder, so it works
      as a fencing token: a write guarded by
      ``Compare.create_revision(lock.key) == lock.revision`` succeeds only while we hold the lock::

          await client.txn([etcd.Compare.create_revision(lock.key) == lock.revision],
                           [etcd.Op.put("config", "new")])

    - ``lost``: a ``trio.Event`` set when the session lease was lost, so that the lock no
      longer excludes others; never later than etcd expires the lease (see ``Lease``).

    ``await lock.release()`` gives it up before the end of its block, and is how a lock taken
    with ``lock = await client.try_lock(name)`` is given up.
    """

    __slots__ = ("_client", "_session", "key", "lease_id", "lost", "name", "revision")
    name: bytes
    key: bytes
    lease_id: int
    revision: int
    lost: trio.Event
    _client: ConcurrencyMixin
    # The session lease to end on release, when the lock has one of its own.
    _session: KeptLease | None

    def __repr__(self) -> str:
        return f"Lock(key={self.key!r}, lease_id={self.lease_id:x}, revision={self.revision})"

    async def release(self, *, timeout: float | None = None) -> bool:
        """Release the lock now: delete our key and, for the locks of ``lock()`` and
        ``try_lock()``, end their session lease. Releasing again does nothing.

        False when the key was gone already (released before, or lost with its lease). Best
        effort, as ``release_lock``: a key that cannot be deleted ends with its lease.
        ``timeout`` (else ``CLEANUP_TIMEOUT``, 5 s) bounds the key and the lease together.
        """
        return await self._release(timeout, on_exit=False)

    async def _release(self, timeout: float | None, *, on_exit: bool) -> bool:
        # The key and the session lease share one bound: on an etcd that does not answer,
        # leaving (or closing the client) must not wait the key's bound and then the lease's.
        limit = check_timeout(timeout) or CLEANUP_TIMEOUT
        deadline = trio.current_time() + limit
        kept = min(_LEASE_SHARE, limit / 2) if self._session is not None else 0.0
        removed = False
        if not self.lost.is_set():  # else the key went with its lease
            removed = await remove_quietly(
                self._client, self.key, timeout=limit - kept, on_exit=on_exit
            )
        if self._session is not None:
            left = max(deadline - trio.current_time(), 0.01)
            await self._client._close_lease(self._session, limit=left)
        return removed


def lock_key(name: object, lease_id: int, owner: object = None) -> tuple[bytes, bytes]:
    """The (prefix, key) of a lock: ``name/`` and ``name/`` + owner, by default the lease id
    in unpadded lowercase hex as Go and etcdctl write it."""
    prefix = to_key(name, what="lock name") + b"/"
    if owner is None:
        return prefix, prefix + b"%x" % lease_id
    return prefix, prefix + to_key(owner, what="lock owner")


async def within(timeout: float | None, message: str, call: Awaitable[T]) -> T:
    """Await ``call`` for at most ``timeout`` seconds, raising ``DeadlineExceededError`` past it."""
    timeout = check_timeout(timeout)
    if timeout is None:
        return await call
    with trio.move_on_after(timeout):
        return await call
    raise errors.DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


async def acquire(
    client: ConcurrencyMixin,
    name: object,
    lease_id: int,
    kept: KeptLease | None,
    *,
    owner: object = None,
    wait: bool = True,
    session: KeptLease | None = None,
) -> Lock | None:
    """Take the lock, waiting behind earlier waiters when ``wait``; without it, give up (and
    remove our key) at once when someone else holds it.

    ``kept`` is the lease as this client keeps it alive, if it does: losing it while waiting
    raises ``LockLostError`` at once. Cancelled or failing while waiting, our key is removed.
    ``session`` is the lease that ``Lock.release`` ends, when the lock has one of its own.
    """
    prefix, key = lock_key(name, lease_id, owner)
    lost = trio.Event() if kept is None else kept.lost
    first_created = Op.get(prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1)
    reply = await client.txn(
        [Compare.create_revision(key) == 0],
        [Op.put(key, b"", lease=lease_id), first_created],
        [Op.get(key), first_created],
    )
    if reply.succeeded:
        revision = reply.header.revision
    else:
        revision = reply.responses[0].kvs[0].create_revision  # type: ignore[union-attr]
    holder = reply.responses[1].kvs  # type: ignore[union-attr]
    lock = Lock(prefix[:-1], key, lease_id, revision, lost, client, session)
    if not holder or holder[0].create_revision == revision:
        return lock
    if not wait:
        await remove_quietly(client, key)
        return None
    mine = None
    try:
        with contextlib.nullcontext() if kept is None else cancelled_on_loss(kept):
            await wait_deletes(client, prefix, revision - 1)
            mine = await client.get(key)
    except BaseException:
        if not lost.is_set():
            # A session of ours is revoked next, which removes the key anyway: one attempt.
            await remove_quietly(client, key, on_exit=session is not None)
        raise
    if mine is None or not mine.kvs or mine.kvs[0].create_revision != revision:
        await remove_quietly(client, key)
        raise errors.LockLostError(f"the session of lock {key!r} ended while it waited")
    return lock


async def wait_deletes(client: ConcurrencyMixin, prefix: bytes, max_create_revision: int) -> None:
    """Wait until no key under ``prefix`` was created at or before ``max_create_revision``.

    Watches only the newest such key at a time (Go's ``waitDeletes``): every waiter watches
    one other, so a release wakes one waiter instead of all of them.
    """
    while True:
        reply = await client.get(
            prefix,
            prefix=True,
            sort_target="create",
            sort_order="descend",
            limit=1,
            max_create_revision=max_create_revision,
        )
        if not reply.kvs:
            return
        await _wait_delete(client, reply.kvs[0].key, reply.header.revision)


async def _wait_delete(client: ConcurrencyMixin, key: bytes, revision: int) -> None:
    async with client.watch(key, start_revision=revision) as watcher:
        async for event in watcher:
            if event.type == "delete":
                return
    raise errors.EtcdError(f"the watch on {key!r} ended before the key was deleted")


async def remove_quietly(
    client: ConcurrencyMixin,
    key: bytes,
    *,
    timeout: float | None = None,
    on_exit: bool = False,
) -> bool:
    """Delete our key, shielded and bounded in time (``timeout``, else ``CLEANUP_TIMEOUT``): it
    must not stay queued ahead of others. False when it was already gone or could not be
    deleted (its lease will end it). ``on_exit``: one attempt (see ``cleanup_call``)."""
    limit = check_timeout(timeout) or CLEANUP_TIMEOUT
    reply = await cleanup_call(
        client._caller,
        rpcs.DELETE_RANGE,
        rpc_pb2.DeleteRangeRequest(key=client._keyspace.key(key)),
        limit=limit,
        what=f"remove lock key {key!r}",
        on_exit=on_exit,
    )
    return reply is not None and reply.deleted > 0


@contextlib.asynccontextmanager
async def holding(lock: Lock, kept: KeptLease) -> AsyncIterator[Lock]:
    """Hold ``lock`` for the block: cancelled when the session ``kept`` is lost (then
    ``LockLostError``), released on the way out (one attempt: the lease ends it otherwise)."""
    try:
        with cancelled_on_loss(kept):
            yield lock
        if kept.lost.is_set():
            raise errors.LockLostError(f"lost the lock {lock.key!r}: its session lease ended")
    finally:
        await lock._release(None, on_exit=True)


class TryLock:
    """What ``client.try_lock(name)`` returns; it never waits for the lock.

    - ``lock = await client.try_lock(name)``: the ``Lock``, kept (with its session lease) until
      ``await lock.release()`` or the client closes; None when someone else holds it.
    - ``async with client.try_lock(name) as lock:`` the same, released when the block ends.
    """

    __slots__ = ("_client", "_context", "_name", "_timeout", "_ttl")

    def __init__(
        self, client: ConcurrencyMixin, name: object, ttl: int, timeout: float | None
    ) -> None:
        self._client = client
        self._name = name
        self._ttl = ttl
        self._timeout = timeout
        self._context: AsyncContextManager[Lock | None] | None = None

    def __await__(self) -> Generator[Any, None, Lock | None]:
        return self._take().__await__()

    def __bool__(self) -> bool:
        # ``if client.try_lock(name):`` would always be true and take nothing.
        raise TypeError("await client.try_lock(...), or use it in 'async with'")

    async def __aenter__(self) -> Lock | None:
        if self._context is not None:
            raise RuntimeError("a try_lock() can be entered once")
        self._context = self._held()
        return await self._context.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._context is not None
        return await self._context.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[Lock | None]:
        lock = await self._take()
        if lock is None:
            yield None
            return
        assert lock._session is not None
        async with holding(lock, lock._session):
            yield lock

    async def _take(self) -> Lock | None:
        timeout = self._timeout
        message = f"lock {to_key(self._name)!r} not taken in {timeout} s"
        return await within(timeout, message, self._take_now())

    async def _take_now(self) -> Lock | None:
        client = self._client
        kept = await client._open_lease(self._ttl, timeout=self._timeout)
        try:
            lock = await acquire(client, self._name, kept.lease_id, kept, wait=False, session=kept)
        except BaseException:
            await client._close_lease(kept)
            raise
        if lock is None:
            await client._close_lease(kept)
        return lock
