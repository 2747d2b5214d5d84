"""The error an etcd call ends with after the client's retries: typed, and saying what the
caller needs to know to act on it (whether a write may have been applied, what the first
attempt met when a later one failed differently)."""

from __future__ import annotations

from puregrpc_etcd.errors import EtcdError, NoLeaderError, from_rpc_error
from puregrpc_etcd.errors import RpcError as RpcErrorType
from puregrpc_etcd.grpc.status import RpcError, StatusCode

__all__ = ["final_error"]

_UNAVAILABLE = StatusCode.UNAVAILABLE


def final_error(error: RpcError, first_error: RpcError, method: str, repeatable: bool) -> EtcdError:
    """The typed error a call ends with (its class chosen from what the server said). A write
    cut off by a failure that may have come after the member received it says that it may
    have been applied (``not_processed`` False: the client never repeats it); a failure after
    retries also says what the first attempt met."""
    typed = from_rpc_error(error)
    if error.code != _UNAVAILABLE:
        return typed
    details = error.details
    if first_error is not error and first_error.details != details:
        details = f"{details} (after: {first_error.details})"
    if not (repeatable or error.not_processed or isinstance(typed, NoLeaderError)):
        # "no leader" is refused before any proposal: that write was not applied.
        details = f"{details}; the {method.rpartition('/')[2]} may have been applied"
    if isinstance(typed, RpcErrorType):
        typed.details = details
        typed.args = (typed.code, details)
    return typed
