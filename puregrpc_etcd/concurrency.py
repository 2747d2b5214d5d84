"""Locks and elections on a client: Go-compatible recipes (``lock``, ``election``) and etcd's
server-side v3lock and v3election services (the ``*_rpc`` calls).

The recipes (``lock.py``, ``election.py``) are imported by the calls that use them: ``Client``
has this mixin, and a one-shot ``get`` needs neither.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Union

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import errors
from puregrpc_etcd._client_contract import check_timeout
from puregrpc_etcd._keys import KeyLike, to_bytes, to_key
from puregrpc_etcd._proto import v3election_pb2, v3lock_pb2
from puregrpc_etcd.kv import KVMixin
from puregrpc_etcd.lease import Lease, LeaseMixin, check_ttl
from puregrpc_etcd.lease._keepalive import KeptLease
from puregrpc_etcd.types import key_value
from puregrpc_etcd.watch import WatchMixin

if TYPE_CHECKING:
    from puregrpc_etcd.election import Election, LeaderKey, LeaderObserver
    from puregrpc_etcd.lock import Lock, TryLock
    from puregrpc_etcd.types import KeyValue

__all__ = ["ConcurrencyMixin"]


LeaseLike = Union[int, Lease]


class ConcurrencyMixin(KVMixin, WatchMixin, LeaseMixin):
    """Distributed locks and leader elections (README.md, "Locks" and "Elections"), built as Go's
    ``concurrency`` package is on the KV, watch and lease calls of the client."""

    @contextlib.asynccontextmanager
    async def lock(
        self, name: KeyLike, *, ttl: int = 60, timeout: float | None = None
    ) -> AsyncIterator[Lock]:
        """Hold the lock ``name`` for the block; it excludes ``etcdctl lock name`` and Go's
        ``concurrency.Mutex`` on the same name.

        The lock lives on a session lease of ``ttl`` seconds, kept alive meanwhile: if the
        holder dies, others get the lock within about ``ttl`` (> 0). Losing the lease while
        holding cancels the block and raises ``LockLostError``. ``timeout`` bounds the wait
        (``DeadlineExceededError``); cancelled or timed out, we leave the queue. Leaving the
        block deletes our key and revokes the session (one attempt each: when etcd cannot be
        reached, the lease's TTL releases the lock).
        """
        from puregrpc_etcd.lock import acquire, holding, lock_key, within

        client = self
        lock_key(name, 0)  # checks the arguments before any I/O
        check_ttl(ttl)
        check_timeout(timeout)
        session = await client._open_lease(ttl, timeout=timeout)
        try:
            lock = await within(
                timeout,
                f"lock {to_key(name)!r} not acquired in {timeout} s",
                acquire(client, name, session.lease_id, session, session=session),
            )
        except BaseException:
            await client._close_lease(session)
            raise
        assert lock is not None
        async with holding(lock, session):
            yield lock

    def try_lock(self, name: KeyLike, ttl: int = 60, *, timeout: float | None = None) -> TryLock:
        """Take the lock ``name`` only if nobody holds it; never waits for it.

        ``lock = await client.try_lock(name)`` gives the ``Lock`` (held, on a session lease of
        ``ttl`` seconds kept alive, until ``await lock.release()`` or the client closes), or
        None when someone else holds it: we leave no trace then. ``async with
        client.try_lock(name) as lock:`` holds it for the block instead, as ``lock()`` does.
        ``timeout`` bounds the calls it makes (``DeadlineExceededError``).
        """
        from puregrpc_etcd.lock import TryLock, lock_key

        lock_key(name, 0)
        check_ttl(ttl)
        check_timeout(timeout)
        return TryLock(self, name, ttl, timeout)

    async def acquire_lock(
        self,
        name: KeyLike,
        lease: LeaseLike,
        *,
        owner: KeyLike | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Lock | None:
        """The lower-level lock: take ``name`` on a lease the caller keeps alive, as ``owner``
        (any non-empty str or bytes; default the lease id in hex, as Go writes it).

        Returns the ``Lock``, or None when ``wait=False`` and someone else holds it. Holding
        the lock again with the same owner and lease returns the same lock. Release with
        ``release_lock(name, lease=..., owner=...)``. Pass the ``Lease`` object (from
        ``client.lease()``) rather than its id to get ``Lock.lost`` and fail fast when it ends.
        """
        from puregrpc_etcd.lock import acquire, lock_key, within

        client = self
        lease_id, kept = _lease_of(lease)
        lock_key(name, lease_id, owner)
        return await within(
            timeout,
            f"lock {to_key(name)!r} not acquired in {timeout} s",
            acquire(client, name, lease_id, kept, owner=owner, wait=wait),
        )

    async def release_lock(
        self,
        name: KeyLike,
        *,
        lease: LeaseLike = 0,
        owner: KeyLike | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Release a lock taken with ``acquire_lock``, named by the same lease or owner;
        False when its key was already gone or could not be deleted in ``timeout`` (default
        5 s; its lease ends it then)."""
        from puregrpc_etcd.lock import lock_key, remove_quietly

        lease_id, _ = _lease_of(lease)
        if owner is None and not lease_id:
            raise ValueError("give the lease or the owner the lock was taken with")
        _, key = lock_key(name, lease_id, owner)
        return await remove_quietly(self, key, timeout=timeout)

    async def lock_rpc(
        self, name: KeyLike, lease: LeaseLike, *, timeout: float | None = None
    ) -> bytes:
        """Take a lock through the server's v3lock service; returns the key that holds it.

        Always on a lease we keep alive: given none, the server would make a 60 s lease of
        its own and orphan it. Blocks until acquired (or ``timeout``, else the client's).
        """
        lease_id, _ = _lease_of(lease)
        if not lease_id:
            raise ValueError("lock_rpc needs a lease kept alive by the caller")
        reply = await self._unary(
            rpcs.LOCK,
            v3lock_pb2.LockRequest(name=self._keyspace.key(name, what="lock name"), lease=lease_id),
            timeout=timeout,
        )
        return self._keyspace.unkey(reply.key)

    async def unlock_rpc(self, key: KeyLike, *, timeout: float | None = None) -> None:
        """Release a lock taken with ``lock_rpc`` by the key it returned."""
        await self._unary(
            rpcs.UNLOCK, v3lock_pb2.UnlockRequest(key=self._keyspace.key(key)), timeout=timeout
        )

    def election(self, name: KeyLike, *, ttl: int = 60) -> Election:
        """The election ``name``: Go's ``concurrency.Election``, as ``etcdctl elect`` runs it;
        candidates campaign on session leases of ``ttl`` seconds (> 0)."""
        from puregrpc_etcd.election import Election

        return Election(self, name, ttl)

    # The server-side v3election service.

    async def campaign_rpc(
        self, name: KeyLike, value: KeyLike, lease: LeaseLike, *, timeout: float | None = None
    ) -> LeaderKey:
        """Campaign through the server's v3election service on a lease we keep alive; returns
        once elected."""
        lease_id, _ = _lease_of(lease)
        if not lease_id:
            raise ValueError("campaign_rpc needs a lease kept alive by the caller")
        reply = await self._unary(
            rpcs.CAMPAIGN,
            v3election_pb2.CampaignRequest(
                name=self._keyspace.key(name, what="election name"),
                lease=lease_id,
                value=to_bytes(value, "value"),
            ),
            timeout=timeout,
        )
        return self._leader_key(reply.leader)

    async def proclaim_rpc(
        self, leader: LeaderKey, value: KeyLike, *, timeout: float | None = None
    ) -> None:
        """Announce a new value as the leader elected with ``campaign_rpc``."""
        await self._unary(
            rpcs.PROCLAIM,
            v3election_pb2.ProclaimRequest(
                leader=self._leader_key_pb(leader), value=to_bytes(value, "value")
            ),
            timeout=timeout,
        )

    async def resign_rpc(self, leader: LeaderKey, *, timeout: float | None = None) -> None:
        """Give up a leadership won with ``campaign_rpc``."""
        await self._unary(
            rpcs.RESIGN,
            v3election_pb2.ResignRequest(leader=self._leader_key_pb(leader)),
            timeout=timeout,
        )

    async def leader_rpc(self, name: KeyLike, *, timeout: float | None = None) -> KeyValue | None:
        """The current leader of ``name`` by the v3election service; None when nobody leads."""
        try:
            reply = await self._unary(
                rpcs.LEADER,
                v3election_pb2.LeaderRequest(name=self._keyspace.key(name, what="election name")),
                timeout=timeout,
            )
        except errors.RpcError as exc:
            if exc.details.endswith("election: no leader"):
                return None
            raise
        return key_value(reply.kv, self._keyspace.prefix)

    def observe_rpc(self, name: KeyLike) -> LeaderObserver:
        """The leaders of ``name`` as the v3election service streams them (see
        ``Election.observe``)."""
        from puregrpc_etcd.election import LeaderObserver

        request = v3election_pb2.LeaderRequest(name=self._keyspace.key(name, what="election name"))

        async def produce(send: Callable[[KeyValue], Awaitable[None]]) -> None:
            async with self._stream(rpcs.OBSERVE) as stream:
                await stream.send_message(request)
                await stream.done_writing()
                async for reply in stream:
                    await send(key_value(reply.kv, self._keyspace.prefix))

        return LeaderObserver(self._caller.nursery, produce)

    def _leader_key(self, pb: v3election_pb2.LeaderKey) -> LeaderKey:
        from puregrpc_etcd.election import LeaderKey

        return LeaderKey(
            self._keyspace.unkey(pb.name), self._keyspace.unkey(pb.key), pb.rev, pb.lease
        )

    def _leader_key_pb(self, leader: LeaderKey) -> v3election_pb2.LeaderKey:
        return v3election_pb2.LeaderKey(
            name=self._keyspace.key(leader.name),
            key=self._keyspace.key(leader.key),
            rev=leader.rev,
            lease=leader.lease,
        )


def _lease_of(lease: LeaseLike) -> tuple[int, KeptLease | None]:
    if isinstance(lease, Lease):
        return lease.id, lease._kept
    if not isinstance(lease, int) or isinstance(lease, bool):
        raise TypeError(f"lease must be a Lease or a lease id, not {type(lease).__name__}")
    return lease, None
