"""The lease, lock, cluster and maintenance methods of python-etcd3's client."""

from __future__ import annotations

from typing import Any, BinaryIO, Iterable, Iterator, Optional

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import errors
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.maintenance import Alarm as NativeAlarm

from . import leases, locks
from ._native import handle_errors, handle_generator_errors
from ._results import Alarm, Status, header_pb
from .members import Member

__all__ = ["AdminMethods"]

_ALARM_TYPES = {"none": rpc_pb2.NONE, "no space": rpc_pb2.NOSPACE}


class AdminMethods:
    """Mixed into ``MultiEndpointEtcd3Client``."""

    _native: Any

    # Leases.

    @handle_errors
    def lease(self, ttl: int, lease_id: Optional[int] = None) -> leases.Lease:
        """Grant a lease of ``ttl`` seconds (``lease_id``: ask for that id)."""
        reply = self._native.grant(ttl, id=lease_id or 0)
        return leases.Lease(lease_id=reply.id, ttl=reply.ttl, etcd_client=self)  # type: ignore[arg-type]

    @handle_errors
    def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease: the keys attached to it are deleted."""
        self._native.revoke(lease_id)

    @handle_generator_errors
    def refresh_lease(self, lease_id: int) -> Iterator[rpc_pb2.LeaseKeepAliveResponse]:
        """Renew a lease once; yields the ``LeaseKeepAliveResponse`` (``TTL`` 0 when the lease
        does not exist any more, as etcd answers)."""
        try:
            reply = self._native.keepalive_once(lease_id)
        except errors.LeaseNotFoundError:
            yield rpc_pb2.LeaseKeepAliveResponse(ID=lease_id, TTL=0)
            return
        yield rpc_pb2.LeaseKeepAliveResponse(
            header=header_pb(reply.header), ID=reply.id, TTL=reply.ttl
        )

    @handle_errors
    def get_lease_info(self, lease_id: int) -> rpc_pb2.LeaseTimeToLiveResponse:
        """The ``LeaseTimeToLiveResponse`` of a lease, with its keys (``TTL`` -1 if gone)."""
        reply = self._native.time_to_live(lease_id, keys=True)
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=header_pb(reply.header),
            ID=reply.id,
            TTL=reply.ttl,
            grantedTTL=reply.granted_ttl,
            keys=list(reply.keys),
        )

    def lock(self, name: str, ttl: int = 60) -> locks.Lock:
        """A ``Lock`` named ``name`` (python-etcd3's key layout, ``/locks/<name>``)."""
        return locks.Lock(name, ttl=ttl, etcd_client=self)  # type: ignore[arg-type]

    # The cluster.

    def _member(self, member: Any) -> Member:
        return Member(
            member.id,
            member.name,
            member.peer_urls,
            member.client_urls,
            etcd_client=self,  # type: ignore[arg-type]
        )

    @handle_errors
    def add_member(self, urls: Iterable[str]) -> Member:
        """Add a member that will listen on the peer ``urls``."""
        reply = self._native.cluster.add_member(list(urls))
        return self._member(reply.member)

    @handle_errors
    def remove_member(self, member_id: int) -> None:
        """Remove a member from the cluster."""
        self._native.cluster.remove_member(member_id)

    @handle_errors
    def update_member(self, member_id: int, peer_urls: Iterable[str]) -> None:
        """Give a member new peer URLs."""
        self._native.cluster.update_member(member_id, list(peer_urls))

    @property
    @handle_errors
    def members(self) -> Iterator[Member]:
        """The members of the cluster (an iterator of ``Member``)."""
        return iter([self._member(m) for m in self._native.cluster.members()])

    # Maintenance.

    @handle_errors
    def status(self) -> Status:
        """The responding member's ``Status``, with the leader as a ``Member``."""
        reply = self._native.maintenance.status()
        leader = next((m for m in self.members if m.id == reply.leader), None)
        return Status(reply.version, reply.db_size, leader, reply.raft_index, reply.raft_term)

    @handle_errors
    def hash(self) -> int:
        """The hash of the responding member's key-value store (etcd's ``Hash`` RPC)."""
        reply = self._engine_call(rpcs.HASH, rpc_pb2.HashRequest(), repeatable=True)
        return int(reply.hash)

    def _engine_call(self, rpc: rpcs.Rpc[Any], request: Any, *, repeatable: bool) -> Any:
        # The two Maintenance RPCs python-etcd3 has and the library's API does not (Hash, and
        # raising an alarm) go through the engine's own call path: same connection, token,
        # retries and deadline as every other call.
        from puregrpc_etcd import _blocking

        native = self._native
        call = native._target._unary
        return _blocking.run(native._portal, call, rpc, request, repeatable=repeatable)

    def _alarm_request(self, action: int, member_id: int, alarm_type: str) -> Any:
        if alarm_type not in _ALARM_TYPES:
            raise ValueError(f"Unknown alarm type: {alarm_type}")
        alarm = _ALARM_TYPES[alarm_type]
        return rpc_pb2.AlarmRequest(action=action, memberID=member_id, alarm=alarm)  # type: ignore[arg-type]

    @handle_errors
    def create_alarm(self, member_id: int = 0) -> list[Alarm]:
        """Raise a "no space" alarm (on every member when ``member_id`` is 0)."""
        request = self._alarm_request(rpc_pb2.AlarmRequest.ACTIVATE, member_id, "no space")
        reply = self._engine_call(rpcs.ALARM, request, repeatable=False)
        return [Alarm(a.alarm, a.memberID) for a in reply.alarms]

    @handle_errors
    def list_alarms(self, member_id: int = 0, alarm_type: str = "none") -> Iterator[Alarm]:
        """The raised alarms (etcd lists them all, whatever the arguments)."""
        self._alarm_request(rpc_pb2.AlarmRequest.GET, member_id, alarm_type)
        alarms = self._native.maintenance.alarms()
        return iter([Alarm(_alarm_type(a), a.member_id) for a in alarms])

    @handle_errors
    def disarm_alarm(self, member_id: int = 0) -> list[Alarm]:
        """Clear the "no space" alarm of ``member_id`` (0: the one raised for all)."""
        cleared = self._native.maintenance.disarm(NativeAlarm(member_id=member_id, alarm="nospace"))
        return [Alarm(_alarm_type(a), a.member_id) for a in cleared]

    @handle_errors
    def defragment(self) -> None:
        """Defragment the responding member's store."""
        self._native.maintenance.defragment()

    @handle_errors
    def snapshot(self, file_obj: BinaryIO) -> None:
        """Write a snapshot of the database to a binary file object (checked against its
        SHA-256 trailer before this returns, which python-etcd3 does not do)."""
        self._native.maintenance.snapshot(file_obj)


def _alarm_type(alarm: NativeAlarm) -> int:
    return int(rpc_pb2.AlarmType.Value(alarm.alarm.upper()))
