"""puregrpc_etcd: an etcd v3 client for trio that speaks gRPC over HTTP/2 itself.

The public names of the package (README.md, "The API, area by area") live here and nowhere
else. They are imported on first use (PEP 562), so that ``import puregrpc_etcd`` and the
command's ``--help`` cost almost nothing; ``from puregrpc_etcd import Client`` imports what
``Client`` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First: when started as the command, Ctrl-C during the imports below prints no traceback.
from puregrpc_etcd import _entry  # noqa: F401
from puregrpc_etcd._version import __version__ as __version__

if TYPE_CHECKING:
    from puregrpc_etcd._credentials import PlaintextCredentialsWarning
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
        WatchOverflowError,
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
    from puregrpc_etcd.watch import Event, Watcher

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

# Where the public names live: ``__getattr__`` imports each from there on first use.
_EXPORTS = {
    "puregrpc_etcd._credentials": "PlaintextCredentialsWarning",
    "puregrpc_etcd.auth": "Auth AuthStatus Permission Role User",
    "puregrpc_etcd.client": "Client connect",
    "puregrpc_etcd.cluster": "Cluster Member MemberAddResponse",
    "puregrpc_etcd.election": "Election LeaderKey LeaderObserver",
    "puregrpc_etcd.errors": (
        "AlreadyExistsError AuthFailedError AuthNotEnabledError CompactedError "
        "ConnectionFailedError DeadlineExceededError DuplicateKeyError EtcdError "
        "FutureRevisionError InvalidAuthTokenError LeaseExpiredError LeaseNotFoundError "
        "LockLostError NoLeaderError NoSpaceError NotFoundError NotLeaderError "
        "PermissionDeniedError RequestTooLargeError RpcError TooManyOpsError UnavailableError "
        "WatchOverflowError"
    ),
    "puregrpc_etcd.grpc.status": "StatusCode",
    "puregrpc_etcd.lease": (
        "Lease LeaseGrantResponse LeaseKeepAliveResponse LeaseRevokeResponse "
        "LeaseTimeToLiveResponse"
    ),
    "puregrpc_etcd.lock": "Lock TryLock",
    "puregrpc_etcd.maintenance": "Alarm HashKVResponse Maintenance StatusResponse",
    "puregrpc_etcd.mirror": "Mirror MirrorChange",
    "puregrpc_etcd.txn": "Compare Op",
    "puregrpc_etcd.types": (
        "CompactResponse DeleteResponse GetResponse KeyValue PutResponse ResponseHeader TxnResponse"
    ),
    "puregrpc_etcd.watch": "Event Watcher",
}
_HOMES = {name: home for home, names in _EXPORTS.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        try:  # a submodule, as ``puregrpc_etcd.grpc`` was once the package had been imported
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
