"""The typed exceptions of the etcd client, and the mapping from gRPC failures to them.

etcd reports most failures as a gRPC status whose code is shared by unrelated errors, so the
mapping looks at etcd's message first (``api/v3rpc/rpctypes``) and falls back to the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from puregrpc_etcd.grpc.status import RpcError as TransportError
    from puregrpc_etcd.grpc.status import StatusCode

__all__ = [
    "AlreadyExistsError",
    "AuthFailedError",
    "AuthNotEnabledError",
    "CompactedError",
    "ConnectionFailedError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthTokenError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LockLostError",
    "NoLeaderError",
    "NoSpaceError",
    "NotFoundError",
    "NotLeaderError",
    "PermissionDeniedError",
    "RequestTooLargeError",
    "RpcError",
    "TooManyOpsError",
    "UnavailableError",
    "WatchOverflowError",
    "from_rpc_error",
]


class EtcdError(Exception):
    """Base class of every error this package raises on purpose."""


class RpcError(EtcdError):
    """A call failed with a gRPC status: ``code`` (a ``grpc.StatusCode``) and ``details``.

    ``not_processed`` is True when the request provably never reached the server, which is
    what makes a mutation safe to repeat.
    """

    code: StatusCode
    details: str
    not_processed: bool

    def __init__(self, code: StatusCode, details: str = "", *, not_processed: bool = False) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.not_processed = not_processed

    def __str__(self) -> str:
        name = getattr(self.code, "name", self.code)
        return f"{name}: {self.details}" if self.details else str(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class UnavailableError(RpcError):
    """The member could not serve the call (connection lost, server stopping, timed out)."""


class ConnectionFailedError(UnavailableError):
    """No endpoint could be reached."""


class NoLeaderError(UnavailableError):
    """The member has no leader (``etcdserver: no leader``), e.g. during an election."""


class NotLeaderError(RpcError):
    """The call must go to the leader (``etcdserver: not leader``)."""


class DeadlineExceededError(RpcError):
    """The call's timeout, or the client's default timeout, expired before it completed."""


class CompactedError(RpcError):
    """The requested revision has been compacted away.

    ``compact_revision`` is the oldest revision still available when the server said so (a
    Watch does); a Range error does not carry it, and then it is 0.
    """

    compact_revision: int

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        *,
        not_processed: bool = False,
        compact_revision: int = 0,
    ) -> None:
        super().__init__(code, details, not_processed=not_processed)
        self.compact_revision = compact_revision


class FutureRevisionError(RpcError):
    """The requested revision is newer than the store's current revision."""


class NotFoundError(RpcError):
    """What the call names does not exist: a user, a role, a role of a user, a permission of a
    role, a member, or (``LeaseNotFoundError``) a lease."""


class AlreadyExistsError(RpcError):
    """What the call would create exists already: a user, a role, a member or its peer URLs,
    or a lease of the requested id."""


class LeaseNotFoundError(NotFoundError):
    """The lease does not exist (never granted, revoked, or expired)."""


class LeaseExpiredError(EtcdError):
    """A lease held by this client expired or was revoked while it was being kept alive."""

    lease_id: int

    def __init__(self, lease_id: int, message: str = "") -> None:
        super().__init__(message or f"lease {lease_id:x} expired or was revoked")
        self.lease_id = lease_id


class RequestTooLargeError(RpcError):
    """The request is larger than the server accepts (``--max-request-bytes``, 1.5 MiB)."""


class NoSpaceError(RpcError):
    """The member's database reached its quota; only reads and deletes are accepted."""


class PermissionDeniedError(RpcError):
    """The authenticated user lacks the permission the call needs."""


class AuthFailedError(RpcError):
    """Authentication failed: wrong user name or password, or auth is enabled and the call
    named no user (``etcdserver: user name is empty``: connect with ``username=``)."""


class InvalidAuthTokenError(RpcError):
    """The auth token is invalid or expired and re-authenticating did not help."""


class AuthNotEnabledError(RpcError):
    """An auth call that needs authentication enabled was made while it is disabled."""


class TooManyOpsError(RpcError):
    """A txn has more operations than the server allows (``--max-txn-ops``, 128)."""


class DuplicateKeyError(RpcError):
    """A txn writes the same key twice in one branch."""


class LockLostError(EtcdError):
    """A held lock's session lease was lost, so the lock no longer excludes others."""


