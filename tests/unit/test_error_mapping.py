"""The mapping from gRPC statuses to the typed errors, by etcd's message and by code."""

from __future__ import annotations

import pickle

import pytest

from puregrpc_etcd import errors
from puregrpc_etcd.grpc.status import RpcError as TransportError
from puregrpc_etcd.grpc.status import StatusCode

# (code, message exactly as etcd 3.5 sends it, expected class)
ETCD_ERRORS = [
    (StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large", errors.RequestTooLargeError),
    (
        StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
        errors.CompactedError,
    ),
    (
        StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
        errors.FutureRevisionError,
    ),
    (
        StatusCode.RESOURCE_EXHAUSTED,
        "etcdserver: mvcc: database space exceeded",
        errors.NoSpaceError,
    ),
    (StatusCode.NOT_FOUND, "etcdserver: requested lease not found", errors.LeaseNotFoundError),
    (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
        errors.TooManyOpsError,
    ),
    (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
        errors.DuplicateKeyError,
    ),
    (StatusCode.UNAVAILABLE, "etcdserver: no leader", errors.NoLeaderError),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: not leader", errors.NotLeaderError),
    (StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", errors.PermissionDeniedError),
    (StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token", errors.InvalidAuthTokenError),
    (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
        errors.AuthFailedError,
    ),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: authentication is not enabled",
        errors.AuthNotEnabledError,
    ),
    # Auth is enabled and the call carried no token (no user given).
    (StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty", errors.AuthFailedError),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: key not found", errors.NotFoundError),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: user name not found", errors.NotFoundError),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: role name not found", errors.NotFoundError),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: role is not granted to the user",
        errors.NotFoundError,
    ),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: permission is not granted to the role",
        errors.NotFoundError,
    ),
    (StatusCode.NOT_FOUND, "etcdserver: member not found", errors.NotFoundError),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists", errors.AlreadyExistsError),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: user name already exists",
        errors.AlreadyExistsError,
    ),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: role name already exists",
        errors.AlreadyExistsError,
    ),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: member ID already exist",
        errors.AlreadyExistsError,
    ),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: Peer URLs already exists",
        errors.AlreadyExistsError,
    ),
]


@pytest.mark.parametrize(("code", "message", "expected"), ETCD_ERRORS)
def test_etcd_messages_map_to_their_classes(
    code: StatusCode, message: str, expected: type[errors.RpcError]
) -> None:
    error = errors.from_rpc_error(TransportError(code, message))
    assert type(error) is expected
    assert isinstance(error, errors.RpcError)
    assert isinstance(error, errors.EtcdError)
    assert error.code is code
    assert error.details == message
    assert message in str(error)


def test_messages_without_the_server_prefix_map_too() -> None:
    error = errors.from_rpc_error(
        TransportError(StatusCode.OUT_OF_RANGE, "mvcc: required revision has been compacted")
    )
    assert type(error) is errors.CompactedError
    assert error.compact_revision == 0


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (StatusCode.UNAVAILABLE, errors.UnavailableError),
        (StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
        (StatusCode.PERMISSION_DENIED, errors.PermissionDeniedError),
        (StatusCode.UNAUTHENTICATED, errors.InvalidAuthTokenError),
        (StatusCode.INTERNAL, errors.RpcError),
        (StatusCode.OUT_OF_RANGE, errors.RpcError),
    ],
)
def test_unknown_messages_map_by_code(code: StatusCode, expected: type[errors.RpcError]) -> None:
    error = errors.from_rpc_error(TransportError(code, "something else"))
    assert type(error) is expected


def test_the_cause_and_not_processed_flag_are_kept() -> None:
    cause = TransportError(StatusCode.UNAVAILABLE, "connection reset", not_processed=True)
    error = errors.from_rpc_error(cause)
    assert isinstance(error, errors.UnavailableError)
    assert error.__cause__ is cause
    assert error.not_processed is True


def test_a_missing_lease_is_a_missing_thing() -> None:
    assert issubclass(errors.LeaseNotFoundError, errors.NotFoundError)
    assert issubclass(errors.NotFoundError, errors.RpcError)
    assert issubclass(errors.AlreadyExistsError, errors.RpcError)


def test_unavailable_subclasses_are_unavailable() -> None:
    assert issubclass(errors.ConnectionFailedError, errors.UnavailableError)
    assert issubclass(errors.NoLeaderError, errors.UnavailableError)
    assert not issubclass(errors.LockLostError, errors.RpcError)
    assert issubclass(errors.LockLostError, errors.EtcdError)


def test_compacted_error_carries_the_compact_revision() -> None:
    error = errors.CompactedError(StatusCode.OUT_OF_RANGE, "compacted", compact_revision=42)
    assert error.compact_revision == 42


def test_lease_expired_error_names_the_lease_in_hex() -> None:
    error = errors.LeaseExpiredError(0x694D7E2A1B3C)
    assert error.lease_id == 0x694D7E2A1B3C
    assert "694d7e2a1b3c" in str(error)


def test_errors_pickle() -> None:
    error = errors.from_rpc_error(TransportError(StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.NoLeaderError
    assert copy.details == "etcdserver: no leader"


def test_no_reachable_endpoint_is_a_connection_failure() -> None:
    error = errors.from_rpc_error(
        TransportError(
            StatusCode.UNAVAILABLE,
            "cannot connect to any endpoint: 127.0.0.1:1: connection refused",
            not_processed=True,
        )
    )
    assert type(error) is errors.ConnectionFailedError


def test_a_request_above_the_send_limit_is_too_large() -> None:
    error = errors.from_rpc_error(
        TransportError(
            StatusCode.RESOURCE_EXHAUSTED,
            "trying to send message larger than max (3145738 vs. 2097152)",
        )
    )
    assert type(error) is errors.RequestTooLargeError


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("auth: permission denied", errors.PermissionDeniedError),
        ("auth: invalid auth token", errors.InvalidAuthTokenError),
        ("auth: authentication failed, invalid user ID or password", errors.AuthFailedError),
        ("auth: user not found", errors.NotFoundError),
        ("auth: role not found", errors.NotFoundError),
        ("auth: user already exists", errors.AlreadyExistsError),
        ("auth: role already exists", errors.AlreadyExistsError),
    ],
)
def test_the_auth_stores_own_messages_map_too(
    message: str, expected: type[errors.RpcError]
) -> None:
    # The maintenance service passes these through unconverted, with code UNKNOWN.
    error = errors.from_rpc_error(TransportError(StatusCode.UNKNOWN, message))
    assert type(error) is expected
