"""gRPC status codes, the RpcError exception, and the tables that turn HTTP/2 outcomes
(an HTTP :status, an RST_STREAM error code) into gRPC statuses (doc/statuscodes.md,
doc/PROTOCOL-HTTP2.md)."""

from __future__ import annotations

import enum
from typing import Sequence, Tuple, Union

from h2.errors import ErrorCodes

from .metadata import decode_grpc_message

__all__ = [
    "RpcError",
    "StatusCode",
    "scan_response_headers",
    "status_from_http_status",
    "status_from_reset",
    "status_from_response",
    "status_from_trailers",
    "status_from_wire",
]

MetadataValue = Union[str, bytes]
MetadataPairs = Tuple[Tuple[str, MetadataValue], ...]


class StatusCode(enum.IntEnum):
    """The 17 gRPC status codes, by their gRPC names and wire numbers."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


_CODE_BY_NUMBER = {code.value: code for code in StatusCode}


class RpcError(Exception):
    """A call ended with a status other than OK.

    ``not_processed`` is True only when the request provably never reached the server
    application (no connection, REFUSED_STREAM, or a stream above a GOAWAY's last stream id),
    so that even a non-idempotent request may be sent again.
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        *,
        trailing_metadata: Sequence[tuple[str, MetadataValue]] = (),
        initial_metadata: Sequence[tuple[str, MetadataValue]] = (),
        not_processed: bool = False,
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing_metadata: MetadataPairs = tuple(trailing_metadata)
        self.initial_metadata: MetadataPairs = tuple(initial_metadata)
        self.not_processed = not_processed

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __repr__(self) -> str:
        flag = ", not_processed=True" if self.not_processed else ""
        return f"RpcError({self.code.name}, {self.details!r}{flag})"

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_error,
            (
                self.code,
                self.details,
                self.trailing_metadata,
                self.initial_metadata,
                self.not_processed,
            ),
        )


def _rebuild_error(
    code: StatusCode,
    details: str,
    trailing_metadata: MetadataPairs,
    initial_metadata: MetadataPairs,
    not_processed: bool,
) -> RpcError:
    return RpcError(
        code,
        details,
        trailing_metadata=trailing_metadata,
        initial_metadata=initial_metadata,
        not_processed=not_processed,
    )


def status_from_wire(value: bytes | str) -> StatusCode:
    """The code of a ``grpc-status`` header; numbers gRPC does not define are UNKNOWN."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not text.isdigit():
        return StatusCode.UNKNOWN
    return _CODE_BY_NUMBER.get(int(text), StatusCode.UNKNOWN)


# What a broken deployment's non-200 response most likely means (doc/http-grpc-status-mapping.md).
_CODE_BY_HTTP_STATUS = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def status_from_http_status(http_status: int) -> StatusCode:
    """The code to report for a response whose HTTP status is not 200."""
    return _CODE_BY_HTTP_STATUS.get(http_status, StatusCode.UNKNOWN)


# HTTP/2 error codes (RFC 9113 section 7), h2's enum as plain ints.
NO_ERROR = int(ErrorCodes.NO_ERROR)
REFUSED_STREAM = int(ErrorCodes.REFUSED_STREAM)
CANCEL = int(ErrorCodes.CANCEL)
ENHANCE_YOUR_CALM = int(ErrorCodes.ENHANCE_YOUR_CALM)
INADEQUATE_SECURITY = int(ErrorCodes.INADEQUATE_SECURITY)

_CODE_BY_RESET = {
    REFUSED_STREAM: StatusCode.UNAVAILABLE,
    CANCEL: StatusCode.CANCELLED,
    ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def status_from_reset(error_code: int) -> tuple[StatusCode, bool]:
    """The code for a stream the server reset before sending a status, and whether the
    request provably was not processed (only REFUSED_STREAM says so). NO_ERROR and every
    other code are INTERNAL, as PROTOCOL-HTTP2.md's table says."""
    return _CODE_BY_RESET.get(error_code, StatusCode.INTERNAL), error_code == REFUSED_STREAM


def scan_response_headers(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """:status, content-type, grpc-status and grpc-message of a header block (None if absent)."""
    http_status = content_type = grpc_status = grpc_message = None
    for name, value in headers:
        if name == b"grpc-status":
            grpc_status = value
        elif name == b"grpc-message":
            grpc_message = value
        elif name == b":status":
            http_status = value
        elif name == b"content-type":
            content_type = value
    return http_status, content_type, grpc_status, grpc_message


def status_from_response(
    http_status: bytes | None, content_type: bytes | None
) -> tuple[StatusCode, str] | None:
    """None for a gRPC response (200, application/grpc*); else the status to synthesize
    for what a broken deployment or a non-gRPC server sent."""
    if http_status == b"200" and (content_type or b"").startswith(b"application/grpc"):
        return None
    if http_status is None or not http_status.isdigit():
        return StatusCode.INTERNAL, "response without a valid HTTP :status"
    if http_status != b"200":
        return (
            status_from_http_status(int(http_status)),
            f"unexpected HTTP status {int(http_status)} from server",
        )
    return StatusCode.UNKNOWN, f"unexpected content-type {content_type!r} from server"


def status_from_trailers(
    grpc_status: bytes | None, grpc_message: bytes | None
) -> tuple[StatusCode, str]:
    """The call's status from its trailers' grpc-status and grpc-message."""
    if grpc_status is None:
        return StatusCode.INTERNAL, "server sent trailers without grpc-status"
    details = decode_grpc_message(grpc_message) if grpc_message else ""
    return status_from_wire(grpc_status), details