class WatchOverflowError(EtcdError):
    """A watcher's consumer fell so far behind that its backlog went over a bound.

    The watch was cancelled on the server, and the iterator raises this once it has handed out
    every event it had received: those up to ``revision``, so watching ``key`` again from
    ``revision + 1`` misses nothing. ``bound`` is the limit that was hit ("max_backlog" or
    "max_backlog_bytes") and ``limit`` its value.
    """

    def __init__(self, key: bytes, bound: str, limit: int, revision: int) -> None:
        unit = "events" if bound == "max_backlog" else "bytes"
        super().__init__(
            f"the watcher of {key!r} fell more than {limit} {unit} behind ({bound}={limit}); "
            f"it delivered every event up to revision {revision}: watch again from "
            f"revision {revision + 1}, read faster, or pass on_overflow='pause'"
        )
        self.key = key
        self.bound = bound
        self.limit = limit
        self.revision = revision


# etcd's messages are "etcdserver: ..." on the wire; older servers and proxies drop the
# prefix, so the table is keyed by the text after it (see _PREFIXES).
_BY_MESSAGE: dict[str, type[RpcError]] = {
    "request is too large": RequestTooLargeError,
    "mvcc: required revision has been compacted": CompactedError,
    "mvcc: required revision is a future revision": FutureRevisionError,
    "mvcc: database space exceeded": NoSpaceError,
    "requested lease not found": LeaseNotFoundError,
    "too many operations in txn request": TooManyOpsError,
    "duplicate key given in txn request": DuplicateKeyError,
    "no leader": NoLeaderError,
    "not leader": NotLeaderError,
    "permission denied": PermissionDeniedError,
    "invalid auth token": InvalidAuthTokenError,
    "authentication failed, invalid user ID or password": AuthFailedError,
    # Auth is on and the call carried no token: no user was given.
    "user name is empty": AuthFailedError,
    "authentication is not enabled": AuthNotEnabledError,
    "key not found": NotFoundError,
    "user name not found": NotFoundError,
    "role name not found": NotFoundError,
    "role is not granted to the user": NotFoundError,
    "permission is not granted to the role": NotFoundError,
    "member not found": NotFoundError,
    "lease already exists": AlreadyExistsError,
    "user name already exists": AlreadyExistsError,
    "role name already exists": AlreadyExistsError,
    "member ID already exist": AlreadyExistsError,
    "Peer URLs already exists": AlreadyExistsError,
    # The auth store's own wording of the same errors (passed through as "auth: ...").
    "user not found": NotFoundError,
    "role not found": NotFoundError,
    "user already exists": AlreadyExistsError,
    "role already exists": AlreadyExistsError,
}

_BY_CODE: dict[str, type[RpcError]] = {
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": InvalidAuthTokenError,
}

# The v3 API layer says "etcdserver: ..."; a few calls (maintenance) pass the auth store's own
# "auth: ..." errors through with code UNKNOWN.
_PREFIXES = ("etcdserver: ", "auth: ")
# How the transports (ours and grpc-go) word a request above the client's own send limit.
_SEND_TOO_LARGE = "trying to send message larger than max"
# How the transport words "no endpoint could be reached" (grpc/connector.py).
CONNECT_FAILURE = "cannot connect to any endpoint"


def error_class(code_name: str, details: str) -> type[RpcError]:
    """The exception class for a gRPC status given by code name and message."""
    message = details
    for prefix in _PREFIXES:
        if details.startswith(prefix):
            message = details[len(prefix) :]
            break
    by_message = _BY_MESSAGE.get(message)
    if by_message is not None:
        return by_message
    if message.startswith(_SEND_TOO_LARGE):
        return RequestTooLargeError
    return _BY_CODE.get(code_name, RpcError)


def from_rpc_error(exc: TransportError) -> EtcdError:
    """The typed ``EtcdError`` for a transport ``grpc.RpcError`` (its ``__cause__`` is set)."""
    details = exc.details or ""
    not_processed = bool(getattr(exc, "not_processed", False))
    cls = error_class(exc.code.name, details)
    if cls is UnavailableError and not_processed and details.startswith(CONNECT_FAILURE):
        cls = ConnectionFailedError
    error = cls(exc.code, details, not_processed=not_processed)
    error.__cause__ = exc
    return error
