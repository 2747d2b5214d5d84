"""What the two faces' classes share: the methods that forward to the trio classes unchanged
(declared once; ``_face`` types them for each face) and the read-only fields of trio objects.
A face's class is ``class Cluster(ClusterForwards, BlockingFace)`` (or ``AwaitingFace``) plus
what only that face has: methods whose results are that face's own objects, and protocols."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from puregrpc_etcd import auth as _auth
from puregrpc_etcd import client as _client
from puregrpc_etcd import cluster as _cluster
from puregrpc_etcd import election as _election
from puregrpc_etcd import lock as _lock
from puregrpc_etcd import maintenance as _maintenance
from puregrpc_etcd import mirror as _mirror
from puregrpc_etcd import watch as _watch
from puregrpc_etcd._face import Awaited, Entered, Face, Iterated, Made, same

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._portal import Portal
    from puregrpc_etcd.election import LeaderKey

__all__ = [
    "AuthForwards",
    "ClientForwards",
    "ClusterForwards",
    "ElectionForwards",
    "LockForwards",
    "MaintenanceForwards",
    "MirrorForwards",
    "WatcherForwards",
]


class ClusterForwards(Face):
    __slots__ = ()
    members = Awaited(_cluster.Cluster.members)
    add_member = Awaited(_cluster.Cluster.add_member)
    remove_member = Awaited(_cluster.Cluster.remove_member)
    update_member = Awaited(_cluster.Cluster.update_member)
    promote_member = Awaited(_cluster.Cluster.promote_member)


class MaintenanceForwards(Face):
    __slots__ = ()
    status = Awaited(_maintenance.Maintenance.status)
    alarms = Awaited(_maintenance.Maintenance.alarms)
    disarm = Awaited(_maintenance.Maintenance.disarm)
    defragment = Awaited(_maintenance.Maintenance.defragment)
    hash_kv = Awaited(_maintenance.Maintenance.hash_kv)
    snapshot = Awaited(_maintenance.Maintenance.snapshot)
    move_leader = Awaited(_maintenance.Maintenance.move_leader)


class AuthForwards(Face):
    __slots__ = ()
    enable = Awaited(_auth.Auth.enable)
    disable = Awaited(_auth.Auth.disable)
    status = Awaited(_auth.Auth.status)
    user_add = Awaited(_auth.Auth.user_add)
    user_delete = Awaited(_auth.Auth.user_delete)
    user_list = Awaited(_auth.Auth.user_list)
    user_get = Awaited(_auth.Auth.user_get)
    user_grant_role = Awaited(_auth.Auth.user_grant_role)
    user_revoke_role = Awaited(_auth.Auth.user_revoke_role)
    user_change_password = Awaited(_auth.Auth.user_change_password)
    role_add = Awaited(_auth.Auth.role_add)
    role_delete = Awaited(_auth.Auth.role_delete)
    role_list = Awaited(_auth.Auth.role_list)
    role_get = Awaited(_auth.Auth.role_get)
    role_grant_permission = Awaited(_auth.Auth.role_grant_permission)
    role_revoke_permission = Awaited(_auth.Auth.role_revoke_permission)


class LockForwards(Face):
    """``name``, ``key``, ``lease_id``, ``revision`` (a fencing token) and ``lost`` (a
    ``trio.Event``: read ``lost.is_set()``) of a held lock, and ``release()``."""

    __slots__ = ()
    release = Awaited(_lock.Lock.release)

    @property
    def name(self) -> bytes:
        return self._target.name  # type: ignore[no-any-return]

    @property
    def key(self) -> bytes:
        return self._target.key  # type: ignore[no-any-return]

    @property
    def lease_id(self) -> int:
        return self._target.lease_id  # type: ignore[no-any-return]

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def lost(self) -> trio.Event:
        return self._target.lost  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return repr(self._target)


class WatcherForwards(Face):
    """``revision`` (the last one the watcher has observed), ``pending`` and
    ``request_progress()`` of a watcher."""

    __slots__ = ()
    request_progress = Awaited(_watch.Watcher.request_progress)

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def pending(self) -> int:
        return self._target.pending  # type: ignore[no-any-return]


class ElectionForwards(Face):
    __slots__ = ()
    campaign = Entered(_election.Election.campaign)
    leader = Awaited(_election.Election.leader)
    proclaim = Awaited(_election.Election.proclaim)
    resign = Awaited(_election.Election.resign)

    @property
    def leader_key(self) -> LeaderKey | None:
        return self._target.leader_key  # type: ignore[no-any-return]


class MirrorForwards(Face):
    """``revision`` and ``resyncs`` of a mirror, ``wait_for()``, ``get()`` and ``items()``."""

    __slots__ = ()
    wait_for = Awaited(_mirror.Mirror.wait_for)
    get = Made(_mirror.Mirror.get, same)
    items = Made(_mirror.Mirror.items, same)

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def resyncs(self) -> int:
        return self._target.resyncs  # type: ignore[no-any-return]


class ClientForwards(Face):
    """The client's methods whose results are plain data. A client made by ``connect()`` owns
    its portal (closing it ends the portal's thread); a ``namespace()`` view does not."""

    __slots__ = ("_owner",)

    def __init__(self, portal: Portal, target: Any, owner: bool = True) -> None:
        super().__init__(portal, target)
        self._owner = owner

    get = Awaited(_client.Client.get)
    get_value = Awaited(_client.Client.get_value)
    get_prefix = Awaited(_client.Client.get_prefix)
    get_json = Awaited(_client.Client.get_json)
    exists = Awaited(_client.Client.exists)
    put = Awaited(_client.Client.put)
    put_json = Awaited(_client.Client.put_json)  # type: ignore[arg-type]  # its **options
    delete = Awaited(_client.Client.delete)
    compact = Awaited(_client.Client.compact)
    txn = Awaited(_client.Client.txn)
    scan = Iterated(_client.Client.scan)
    grant = Awaited(_client.Client.grant)
    revoke = Awaited(_client.Client.revoke)
    time_to_live = Awaited(_client.Client.time_to_live)
    leases = Awaited(_client.Client.leases)
    keepalive_once = Awaited(_client.Client.keepalive_once)
    lease = Entered(_client.Client.lease)
    keep_alive = Entered(_client.Client.keep_alive)
    lock_rpc = Awaited(_client.Client.lock_rpc)
    unlock_rpc = Awaited(_client.Client.unlock_rpc)
    release_lock = Awaited(_client.Client.release_lock)
    campaign_rpc = Awaited(_client.Client.campaign_rpc)
    proclaim_rpc = Awaited(_client.Client.proclaim_rpc)
    leader_rpc = Awaited(_client.Client.leader_rpc)
    resign_rpc = Awaited(_client.Client.resign_rpc)
