"""Leader election by etcd's Go ``concurrency.Election`` recipe, compatible with ``etcdctl elect``.

Candidates queue as keys ``name/<lease id in hex>``; the oldest (lowest create revision) leads,
and its value is the leader's proclamation.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Union

import trio

from puregrpc_etcd import errors
from puregrpc_etcd._keys import KeyLike, to_bytes, to_key
from puregrpc_etcd.lease import check_ttl
from puregrpc_etcd.lease._keepalive import cancelled_on_loss
from puregrpc_etcd.lock import remove_quietly, wait_deletes, within
from puregrpc_etcd.txn import Compare, Op

if TYPE_CHECKING:
    from types import TracebackType

    from puregrpc_etcd.concurrency import ConcurrencyMixin
    from puregrpc_etcd.lease import Lease
    from puregrpc_etcd.types import KeyValue

__all__ = ["Election", "LeaderKey", "LeaderObserver"]

log = logging.getLogger("puregrpc_etcd.election")


@dataclass(frozen=True)
class LeaderKey:
    """A won election: the election ``name``, the leader's ``key``, its create revision
    ``rev`` (a fencing token, as ``Lock.revision``) and the ``lease`` it lives on."""

    __slots__ = ("key", "lease", "name", "rev")
    name: bytes
    key: bytes
    rev: int
    lease: int

    def __repr__(self) -> str:
        return (
            f"LeaderKey(name={self.name!r}, key={self.key!r}, rev={self.rev}, lease={self.lease:x})"
        )


class Election:
    """One election, by name; made by ``client.election(name, ttl=...)``.

    ``campaign(value)`` waits until we lead and holds the leadership for its block (on a
    session lease of ``ttl`` seconds, kept alive meanwhile); ``leader()`` and ``observe()``
    work for anyone.
    """

    def __init__(self, client: ConcurrencyMixin, name: KeyLike, ttl: int = 60) -> None:
        self._client = client
        self.name = to_key(name, what="election name")
        self.ttl = check_ttl(ttl)
        self._prefix = self.name + b"/"
        self._leader: LeaderKey | None = None
        self._campaigning = False

    def __repr__(self) -> str:
        return f"Election(name={self.name!r}, ttl={self.ttl})"

    @property
    def leader_key(self) -> LeaderKey | None:
        """Our candidate key while we campaign or lead, else None."""
        return self._leader

    @contextlib.asynccontextmanager
    async def campaign(
        self, value: KeyLike, *, timeout: float | None = None
    ) -> AsyncIterator[LeaderKey]:
        """Wait until elected with ``value``, lead for the block, then resign.

        Losing the session lease while leading cancels the block and raises ``LockLostError``.
        ``timeout`` bounds the wait for election (``DeadlineExceededError``).
        """
        client = self._client
        value = to_bytes(value, "value")
        if self._campaigning:
            raise RuntimeError("this Election already campaigns: use one Election per candidate")
        self._campaigning = True
        try:
            async with client.lease(self.ttl) as session:
                # A fresh session lease, so our key cannot exist yet (Go's txn also covers a
                # resumed session, which this API does not offer).
                key = self._prefix + b"%x" % session.id
                reply = await client.txn(
                    [Compare.create_revision(key) == 0], [Op.put(key, value, lease=session.id)]
                )
                if not reply.succeeded:
                    raise errors.EtcdError(f"election key {key!r} exists already")
                leader = self._leader = LeaderKey(self.name, key, reply.header.revision, session.id)
                try:
                    await self._wait_for_turn(leader, session, timeout)
                    with cancelled_on_loss(session._kept):
                        yield leader
                    if session.lost.is_set():
                        raise errors.LockLostError(f"lost the leadership of {self.name!r}")
                finally:
                    if self._leader is leader:
                        self._leader = None
                        if not session.lost.is_set():  # else the key went with the lease
                            # One attempt: the session's revocation right after removes it too.
                            await remove_quietly(client, key, on_exit=True)
        finally:
            self._campaigning = False

    async def _wait_for_turn(
        self, leader: LeaderKey, session: Lease, timeout: float | None
    ) -> None:
        with cancelled_on_loss(session._kept):
            await within(
                timeout,
                f"not elected in {timeout} s",
                wait_deletes(self._client, self._prefix, leader.rev - 1),
            )
        if session.lost.is_set():
            raise errors.LockLostError(f"the session of {leader.key!r} ended while it campaigned")

    async def proclaim(self, value: KeyLike, *, timeout: float | None = None) -> None:
        """Announce a new value as the leader, without a new election.

        Raises ``LockLostError`` when we are not (or no longer) the leader.
        """
        value = to_bytes(value, "value")
        leader = self._leader
        if leader is None:
            raise errors.LockLostError(f"not the leader of {self.name!r}")
        reply = await self._client.txn(
            [Compare.create_revision(leader.key) == leader.rev],
            [Op.put(leader.key, value, lease=leader.lease)],
            timeout=timeout,
        )
        if not reply.succeeded:
            self._leader = None
            raise errors.LockLostError(f"no longer the leader of {self.name!r}")

    async def resign(self, *, timeout: float | None = None) -> None:
        """Give up the leadership now (no-op when not leading); the campaign block goes on."""
        leader = self._leader
        if leader is None:
            return
        self._leader = None
        await self._client.txn(
            [Compare.create_revision(leader.key) == leader.rev],
            [Op.delete(leader.key)],
            timeout=timeout,
        )

    async def leader(self, *, timeout: float | None = None) -> KeyValue | None:
        """The current leader's key and value, or None when nobody leads."""
        reply = await self._client.get(
            self._prefix,
            prefix=True,
            sort_target="create",
            sort_order="ascend",
            limit=1,
            timeout=timeout,
        )
        return reply.kvs[0] if reply.kvs else None

    def observe(self) -> LeaderObserver:
        """The leader's key-value now and after every change: each new leader and each
        proclamation, in order (an async iterator; ``async with`` it, or ``aclose()`` it, to end
        it early: one merely dropped ends when it is garbage collected).

        As Go's ``Observe``: it may skip intermediate values but always reaches the latest.
        """
        return LeaderObserver(self._client._caller.nursery, self._observe)

    async def _observe(self, send: Callable[[KeyValue], Awaitable[None]]) -> None:
        client = self._client
        while True:
            reply = await client.get(
                self._prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1
            )
            if reply.kvs:
                current, revision = reply.kvs[0], reply.header.revision
            else:
                current = await _first_put(client, self._prefix, reply.header.revision)
                revision = current.mod_revision
            await send(current)
            async with client.watch(current.key, start_revision=revision + 1) as watcher:
                async for event in watcher:
                    if event.type == "delete":
                        break
                    await send(event.kv)


