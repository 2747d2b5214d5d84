"""python-etcd3's exception names, and the mapping from this library's errors to them.

python-etcd3 turns four gRPC status codes into its own exceptions and lets every other
``grpc.RpcError`` through. Here the same four codes give the same exceptions (chained to the
library's error, which says more), and every other failure comes as the library's own typed
error (``puregrpc_etcd.RpcError`` and its subclasses: ``.code`` and ``.details``), which is what
python-etcd3 would have let through as ``grpc.RpcError``.
"""

from __future__ import annotations

from puregrpc_etcd import errors
from puregrpc_etcd.grpc import StatusCode

__all__ = [
    "ConnectionFailedError",
    "ConnectionTimeoutError",
    "Etcd3Exception",
    "InternalServerError",
    "NoServerAvailableError",
    "PreconditionFailedError",
    "RevisionCompactedError",
    "WatchTimedOut",
    "translate",
]


class Etcd3Exception(Exception):
    """Base class of python-etcd3's exceptions."""


class WatchTimedOut(Etcd3Exception):
    """A watch was not created, or ``watch_once`` saw no event, within the timeout."""


class InternalServerError(Etcd3Exception):
    """The server failed with ``INTERNAL``."""


class ConnectionFailedError(Etcd3Exception):
    """No member could serve the call (``UNAVAILABLE``)."""

    def __str__(self) -> str:
        return "etcd connection failed"


class ConnectionTimeoutError(Etcd3Exception):
    """The call's deadline passed (``DEADLINE_EXCEEDED``)."""

    def __str__(self) -> str:
        return "etcd connection timeout"


class PreconditionFailedError(Etcd3Exception):
    """The server refused the call with ``FAILED_PRECONDITION``."""


class RevisionCompactedError(Etcd3Exception):
    """A watch asked for history that was compacted; ``compacted_revision`` is the oldest
    revision still available."""

    def __init__(self, compacted_revision: int) -> None:
        self.compacted_revision = compacted_revision
        super().__init__()


class NoServerAvailableError(Etcd3Exception):
    """No endpoint could be reached, on a client with ``failover=True`` (without failover:
    ``ConnectionFailedError``)."""


_BY_CODE: dict[StatusCode, type[Etcd3Exception]] = {
    StatusCode.INTERNAL: InternalServerError,
    StatusCode.UNAVAILABLE: ConnectionFailedError,
    StatusCode.DEADLINE_EXCEEDED: ConnectionTimeoutError,
    StatusCode.FAILED_PRECONDITION: PreconditionFailedError,
}


def translate(error: BaseException) -> BaseException:
    """What python-etcd3 raises for the library's ``error``: one of its exceptions for the
    four codes it maps (the cause chained), else the error itself."""
    if isinstance(error, errors.CompactedError) and error.compact_revision:
        return RevisionCompactedError(error.compact_revision)
    if isinstance(error, errors.RpcError):
        mapped = _BY_CODE.get(error.code)
        if mapped is not None:
            exc = mapped()
            exc.__cause__ = error
            return exc
    return error
