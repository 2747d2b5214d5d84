"""puregrpc_etcd: an etcd v3 client for trio that speaks gRPC over HTTP/2 itself.

The public names of ../shared/design/API.md live here and nowhere else.
"""

from __future__ import annotations

# First: when started as the command, Ctrl-C during the imports below prints no traceback.
from puregrpc_etcd import _entry  # noqa: F401
from puregrpc_etcd._credentials import PlaintextCredentialsWarning
from puregrpc_etcd._version import __version__ as __version__
from puregrpc_etcd.auth import Auth, AuthStatus, Permission, Role, User
from puregrpc_etcd.client import Client, connect
from puregrpc_etcd.cluster import Cluster, Member, MemberAddResponse
from puregrpc_etcd.election import Election, LeaderKey, LeaderObserver
from puregrpc_etcd.errors import (
    AlreadyExistsError,
    AuthFailedError,
    AuthNotEnabledError,
    CompactedError,
    ConnectionFailedError,
    DeadlineExceededError,
    DuplicateKeyError,
    EtcdError,
    FutureRevisionError,
    InvalidAuthTokenError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LockLostError,
    NoLeaderError,
    NoSpaceError,
    NotFoundError,
    NotLeaderError,
    PermissionDeniedError,
    RequestTooLargeError,
    RpcError,
    TooManyOpsError,
    UnavailableError,
)
from puregrpc_etcd.grpc.status import StatusCode
from puregrpc_etcd.lease import (
    Lease,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
)
from puregrpc_etcd.lock import Lock, TryLock
from puregrpc_etcd.maintenance import Alarm, HashKVResponse, Maintenance, StatusResponse
from puregrpc_etcd.mirror import Mirror, MirrorChange
from puregrpc_etcd.txn import Compare, Op
from puregrpc_etcd.types import (
    CompactResponse,
    DeleteResponse,
    GetResponse,
    KeyValue,
    PutResponse,
    ResponseHeader,
    TxnResponse,
)
from puregrpc_etcd.watch import Event, Watcher, WatchOverflowError

__all__ = [
    "Alarm",
    "AlreadyExistsError",
    "Auth",
    "AuthFailedError",
    "AuthNotEnabledError",
    "AuthStatus",
    "Client",
    "Cluster",
    "CompactResponse",
    "CompactedError",
    "Compare",
    "ConnectionFailedError",
    "DeadlineExceededError",
    "DeleteResponse",
    "DuplicateKeyError",
    "Election",
    "EtcdError",
    "Event",
    "FutureRevisionError",
    "GetResponse",
    "HashKVResponse",
    "InvalidAuthTokenError",
    "KeyValue",
    "LeaderKey",
    "LeaderObserver",
    "Lease",
    "LeaseExpiredError",
    "LeaseGrantResponse",
    "LeaseKeepAliveResponse",
    "LeaseNotFoundError",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveResponse",
    "Lock",
    "LockLostError",
    "Maintenance",
    "Member",
    "MemberAddResponse",
    "Mirror",
    "MirrorChange",
    "NoLeaderError",
    "NoSpaceError",
    "NotFoundError",
    "NotLeaderError",
    "Op",
    "Permission",
    "PermissionDeniedError",
    "PlaintextCredentialsWarning",
    "PutResponse",
    "RequestTooLargeError",
    "ResponseHeader",
    "Role",
    "RpcError",
    "StatusCode",
    "StatusResponse",
    "TooManyOpsError",
    "TryLock",
    "TxnResponse",
    "UnavailableError",
    "User",
    "WatchOverflowError",
    "Watcher",
    "connect",
]