async def _first_put(client: ConcurrencyMixin, prefix: bytes, revision: int) -> KeyValue:
    async with client.watch(prefix, prefix=True, start_revision=revision) as watcher:
        async for event in watcher:
            if event.type == "put":
                return event.kv
    raise errors.EtcdError(f"the watch on {prefix!r} ended")


_Item = Union["KeyValue", BaseException]


class LeaderObserver:
    """An async iterator of leaders' key-values, produced by a task in the client's nursery.

    ``async with election.observe() as leaders: async for kv in leaders: ...`` stops the task
    on leaving, and so do ``close()`` and ``await aclose()``; a bare ``async for`` stops it when
    the iteration ends or fails, or once the iterator is dropped (left with ``break``): at
    once on CPython, at the next garbage collection on PyPy. Errors of the producer (e.g.
    ``CompactedError``) are raised from the iteration.
    """

    __slots__ = ("__weakref__", "_nursery", "_produce", "_receive", "_scope", "_send", "_started")

    def __init__(
        self,
        nursery: trio.Nursery,
        produce: Callable[[Callable[[KeyValue], Awaitable[None]]], Awaitable[None]],
    ) -> None:
        self._nursery = nursery
        self._produce = produce
        self._send, self._receive = trio.open_memory_channel[_Item](0)
        self._scope = trio.CancelScope()
        self._started = False

    async def __aenter__(self) -> LeaderObserver:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop observing."""
        self._scope.cancel()
        self._receive.close()

    async def aclose(self) -> None:
        """Stop observing (as ``close``; for ``contextlib.aclosing`` and the like)."""
        self.close()

    def __aiter__(self) -> LeaderObserver:
        return self

    async def __anext__(self) -> KeyValue:
        self._start()
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def _start(self) -> None:
        if not self._started:
            self._started = True
            # The task holds nothing that leads back to this object, so an iterator left with
            # ``break`` outside ``async with`` becomes garbage, and its finaliser cancels the
            # task (from the scheduler: a finaliser may run at any point, inside trio's too).
            finaliser = weakref.finalize(
                self, _cancel_soon, trio.lowlevel.current_trio_token(), self._scope
            )
            finaliser.atexit = False
            self._nursery.start_soon(_produce_into, self._produce, self._send, self._scope)


def _cancel_soon(token: trio.lowlevel.TrioToken, scope: trio.CancelScope) -> None:
    with contextlib.suppress(trio.RunFinishedError):
        token.run_sync_soon(scope.cancel)


async def _produce_into(
    produce: Callable[[Callable[[KeyValue], Awaitable[None]]], Awaitable[None]],
    send: trio.MemorySendChannel[_Item],
    scope: trio.CancelScope,
) -> None:
    async with send:
        with scope:
            try:
                await produce(send.send)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            except Exception as exc:
                # The consumer, not the client's nursery, is the one to hear of it.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await send.send(exc)
