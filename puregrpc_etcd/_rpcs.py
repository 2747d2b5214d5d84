"""Every etcd RPC the client sends: its path, its reply type, and whether it may be retried.

A **repeatable** RPC reads or changes nothing that a second copy could change again (reads,
lease grants and revokes, member lists): the client retries it on UNAVAILABLE even after the
request was sent. Any other is retried only when the request provably never reached a server
(``RpcError.not_processed``) or the member refused it with "no leader" before proposing it.
These are the rules of Go's clientv3 (``client/v3/retry.go``: ``repeatable`` and
``nonRepeatable``), applied in ``_caller.Caller.unary``, with four differences: AuthStatus and
v3election's Leader are reads, so repeatable here; MoveLeader is not repeated (Go repeats it);
and two calls choose per request: a read-only ``txn`` is repeatable (``kv.py``), an Alarm that
disarms is not (``maintenance.py``). For streams the flag is Go's; they are not retried call by
call (watch and lease keepalive reopen theirs). ``docs/reliability.md`` lists the same.

Call sites name an entry of this table (``client._unary(RANGE, request)``); the path, the
reply type and the retry rule are spelled only here. ``tests/unit/test_rpcs.py`` checks every
entry against the service descriptors of the generated protobuf code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from puregrpc_etcd import _fast_kv_codec
from puregrpc_etcd._proto import rpc_pb2, v3election_pb2, v3lock_pb2

if TYPE_CHECKING:
    from google.protobuf.message import Message

M = TypeVar("M", bound="Message")


class Rpc(Generic[M]):
    """One etcd RPC: ``path`` (``/package.Service/Method``), ``reply_type`` (the message class
    its replies are parsed with) and ``repeatable`` (see the module docstring)."""

    __slots__ = ("path", "repeatable", "reply_type")

    def __init__(self, path: str, reply_type: type[M], *, repeatable: bool) -> None:
        self.path = path
        self.reply_type = reply_type
        self.repeatable = repeatable

    @property
    def name(self) -> str:
        """The method's name alone, e.g. ``Put``."""
        return self.path.rpartition("/")[2]

    def __repr__(self) -> str:
        return f"Rpc({self.path!r}, repeatable={self.repeatable})"


_KV = "/etcdserverpb.KV/"
_WATCH = "/etcdserverpb.Watch/"
_LEASE = "/etcdserverpb.Lease/"
_CLUSTER = "/etcdserverpb.Cluster/"
_MAINTENANCE = "/etcdserverpb.Maintenance/"
_AUTH = "/etcdserverpb.Auth/"
_LOCK = "/v3lockpb.Lock/"
_ELECTION = "/v3electionpb.Election/"

# Pure-Python protobuf (PyPy) is slow to parse big replies, and a tenth of a put's client time
# goes to its messages: _fast_kv_codec reads the same bytes (kv.py writes PutRequests with it too).
if _fast_kv_codec.PURE_PYTHON_PROTOBUF:
    _RangeResponse = cast("type[rpc_pb2.RangeResponse]", _fast_kv_codec.RangeResponse)
    _PutResponse = cast("type[rpc_pb2.PutResponse]", _fast_kv_codec.PutResponse)
else:
    _RangeResponse = rpc_pb2.RangeResponse
    _PutResponse = rpc_pb2.PutResponse

# KV and Watch
RANGE = Rpc(_KV + "Range", _RangeResponse, repeatable=True)
PUT = Rpc(_KV + "Put", _PutResponse, repeatable=False)
DELETE_RANGE = Rpc(_KV + "DeleteRange", rpc_pb2.DeleteRangeResponse, repeatable=False)
TXN = Rpc(_KV + "Txn", rpc_pb2.TxnResponse, repeatable=False)  # read-only: kv.py says so
COMPACT = Rpc(_KV + "Compact", rpc_pb2.CompactionResponse, repeatable=False)
WATCH = Rpc(_WATCH + "Watch", rpc_pb2.WatchResponse, repeatable=True)  # a stream

# Lease
LEASE_GRANT = Rpc(_LEASE + "LeaseGrant", rpc_pb2.LeaseGrantResponse, repeatable=True)
LEASE_REVOKE = Rpc(_LEASE + "LeaseRevoke", rpc_pb2.LeaseRevokeResponse, repeatable=True)
LEASE_TIME_TO_LIVE = Rpc(
    _LEASE + "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveResponse, repeatable=True
)
LEASE_LEASES = Rpc(_LEASE + "LeaseLeases", rpc_pb2.LeaseLeasesResponse, repeatable=True)
LEASE_KEEP_ALIVE = Rpc(
    _LEASE + "LeaseKeepAlive", rpc_pb2.LeaseKeepAliveResponse, repeatable=True
)  # a stream

