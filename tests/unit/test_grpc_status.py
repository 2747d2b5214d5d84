"""Status codes and the HTTP-to-gRPC tables of PROTOCOL-HTTP2.md and statuscodes.md."""

from __future__ import annotations

import pickle

import pytest

from puregrpc_etcd.grpc import RpcError, StatusCode
from puregrpc_etcd.grpc.status import (
    status_from_http_status,
    status_from_reset,
    status_from_wire,
)


def test_seventeen_codes_with_their_wire_numbers() -> None:
    assert len(StatusCode) == 17
    assert StatusCode.OK == 0
    assert StatusCode.DEADLINE_EXCEEDED == 4
    assert StatusCode.UNAVAILABLE == 14
    assert StatusCode.UNAUTHENTICATED == 16


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"0", StatusCode.OK),
        (b"14", StatusCode.UNAVAILABLE),
        ("16", StatusCode.UNAUTHENTICATED),
        (b"17", StatusCode.UNKNOWN),
        (b"99", StatusCode.UNKNOWN),
        (b"", StatusCode.UNKNOWN),
        (b"-1", StatusCode.UNKNOWN),
        (b"x", StatusCode.UNKNOWN),
    ],
)
def test_grpc_status_header(wire: bytes | str, code: StatusCode) -> None:
    assert status_from_wire(wire) is code


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (400, StatusCode.INTERNAL),
        (401, StatusCode.UNAUTHENTICATED),
        (403, StatusCode.PERMISSION_DENIED),
        (404, StatusCode.UNIMPLEMENTED),
        (429, StatusCode.UNAVAILABLE),
        (502, StatusCode.UNAVAILABLE),
        (503, StatusCode.UNAVAILABLE),
        (504, StatusCode.UNAVAILABLE),
        (500, StatusCode.UNKNOWN),
        (302, StatusCode.UNKNOWN),
        (200, StatusCode.UNKNOWN),
    ],
)
def test_http_status_table(http_status: int, code: StatusCode) -> None:
    assert status_from_http_status(http_status) is code


@pytest.mark.parametrize(
    ("error_code", "code", "not_processed"),
    [
        (0x0, StatusCode.INTERNAL, False),
        (0x1, StatusCode.INTERNAL, False),
        (0x2, StatusCode.INTERNAL, False),
        (0x3, StatusCode.INTERNAL, False),
        (0x7, StatusCode.UNAVAILABLE, True),
        (0x8, StatusCode.CANCELLED, False),
        (0xB, StatusCode.RESOURCE_EXHAUSTED, False),
        (0xC, StatusCode.PERMISSION_DENIED, False),
        (0x99, StatusCode.INTERNAL, False),
    ],
)
def test_reset_table(error_code: int, code: StatusCode, not_processed: bool) -> None:
    assert status_from_reset(error_code) == (code, not_processed)


def test_rpc_error_carries_its_parts_and_survives_pickling() -> None:
    error = RpcError(
        StatusCode.NOT_FOUND, "gone", trailing_metadata=[("k", "v")], not_processed=True
    )
    assert str(error) == "NOT_FOUND: gone"
    assert "not_processed=True" in repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.details, copy.trailing_metadata, copy.not_processed) == (
        StatusCode.NOT_FOUND,
        "gone",
        (("k", "v"),),
        True,
    )
