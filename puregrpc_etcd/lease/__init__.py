"""Leases: grant, revoke, inspect, and keep alive for the length of an ``async with`` block.

Renewals of every lease of a client share one LeaseKeepAlive stream (see ``lease._keepalive``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import errors, grpc
from puregrpc_etcd._cleanup import cleanup_call
from puregrpc_etcd._client_contract import ClientBase
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.lease._keepalive import KeptLease, LeaseKeeper, cancelled_on_loss
from puregrpc_etcd.types import ResponseHeader, response_header

if TYPE_CHECKING:
    from puregrpc_etcd._streams import EtcdStream

__all__ = [
    "MAX_LEASE_TTL",
    "Lease",
    "LeaseGrantResponse",
    "LeaseKeepAliveResponse",
    "LeaseMixin",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveResponse",
    "check_ttl",
]

log = logging.getLogger("puregrpc_etcd.lease")

#: The longest a revoke on leaving a block (or all of them when the client closes) may take;
#: past it the lease expires by its TTL anyway.
REVOKE_TIMEOUT = 5.0
#: etcd's largest lease TTL in seconds (``lease.MaxLeaseTTL``).
MAX_LEASE_TTL = 9_000_000_000


def check_ttl(ttl: object) -> int:
    """A lease TTL argument: an int of seconds, 1 to ``MAX_LEASE_TTL`` (checked before any I/O)."""
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise TypeError(f"ttl must be an int, not {type(ttl).__name__}")
    if not 0 < ttl <= MAX_LEASE_TTL:
        raise ValueError(f"ttl must be 1 to {MAX_LEASE_TTL} seconds, not {ttl}")
    return ttl


@dataclass(frozen=True)
class _LeaseAndTTL:
    __slots__ = ("header", "id", "ttl")
    header: ResponseHeader
    id: int
    ttl: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id:x}, ttl={self.ttl})"


@dataclass(frozen=True, repr=False)
class LeaseGrantResponse(_LeaseAndTTL):
    """A granted lease: its ``id`` and the ``ttl`` (seconds) the server settled on."""

    __slots__ = ()


@dataclass(frozen=True)
class LeaseRevokeResponse:
    """A revoked lease: the keys attached to it are deleted at ``header.revision``."""

    __slots__ = ("header",)
    header: ResponseHeader


@dataclass(frozen=True)
class LeaseTimeToLiveResponse:
    """A lease's remaining ``ttl`` (-1 when it does not exist), its ``granted_ttl``, and the
    ``keys`` attached to it when asked for."""

    __slots__ = ("granted_ttl", "header", "id", "keys", "ttl")
    header: ResponseHeader
    id: int
    ttl: int
    granted_ttl: int
    keys: list[bytes]

    def __repr__(self) -> str:
        return (
            f"LeaseTimeToLiveResponse(id={self.id:x}, ttl={self.ttl}, "
            f"granted_ttl={self.granted_ttl}, keys={self.keys!r})"
        )


@dataclass(frozen=True, repr=False)
class LeaseKeepAliveResponse(_LeaseAndTTL):
    """A renewed lease and its TTL, restarted from now."""

    __slots__ = ()


class Lease:
    """A lease kept alive by the client: ``id``, the granted ``ttl`` and ``lost``.

    ``lost`` is a ``trio.Event`` set when the lease expired, was revoked elsewhere, or could not
    be renewed before its TTL ran out; from then on keys attached to it may be gone. It is set
    no later than etcd expires the lease: each renewal's TTL counts from when it was sent.
    """

    __slots__ = ("_kept",)

    def __init__(self, kept: KeptLease) -> None:
        self._kept = kept

    @property
    def id(self) -> int:
        return self._kept.lease_id

    @property
    def ttl(self) -> int:
        return self._kept.ttl

    @property
    def lost(self) -> trio.Event:
        return self._kept.lost

    def __repr__(self) -> str:
        state = "lost" if self.lost.is_set() else "alive"
        return f"Lease(id={self.id:x}, ttl={self.ttl}, {state})"


class LeaseMixin(ClientBase):
    """The Lease service, and leases kept alive by a task in the client's nursery; their state
    (keeper, owned leases) is the caller's, shared by the client's namespaces."""

    async def grant(
        self, ttl: int, *, id: int = 0, timeout: float | None = None
    ) -> LeaseGrantResponse:
        """Grant a lease of ``ttl`` seconds (the server may raise a very short TTL); ``id`` asks
        for a particular lease id (0: the server picks one). ``ttl`` must be > 0."""
        _check_id(id, allow_zero=True)
        check_ttl(ttl)
        reply = await self._unary(
            rpcs.LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=id), timeout=timeout
        )
        if reply.error:
            raise errors.EtcdError(f"lease grant failed: {reply.error}")
        return LeaseGrantResponse(response_header(reply.header), reply.ID, reply.TTL)

    async def revoke(self, id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        """Revoke a lease, deleting every key attached to it (``LeaseNotFoundError`` if gone)."""
        _check_id(id)
        reply = await self._unary(
            rpcs.LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=id), timeout=timeout
        )
        if self._caller.lease_keeper is not None:
            self._caller.lease_keeper.lose(id)
        return LeaseRevokeResponse(response_header(reply.header))

    async def time_to_live(
        self, id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        """A lease's remaining and granted TTL, and with ``keys=True`` its attached keys.

        A lease that does not exist (any more) has ``ttl == -1``, as etcd reports it.
        """
        _check_id(id)
        reply = await self._unary(
            rpcs.LEASE_TIME_TO_LIVE,
            rpc_pb2.LeaseTimeToLiveRequest(ID=id, keys=keys),
            timeout=timeout,
        )
        return LeaseTimeToLiveResponse(
            response_header(reply.header),
            reply.ID,
            reply.TTL,
            reply.grantedTTL,
            # Through a namespace view, keys outside it are not the view's (as Go's namespace).
            [
                self._keyspace.unkey(key)
                for key in reply.keys
                if key.startswith(self._keyspace.prefix)
            ],
        )

    async def leases(self, *, timeout: float | None = None) -> list[int]:
        """The ids of every lease the cluster knows."""
        reply = await self._unary(rpcs.LEASE_LEASES, rpc_pb2.LeaseLeasesRequest(), timeout=timeout)
        return [status.ID for status in reply.leases]

    async def keepalive_once(
        self, id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once, on a stream of its own; ``LeaseNotFoundError`` if it is gone."""
        _check_id(id)
        reply: rpc_pb2.LeaseKeepAliveResponse | None = None
        async with self._stream(
            rpcs.LEASE_KEEP_ALIVE, timeout=self._caller.timeout if timeout is None else timeout
        ) as stream:
            await stream.send_message(rpc_pb2.LeaseKeepAliveRequest(ID=id))
            async for answer in stream:
                reply = answer
                break
        if reply is None:
            raise errors.UnavailableError(
                grpc.StatusCode.UNAVAILABLE, "the server ended the keepalive stream early"
            )
        if reply.TTL <= 0:
            raise _lease_not_found()
        return LeaseKeepAliveResponse(response_header(reply.header), reply.ID, reply.TTL)

    @contextlib.asynccontextmanager
    async def lease(
        self,
        ttl: int,
        *,
        id: int = 0,
        cancel_on_loss: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[Lease]:
        """Grant a lease, keep it alive for the block, and revoke it on the way out.

        Renewal runs in the client's nursery (every ttl/3, all leases on one stream). Leaving the
        block revokes the lease, shielded from cancellation, also when the body raised or was
        cancelled: one attempt, bounded in time, skipped when the lease is lost already (when
        etcd cannot be reached the lease ends by its TTL). A lease still open when the client
        closes is revoked then. With ``cancel_on_loss=True`` losing the lease cancels the body
        and the block raises ``LeaseExpiredError``; otherwise check ``lease.lost``.
        """
        kept = await self._open_lease(ttl, id=id, timeout=timeout)
        try:
            async with _guard(kept, cancel_on_loss):
                yield Lease(kept)
        finally:
            await self._close_lease(kept)

    @contextlib.asynccontextmanager
    async def keep_alive(
        self, id: int, *, cancel_on_loss: bool = False, timeout: float | None = None
    ) -> AsyncIterator[Lease]:
        """Keep an existing lease alive for the block (it is left to expire afterwards).

        ``LeaseNotFoundError`` if the lease does not exist; ``cancel_on_loss`` as for ``lease``.
        """
        asked = trio.current_time()
        status = await self.time_to_live(id, timeout=timeout)
        if status.ttl < 0:
            raise _lease_not_found()
        keeper = self._keeper()
        # etcd rounds the remaining TTL down, and counted it after we asked: a safe deadline.
        kept = keeper.hold(id, status.granted_ttl, remaining=float(status.ttl), since=asked)
        try:
            async with _guard(kept, cancel_on_loss):
                yield Lease(kept)
        finally:
            keeper.release(kept)

    # Shared with the concurrency recipes, whose sessions are leases too.

    def _keeper(self) -> LeaseKeeper:
        keeper = self._caller.lease_keeper
        if keeper is None:
            keeper = LeaseKeeper(self._caller.nursery, self._keepalive_stream)
            self._caller.lease_keeper = keeper
        return keeper

    @contextlib.asynccontextmanager
    async def _keepalive_stream(
        self,
    ) -> AsyncIterator[EtcdStream[rpc_pb2.LeaseKeepAliveResponse]]:
        """The LeaseKeepAlive stream, opened with a renewed token when the server refused the
        last one: etcd 3.5.x's recent releases check the token of every renewal, and a
        restarted etcd has forgotten every simple token."""
        caller = self._caller
        keeper = caller.lease_keeper
        if keeper is not None and caller.is_stale_token(keeper.last_failure):
            keeper.last_failure = None
            await caller.renew_token(caller.keepalive_token)
        async with self._stream(rpcs.LEASE_KEEP_ALIVE) as stream:
            caller.keepalive_token = caller.token_marker()
            yield stream

    async def _open_lease(self, ttl: int, *, id: int = 0, timeout: float | None) -> KeptLease:
        """Grant a lease, keep it alive, and revoke it when the client closes unless
        ``_close_lease`` did first: the session of ``lease()`` blocks and of locks."""
        # The lease's clock starts when etcd applies the grant, after this: a safe first deadline.
        asked = trio.current_time()
        granted = await self.grant(ttl, id=id, timeout=timeout)
        owned = self._caller.owned_leases
        if owned is None:
            owned = self._caller.owned_leases = {}
            self._caller.closers.append(self._revoke_owned_leases)
        try:
            kept = self._keeper().hold(granted.id, granted.ttl, since=asked)
        except BaseException:
            await self._revoke_quietly(granted.id, REVOKE_TIMEOUT)
            raise
        owned[granted.id] = kept
        return kept

    async def _close_lease(self, kept: KeptLease, *, limit: float = REVOKE_TIMEOUT) -> None:
        """Stop renewing a lease of ``_open_lease`` and revoke it (once; later calls do nothing),
        trying for ``limit`` seconds at most (and no longer than its TTL)."""
        owned = self._caller.owned_leases
        if owned is None or owned.get(kept.lease_id) is not kept:
            return  # closed before, or revoked by the closing client
        del owned[kept.lease_id]
        self._keeper().release(kept)
        if not kept.lost.is_set():
            await self._revoke_quietly(kept.lease_id, min(limit, float(kept.ttl)))

    async def _revoke_owned_leases(self) -> None:
        owned = self._caller.owned_leases
        if not owned:
            return
        alive = [lease_id for lease_id, kept in owned.items() if not kept.lost.is_set()]
        owned.clear()
        # All at once under one bound: closing must not take a timeout per lease.
        with trio.move_on_after(REVOKE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for lease_id in alive:
                    nursery.start_soon(self._revoke_quietly, lease_id, REVOKE_TIMEOUT)

    async def _revoke_quietly(self, lease_id: int, limit: float) -> None:
        """Revoke on the way out (see ``cleanup_call``): a lease we cannot revoke expires by
        its TTL anyway."""
        reply = await cleanup_call(
            self._caller,
            rpcs.LEASE_REVOKE,
            rpc_pb2.LeaseRevokeRequest(ID=lease_id),
            limit=limit,
            what=f"revoke lease {lease_id:x}",
            on_exit=True,
        )
        if reply is not None and self._caller.lease_keeper is not None:
            self._caller.lease_keeper.lose(lease_id)


@contextlib.asynccontextmanager
async def _guard(kept: KeptLease, cancel_on_loss: bool) -> AsyncIterator[None]:
    if not cancel_on_loss:
        yield
        return
    with cancelled_on_loss(kept):
        yield
    if kept.lost.is_set():
        raise errors.LeaseExpiredError(kept.lease_id)


def _check_id(lease_id: object, *, allow_zero: bool = False) -> None:
    if not isinstance(lease_id, int) or isinstance(lease_id, bool):
        raise TypeError(f"a lease id must be an int, not {type(lease_id).__name__}")
    if lease_id < 0 or (lease_id == 0 and not allow_zero):
        raise ValueError(f"invalid lease id {lease_id}")


def _lease_not_found() -> errors.LeaseNotFoundError:
    # Worded as etcd words it, like the same error coming from the server.
    return errors.LeaseNotFoundError(
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"
    )
