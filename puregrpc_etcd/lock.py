"""Distributed locks by etcd's Go ``concurrency.Mutex`` recipe, so that they exclude its users.

Waiters queue as keys ``name/<owner>`` ordered by create revision; each waits (by watching) for
the deletion of the key just ahead of it, and the lowest create revision holds the lock.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, TypeVar

import trio

from puregrpc_etcd import errors, grpc
from puregrpc_etcd._keepalive import KeptLease, cancelled_on_loss
from puregrpc_etcd._keys import to_key
from puregrpc_etcd.txn import Compare, Op

if TYPE_CHECKING:
    from puregrpc_etcd.kv import KVMixin
    from puregrpc_etcd.lease import LeaseMixin
    from puregrpc_etcd.watch import WatchMixin

    class RecipeClient(KVMixin, WatchMixin, LeaseMixin):
        """What the recipes use of a client: KV calls, watches and leases."""


__all__ = ["Lock", "acquire", "lock_key", "remove_quietly", "wait_deletes", "within"]

log = logging.getLogger("puregrpc_etcd.lock")

T = TypeVar("T")

#: The longest the clean-up of a lock key may take when leaving; the session lease bounds the rest.
CLEANUP_TIMEOUT = 5.0


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
      longer excludes others.
    """

    __slots__ = ("key", "lease_id", "lost", "name", "revision")
    name: bytes
    key: bytes
    lease_id: int
    revision: int
    lost: trio.Event

    def __repr__(self) -> str:
        return f"Lock(key={self.key!r}, lease_id={self.lease_id:x}, revision={self.revision})"


def lock_key(name: object, lease_id: int, owner: object = None) -> tuple[bytes, bytes]:
    """The (prefix, key) of a lock: ``name/`` and ``name/`` + owner, by default the lease id
    in unpadded lowercase hex as Go and etcdctl write it."""
    prefix = to_key(name, what="lock name") + b"/"
    if owner is None:
        return prefix, prefix + b"%x" % lease_id
    return prefix, prefix + to_key(owner, what="lock owner")


async def within(timeout: float | None, message: str, call: Awaitable[T]) -> T:
    """Await ``call`` for at most ``timeout`` seconds, raising ``DeadlineExceededError`` past it."""
    if timeout is None:
        return await call
    with trio.move_on_after(timeout):
        return await call
    raise errors.DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


async def acquire(
    client: RecipeClient,
    name: object,
    lease_id: int,
    kept: KeptLease | None,
    *,
    owner: object = None,
    wait: bool = True,
) -> Lock | None:
    """Take the lock, waiting behind earlier waiters when ``wait``; without it, give up (and
    remove our key) at once when someone else holds it.

    ``kept`` is the lease as this client keeps it alive, if it does: losing it while waiting
    raises ``LockLostError`` at once. Cancelled or failing while waiting, our key is removed.
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
    lock = Lock(prefix[:-1], key, lease_id, revision, lost)
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
        await remove_quietly(client, key)
        raise
    if mine is None or not mine.kvs or mine.kvs[0].create_revision != revision:
        await remove_quietly(client, key)
        raise errors.LockLostError(f"the session of lock {key!r} ended while it waited")
    return lock


async def wait_deletes(client: RecipeClient, prefix: bytes, max_create_revision: int) -> None:
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


async def _wait_delete(client: RecipeClient, key: bytes, revision: int) -> None:
    async with client.watch(key, start_revision=revision) as watcher:
        async for event in watcher:
            if event.type == "delete":
                return
    raise errors.EtcdError(f"the watch on {key!r} ended before the key was deleted")


async def remove_quietly(client: RecipeClient, key: bytes) -> bool:
    """Delete our key, shielded and bounded in time: it must not stay queued ahead of others.
    False when it was already gone or could not be deleted (its lease will end it)."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLEANUP_TIMEOUT
        try:
            return (await client.delete(key)).deleted > 0
        except Exception as exc:  # best effort: the session lease ends the key in any case
            log.warning("could not remove lock key %r: %r", key, exc)
    return False