# Cluster
MEMBER_LIST = Rpc(_CLUSTER + "MemberList", rpc_pb2.MemberListResponse, repeatable=True)
MEMBER_ADD = Rpc(_CLUSTER + "MemberAdd", rpc_pb2.MemberAddResponse, repeatable=False)
MEMBER_REMOVE = Rpc(_CLUSTER + "MemberRemove", rpc_pb2.MemberRemoveResponse, repeatable=False)
MEMBER_UPDATE = Rpc(_CLUSTER + "MemberUpdate", rpc_pb2.MemberUpdateResponse, repeatable=False)
MEMBER_PROMOTE = Rpc(_CLUSTER + "MemberPromote", rpc_pb2.MemberPromoteResponse, repeatable=False)

# Maintenance
STATUS = Rpc(_MAINTENANCE + "Status", rpc_pb2.StatusResponse, repeatable=True)
ALARM = Rpc(_MAINTENANCE + "Alarm", rpc_pb2.AlarmResponse, repeatable=True)  # GET; see above
DEFRAGMENT = Rpc(_MAINTENANCE + "Defragment", rpc_pb2.DefragmentResponse, repeatable=False)
HASH = Rpc(_MAINTENANCE + "Hash", rpc_pb2.HashResponse, repeatable=True)  # etcd3 face only
HASH_KV = Rpc(_MAINTENANCE + "HashKV", rpc_pb2.HashKVResponse, repeatable=True)
MOVE_LEADER = Rpc(_MAINTENANCE + "MoveLeader", rpc_pb2.MoveLeaderResponse, repeatable=False)
SNAPSHOT = Rpc(_MAINTENANCE + "Snapshot", rpc_pb2.SnapshotResponse, repeatable=True)  # a stream

# Auth
AUTHENTICATE = Rpc(_AUTH + "Authenticate", rpc_pb2.AuthenticateResponse, repeatable=False)
AUTH_ENABLE = Rpc(_AUTH + "AuthEnable", rpc_pb2.AuthEnableResponse, repeatable=False)
AUTH_DISABLE = Rpc(_AUTH + "AuthDisable", rpc_pb2.AuthDisableResponse, repeatable=False)
AUTH_STATUS = Rpc(_AUTH + "AuthStatus", rpc_pb2.AuthStatusResponse, repeatable=True)
USER_ADD = Rpc(_AUTH + "UserAdd", rpc_pb2.AuthUserAddResponse, repeatable=False)
USER_DELETE = Rpc(_AUTH + "UserDelete", rpc_pb2.AuthUserDeleteResponse, repeatable=False)
USER_LIST = Rpc(_AUTH + "UserList", rpc_pb2.AuthUserListResponse, repeatable=True)
USER_GET = Rpc(_AUTH + "UserGet", rpc_pb2.AuthUserGetResponse, repeatable=True)
USER_CHANGE_PASSWORD = Rpc(
    _AUTH + "UserChangePassword", rpc_pb2.AuthUserChangePasswordResponse, repeatable=False
)
USER_GRANT_ROLE = Rpc(_AUTH + "UserGrantRole", rpc_pb2.AuthUserGrantRoleResponse, repeatable=False)
USER_REVOKE_ROLE = Rpc(
    _AUTH + "UserRevokeRole", rpc_pb2.AuthUserRevokeRoleResponse, repeatable=False
)
ROLE_ADD = Rpc(_AUTH + "RoleAdd", rpc_pb2.AuthRoleAddResponse, repeatable=False)
ROLE_DELETE = Rpc(_AUTH + "RoleDelete", rpc_pb2.AuthRoleDeleteResponse, repeatable=False)
ROLE_LIST = Rpc(_AUTH + "RoleList", rpc_pb2.AuthRoleListResponse, repeatable=True)
ROLE_GET = Rpc(_AUTH + "RoleGet", rpc_pb2.AuthRoleGetResponse, repeatable=True)
ROLE_GRANT_PERMISSION = Rpc(
    _AUTH + "RoleGrantPermission", rpc_pb2.AuthRoleGrantPermissionResponse, repeatable=False
)
ROLE_REVOKE_PERMISSION = Rpc(
    _AUTH + "RoleRevokePermission", rpc_pb2.AuthRoleRevokePermissionResponse, repeatable=False
)

# The v3lock and v3election services
LOCK = Rpc(_LOCK + "Lock", v3lock_pb2.LockResponse, repeatable=False)
UNLOCK = Rpc(_LOCK + "Unlock", v3lock_pb2.UnlockResponse, repeatable=False)
CAMPAIGN = Rpc(_ELECTION + "Campaign", v3election_pb2.CampaignResponse, repeatable=False)
PROCLAIM = Rpc(_ELECTION + "Proclaim", v3election_pb2.ProclaimResponse, repeatable=False)
RESIGN = Rpc(_ELECTION + "Resign", v3election_pb2.ResignResponse, repeatable=False)
LEADER = Rpc(_ELECTION + "Leader", v3election_pb2.LeaderResponse, repeatable=True)
OBSERVE = Rpc(_ELECTION + "Observe", v3election_pb2.LeaderResponse, repeatable=True)  # a stream

#: Every entry above, for the tests and for documentation.
ALL: tuple[Rpc[Message], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Rpc)
)
