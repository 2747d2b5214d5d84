"""puregrpc_etcd: an etcd v3 client for trio that speaks gRPC over HTTP/2 itself.

The public names of ../shared/design/API.md live here and nowhere else.
"""

from __future__ import annotations

from puregrpc_etcd.client import Client, connect
from puregrpc_etcd.errors import (
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
    NotLeaderError,
    PermissionDeniedError,
    RequestTooLargeError,
    RpcError,
    TooManyOpsError,
    UnavailableError,
)
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

__version__ = "0.1.0"

__all__ = [
    "AuthFailedError",
    "AuthNotEnabledError",
    "Client",
    "CompactResponse",
    "CompactedError",
    "Compare",
    "ConnectionFailedError",
    "DeadlineExceededError",
    "DeleteResponse",
    "DuplicateKeyError",
    "EtcdError",
    "FutureRevisionError",
    "GetResponse",
    "InvalidAuthTokenError",
    "KeyValue",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LockLostError",
    "NoLeaderError",
    "NoSpaceError",
    "NotLeaderError",
    "Op",
    "PermissionDeniedError",
    "PutResponse",
    "RequestTooLargeError",
    "ResponseHeader",
    "RpcError",
    "TooManyOpsError",
    "TxnResponse",
    "UnavailableError",
    "connect",
]
