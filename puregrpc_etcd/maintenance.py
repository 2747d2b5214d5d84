"""Maintenance of members and their stores (``client.maintenance``): status, alarms, defragment,
hashes, leader transfer. Snapshots stream to a file in ``_snapshot.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._endpoints import normalize_endpoint
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd._snapshot import Progress, SnapshotTarget, save_snapshot
from puregrpc_etcd.cluster import Cluster, serving_endpoints
from puregrpc_etcd.errors import EtcdError
from puregrpc_etcd.types import ResponseHeader, response_header

if TYPE_CHECKING:
    from puregrpc_etcd._base import ClientBase

__all__ = ["Alarm", "AlarmType", "HashKVResponse", "Maintenance", "StatusResponse"]


AlarmType = Literal["nospace", "corrupt"]
_ALARM_NAMES: dict[int, AlarmType] = {
    rpc_pb2.NOSPACE: "nospace",
    rpc_pb2.CORRUPT: "corrupt",
}


@dataclass(frozen=True)
class StatusResponse:
    """One member's view of itself and the cluster.

    ``db_size`` is the backend file's size and ``db_size_in_use`` the part holding live data
    (the difference is what ``defragment`` gives back). ``leader`` is the leader's member id
    (0: none); ``raft_index`` is the committed index, ``raft_applied_index`` what the member has
    applied. ``errors`` lists raised alarms and "no leader" as the server words them.
    """

    __slots__ = (
        "db_size",
        "db_size_in_use",
        "errors",
        "header",
        "is_learner",
        "leader",
        "raft_applied_index",
        "raft_index",
        "raft_term",
        "version",
    )
    header: ResponseHeader
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: tuple[str, ...]
    is_learner: bool

    @property
    def member_id(self) -> int:
        """The id of the member that answered."""
        return self.header.member_id

    @property
    def is_leader(self) -> bool:
        """True when the member that answered leads the cluster."""
        return self.leader != 0 and self.leader == self.header.member_id


@dataclass(frozen=True)
class Alarm:
    """An alarm raised by a member: ``"nospace"`` (quota reached, writes refused) or
    ``"corrupt"`` (its store's hash disagrees with the others')."""

    __slots__ = ("alarm", "member_id")
    member_id: int
    alarm: AlarmType


@dataclass(frozen=True)
class HashKVResponse:
    """The hash of a member's MVCC store up to a revision, for comparing members.

    Members agree on ``hash`` for the same revision and ``compact_revision`` (-1 while the
    store has never been compacted).
    """

    __slots__ = ("compact_revision", "hash", "header")
    header: ResponseHeader
    hash: int
    compact_revision: int


def _alarms(reply: rpc_pb2.AlarmResponse) -> list[Alarm]:
    return [
        Alarm(member_id=item.memberID, alarm=_ALARM_NAMES[item.alarm])
        for item in reply.alarms
        if item.alarm in _ALARM_NAMES
    ]


class Maintenance:
    """The Maintenance service of one client: ``client.maintenance``.

    Calls that take ``endpoint`` ask that one member (``"host:port"`` or a client URL) rather
    than whichever the client is connected to; status, defragment and hashes are per member.
    """

    __slots__ = ("_client",)

    def __init__(self, client: ClientBase) -> None:
        self._client = client

    async def status(
        self, endpoint: str | None = None, *, timeout: float | None = None
    ) -> StatusResponse:
        """The status of the member at ``endpoint`` (default: the one connected to)."""
        reply = await self._client._unary(
            rpcs.STATUS, rpc_pb2.StatusRequest(), timeout=timeout, endpoint=_endpoint(endpoint)
        )
        return StatusResponse(
            header=response_header(reply.header),
            version=reply.version,
            db_size=reply.dbSize,
            db_size_in_use=reply.dbSizeInUse,
            leader=reply.leader,
            raft_index=reply.raftIndex,
            raft_term=reply.raftTerm,
            raft_applied_index=reply.raftAppliedIndex,
            errors=tuple(reply.errors),
            is_learner=reply.isLearner,
        )

    async def alarms(self, *, timeout: float | None = None) -> list[Alarm]:
        """Every alarm raised in the cluster."""
        reply = await self._client._unary(
            rpcs.ALARM, rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET), timeout=timeout
        )
        return _alarms(reply)

    async def disarm(
        self, alarm: Alarm | None = None, *, timeout: float | None = None
    ) -> list[Alarm]:
        """Clear ``alarm``, or every raised alarm when it is None; returns the alarms cleared.

        Clear a ``"nospace"`` alarm only after making room (compact, defragment), or the member
        raises it again on the next write.
        """
        if alarm is None:
            targets = await self.alarms(timeout=timeout)
        elif isinstance(alarm, Alarm):
            if alarm.alarm not in _ALARM_NAMES.values():
                raise ValueError(f"unknown alarm type: {alarm.alarm!r}")
            targets = [alarm]
        else:
            raise TypeError(f"alarm must be an Alarm or None, not {type(alarm).__name__}")
        cleared: list[Alarm] = []
        for target in targets:
            request = rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.DEACTIVATE,
                memberID=target.member_id,
                alarm=target.alarm.upper(),
            )
            # A write: retried only when it provably never reached the member.
            reply = await self._client._unary(
                rpcs.ALARM, request, timeout=timeout, repeatable=False
            )
            cleared.extend(_alarms(reply))
        return cleared

    async def defragment(
        self, endpoint: str | None = None, *, timeout: float | None = None
    ) -> None:
        """Rewrite the store of the member at ``endpoint`` to give free pages back to the disk.

        The member serves nothing while it defragments: do one member at a time, with a
        ``timeout`` that fits the store's size.
        """
        await self._client._unary(
            rpcs.DEFRAGMENT,
            rpc_pb2.DefragmentRequest(),
            timeout=timeout,
            endpoint=_endpoint(endpoint),
        )

    async def hash_kv(
        self, revision: int = 0, endpoint: str | None = None, *, timeout: float | None = None
    ) -> HashKVResponse:
        """The hash of the store of the member at ``endpoint`` up to ``revision`` (0: latest)."""
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise TypeError(f"revision must be an int, not {type(revision).__name__}")
        if revision < 0:
            raise ValueError("revision must not be negative")
        reply = await self._client._unary(
            rpcs.HASH_KV,
            rpc_pb2.HashKVRequest(revision=revision),
            timeout=timeout,
            endpoint=_endpoint(endpoint),
        )
        return HashKVResponse(
            header=response_header(reply.header),
            hash=reply.hash,
            compact_revision=reply.compact_revision,
        )

    async def snapshot(
        self,
        file: SnapshotTarget,
        *,
        progress: Progress | None = None,
        timeout: float | None = None,
    ) -> int:
        """Stream the connected member's database to ``file``; returns the bytes written.

        ``file`` is a path (written to ``<path>.part``, then renamed, so a failed snapshot leaves
        no file behind; the ``.part`` file is created anew with mode 0600, and a file or symlink
        already there is removed, never followed) or a binary file object (sync or trio async).
        ``progress(done, total)`` is called after each chunk, ``total`` being the size once the
        server has said it. The result is what ``etcdutl snapshot restore`` takes: the database
        followed by its SHA-256, which is checked before returning (``EtcdError`` if it does not
        match).
        """
        return await save_snapshot(self._client, file, progress=progress, timeout=timeout)

    async def move_leader(
        self, member_id: int, *, endpoint: str | None = None, timeout: float | None = None
    ) -> None:
        """Hand leadership to ``member_id`` and wait until it leads.

        Only the leader can do this; the call finds it (by asking the connected member and the
        member list) unless ``endpoint`` names it.
        """
        if not isinstance(member_id, int) or isinstance(member_id, bool):
            raise TypeError(f"a member id must be an int, not {type(member_id).__name__}")
        target = _endpoint(endpoint) if endpoint is not None else await self._leader_endpoint()
        await self._client._unary(
            rpcs.MOVE_LEADER,
            rpc_pb2.MoveLeaderRequest(targetID=member_id),
            timeout=timeout,
            endpoint=target,
        )

    async def _leader_endpoint(self) -> str:
        status = await self.status()
        if not status.leader:
            raise EtcdError("the cluster has no leader to move leadership from")
        for member in await Cluster(self._client).members():
            if member.id == status.leader:
                endpoints = serving_endpoints([member], tls=self._client._tls)
                if endpoints:
                    return endpoints[0]
        raise EtcdError(f"the leader {status.leader:x} publishes no usable client URL")


def _endpoint(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
    return normalize_endpoint(endpoint)
