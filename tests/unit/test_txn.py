"""Txn builders and KV request building: protobuf output and input checks, no network."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import pytest

from puregrpc_etcd import _kv_requests
from puregrpc_etcd._keys import ROOT, KeySpace
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.kv import KVMixin
from puregrpc_etcd.txn import Compare, Op

PLAIN = ROOT
NAMESPACED = KeySpace(b"app/")
C = rpc_pb2.Compare


@pytest.mark.parametrize(
    ("compare", "target", "result", "field", "operand"),
    [
        (Compare.value("k") == b"v", C.VALUE, C.EQUAL, "value", b"v"),
        (Compare.value("k") != "v", C.VALUE, C.NOT_EQUAL, "value", b"v"),
        (Compare.version("k") > 3, C.VERSION, C.GREATER, "version", 3),
        (Compare.create_revision("k") == 0, C.CREATE, C.EQUAL, "create_revision", 0),
        (Compare.mod_revision("k") < 9, C.MOD, C.LESS, "mod_revision", 9),
        (Compare.lease("k") == 0x55, C.LEASE, C.EQUAL, "lease", 0x55),
    ],
)
def test_compare_builders(
    compare: Compare, target: int, result: int, field: str, operand: object
) -> None:
    pb = compare._to_pb(PLAIN)
    assert pb.target == target
    assert pb.result == result
    assert pb.key == b"k"
    assert pb.range_end == b""
    assert pb.WhichOneof("target_union") == field
    assert getattr(pb, field) == operand


def test_compare_ranges_and_namespaces() -> None:
    compare = Compare.version("cfg/", prefix=True) > 0
    assert compare._to_pb(PLAIN).range_end == b"cfg0"
    pb = compare._to_pb(NAMESPACED)
    assert (pb.key, pb.range_end) == (b"app/cfg/", b"app/cfg0")
    ranged = Compare.mod_revision("a", range_end="c") < 5
    assert (ranged._to_pb(NAMESPACED).key, ranged._to_pb(NAMESPACED).range_end) == (
        b"app/a",
        b"app/c",
    )
    assert repr(compare) == "Compare.version(b'cfg/', prefix=True) > 0"


def test_compare_rejects_bad_input_at_once() -> None:
    with pytest.raises(TypeError):
        Compare.value(1)
    with pytest.raises(ValueError, match="empty"):
        Compare.value("")
    with pytest.raises(TypeError):
        Compare.version("k") > "3"  # noqa: B015 - the comparison itself must raise
    with pytest.raises(TypeError):
        Compare.value("k") == 3  # noqa: B015
    with pytest.raises(ValueError, match=">= 0"):
        Compare.version("k") > -1  # noqa: B015
    with pytest.raises(TypeError, match="==, !=, < and >"):
        Compare.version("k") >= 1  # noqa: B015
    with pytest.raises(TypeError, match="complete the comparison"):
        bool(Compare.version("k"))
    with pytest.raises(ValueError, match="at most one"):
        Compare.value("k", prefix=True, range_end="z")


def test_ops_build_requests_with_their_options() -> None:
    get = Op.get("k", prefix=True, limit=5, sort_order="descend", keys_only=True)._to_pb(PLAIN)
    assert get.WhichOneof("request") == "request_range"
    assert get.request_range.range_end == b"l"
    assert get.request_range.limit == 5
    assert get.request_range.sort_order == rpc_pb2.RangeRequest.DESCEND
    assert get.request_range.keys_only
    put = Op.put("k", b"\x00\xff", lease=7, prev_kv=True)._to_pb(NAMESPACED)
    assert (put.request_put.key, put.request_put.value) == (b"app/k", b"\x00\xff")
    assert put.request_put.lease == 7
    assert put.request_put.prev_kv
    delete = Op.delete("d", from_key=True)._to_pb(PLAIN)
    assert delete.request_delete_range.range_end == b"\0"


def test_nested_txn() -> None:
    inner = Op.txn([Compare.value("a") == "1"], [Op.put("b", "2")], [Op.get("c")])
    request = _kv_requests.txn_request(NAMESPACED, [Compare.version("x") > 0], [inner], [])
    nested = request.success[0].request_txn
    assert nested.compare[0].key == b"app/a"
    assert nested.success[0].request_put.key == b"app/b"
    assert nested.failure[0].request_range.key == b"app/c"
    assert repr(inner) == "Op.txn(1 compares, 1/1 ops)"


def test_ops_reject_bad_input_at_once() -> None:
    with pytest.raises(TypeError):
        Op.get(object())
    with pytest.raises(ValueError, match="empty"):
        Op.put("", "v")
    with pytest.raises(TypeError):
        Op.put("k", 5)
    with pytest.raises(TypeError):
        Op.get("k", bogus=True)
    with pytest.raises(TypeError):
        Op.txn([Op.get("k")], [], [])
    with pytest.raises(TypeError):
        _kv_requests.txn_request(PLAIN, [], ["not an op"], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _kv_requests.txn_request(PLAIN, Compare.value("k") == "v", [], [])  # type: ignore[arg-type]


def test_range_request_options() -> None:
    request = _kv_requests.range_request(
        PLAIN,
        "a",
        range_end="b",
        revision=4,
        serializable=True,
        count_only=True,
        min_mod_revision=1,
        max_mod_revision=2,
        min_create_revision=3,
        max_create_revision=4,
    )
    assert (request.key, request.range_end, request.revision) == (b"a", b"b", 4)
    assert request.serializable
    assert request.count_only
    assert (request.min_mod_revision, request.max_mod_revision) == (1, 2)
    assert (request.min_create_revision, request.max_create_revision) == (3, 4)
    # As Go's WithSort: a target alone is sent without an order (etcd then limits before it
    # sorts), and ascending by key, the natural order, is sent as no order at all.
    by_version = _kv_requests.range_request(PLAIN, "a", sort_target="version", limit=3)
    assert by_version.sort_order == rpc_pb2.RangeRequest.NONE
    assert by_version.sort_target == rpc_pb2.RangeRequest.VERSION
    ascending = _kv_requests.range_request(PLAIN, "a", sort_target="create", sort_order="ascend")
    assert ascending.sort_order == rpc_pb2.RangeRequest.ASCEND
    assert ascending.sort_target == rpc_pb2.RangeRequest.CREATE
    by_key = _kv_requests.range_request(PLAIN, "a", sort_order="ascend", limit=3)
    plain = _kv_requests.range_request(PLAIN, "a", limit=3)
    assert by_key.SerializeToString() == plain.SerializeToString()
    by_key_down = _kv_requests.range_request(PLAIN, "a", sort_order="descend")
    assert by_key_down.sort_order == rpc_pb2.RangeRequest.DESCEND
    assert by_key_down.sort_target == rpc_pb2.RangeRequest.KEY
    every = _kv_requests.range_request(NAMESPACED, "", prefix=True)
    assert (every.key, every.range_end) == (b"app/", b"app0")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"limit": -1}, ValueError),
        ({"limit": 1.5}, TypeError),
        ({"limit": True}, TypeError),
        ({"revision": "3"}, TypeError),
        ({"sort_order": "up"}, ValueError),
        ({"sort_target": 1}, ValueError),
        ({"serializable": 1}, TypeError),
        ({"prefix": True, "from_key": True}, ValueError),
    ],
)
def test_range_request_rejects_bad_options(
    options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _kv_requests.range_request(PLAIN, "k", **options)  # type: ignore[arg-type]


def test_put_request_rules() -> None:
    keep = _kv_requests.put_request(PLAIN, "k", None, ignore_value=True, ignore_lease=True)
    assert keep.ignore_value
    assert keep.ignore_lease
    with pytest.raises(ValueError, match="ignore_value"):
        _kv_requests.put_request(PLAIN, "k", "v", ignore_value=True)
    with pytest.raises(ValueError, match="ignore_lease"):
        _kv_requests.put_request(PLAIN, "k", "v", lease=5, ignore_lease=True)
    with pytest.raises(TypeError):
        _kv_requests.put_request(PLAIN, "k", None)
    assert _kv_requests.put_request(PLAIN, "k", bytearray(b"v")).value == b"v"
    assert _kv_requests.put_request(PLAIN, "k", "é").value == "é".encode()


@pytest.mark.parametrize(
    ("call", "builder"),
    [
        (KVMixin.get, _kv_requests.range_request),
        (KVMixin.put, _kv_requests.put_request),
        (KVMixin.delete, _kv_requests.delete_request),
    ],
)
def test_request_builders_take_the_options_of_their_kv_call(
    call: Callable[..., Any], builder: Callable[..., Any]
) -> None:
    # The public signature of a KV call names its options for users and their type checkers;
    # its builder, which also serves Op.get/put/delete(**options), must take the same ones
    # with the same defaults, and a test rather than care keeps the two in step.
    def options(function: Callable[..., Any]) -> list[tuple[str, object]]:
        parameters = inspect.signature(function).parameters.values()
        return [(p.name, p.default) for p in parameters if p.kind is p.KEYWORD_ONLY]

    assert [*options(builder), ("timeout", None)] == options(call)
