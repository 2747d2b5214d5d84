"""KV requests built from keyword options, and KV replies turned into result types.

Shared by the KV calls (``kv.py``) and the transaction builders (``txn.py``). Every check on the
caller's input happens here, before any I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from puregrpc_etcd._keys import to_bytes
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.types import (
    DeleteResponse,
    GetResponse,
    KeyValues,
    OpResponse,
    PutResponse,
    TxnResponse,
    key_value,
    response_header,
)

if TYPE_CHECKING:
    from puregrpc_etcd._keys import KeySpace
    from puregrpc_etcd.txn import Compare, Op

_RangeRequest = rpc_pb2.RangeRequest
_PutRequest = rpc_pb2.PutRequest

SORT_ORDERS = {"none": 0, "ascend": 1, "descend": 2}
SORT_TARGETS = {"key": 0, "version": 1, "create": 2, "mod": 3, "value": 4}


def check_int(value: object, name: str) -> int:
    """A non-negative integer option; bools and floats are refused."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    if value is True or value is False:
        return value
    raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


def range_request(
    keys: KeySpace,
    key: object,
    *,
    prefix: bool = False,
    from_key: bool = False,
    range_end: object = None,
    limit: int = 0,
    revision: int = 0,
    sort_order: str = "none",
    sort_target: str = "key",
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> rpc_pb2.RangeRequest:
    """The RangeRequest of ``get()`` (its options are ``KVMixin.get``'s)."""
    if prefix or from_key or range_end is not None:
        start, end = keys.range(key, prefix=prefix, from_key=from_key, range_end=range_end)
        request = _RangeRequest(key=start, range_end=end)
    else:
        request = _RangeRequest(key=keys.key(key))
    if limit:
        request.limit = check_int(limit, "limit")
    if revision:
        request.revision = check_int(revision, "revision")
    if sort_order != "none" or sort_target != "key":
        _set_sort(request, sort_order, sort_target)
    if serializable:
        request.serializable = check_bool(serializable, "serializable")
    if keys_only:
        request.keys_only = check_bool(keys_only, "keys_only")
    if count_only:
        request.count_only = check_bool(count_only, "count_only")
    if min_mod_revision:
        request.min_mod_revision = check_int(min_mod_revision, "min_mod_revision")
    if max_mod_revision:
        request.max_mod_revision = check_int(max_mod_revision, "max_mod_revision")
    if min_create_revision:
        request.min_create_revision = check_int(min_create_revision, "min_create_revision")
    if max_create_revision:
        request.max_create_revision = check_int(max_create_revision, "max_create_revision")
    return request


def _set_sort(request: rpc_pb2.RangeRequest, sort_order: object, sort_target: object) -> None:
    order = SORT_ORDERS.get(sort_order) if isinstance(sort_order, str) else None
    if order is None:
        raise ValueError(f"sort_order must be one of {sorted(SORT_ORDERS)}, not {sort_order!r}")
    target = SORT_TARGETS.get(sort_target) if isinstance(sort_target, str) else None
    if target is None:
        raise ValueError(f"sort_target must be one of {sorted(SORT_TARGETS)}, not {sort_target!r}")
    if target == 0 and order == 1:
        # As Go's clientv3.WithSort: the server's natural order is ascending by key, and an
        # order other than NONE would make it read the whole range before applying the limit.
        order = 0
    # Any other order is sent as given, NONE with another target included (as Go and etcdctl
    # send it): etcd then applies the limit (+1, for ``more``) in key order BEFORE it sorts
    # ascending by the target, so the answer is not the range's first keys by that target.
    request.sort_order = order  # type: ignore[assignment]
    request.sort_target = target  # type: ignore[assignment]


def put_request(
    keys: KeySpace,
    key: object,
    value: object,
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> rpc_pb2.PutRequest:
    """The PutRequest of ``put()``; ``value`` may be None only with ``ignore_value``."""
    key_bytes = keys.key(key)
    if ignore_value:
        check_bool(ignore_value, "ignore_value")
        if value is not None and to_bytes(value, "value"):
            raise ValueError("ignore_value=True keeps the current value: pass value=None")
        request = _PutRequest(key=key_bytes, ignore_value=True)
    elif type(value) is bytes:
        request = _PutRequest(key=key_bytes, value=value)
    else:
        request = _PutRequest(key=key_bytes, value=to_bytes(value, "value"))
    if ignore_lease:
        check_bool(ignore_lease, "ignore_lease")
        if lease:
            raise ValueError("ignore_lease=True keeps the current lease: do not pass lease=")
        request.ignore_lease = True
    elif lease:
        request.lease = check_int(lease, "lease")
    if prev_kv:
        request.prev_kv = check_bool(prev_kv, "prev_kv")
    return request


def delete_request(
    keys: KeySpace,
    key: object,
    *,
    prefix: bool = False,
    from_key: bool = False,
    range_end: object = None,
    prev_kv: bool = False,
) -> rpc_pb2.DeleteRangeRequest:
    """The DeleteRangeRequest of ``delete()``."""
    start, end = keys.range(key, prefix=prefix, from_key=from_key, range_end=range_end)
    request = rpc_pb2.DeleteRangeRequest(key=start, range_end=end)
    if prev_kv:
        request.prev_kv = check_bool(prev_kv, "prev_kv")
    return request


def txn_request(
    keys: KeySpace,
    compare: Iterable[Compare],
    success: Iterable[Op],
    failure: Iterable[Op],
) -> rpc_pb2.TxnRequest:
    """The TxnRequest of ``txn()``; ``Compare`` and ``Op`` objects were checked when built."""
    from puregrpc_etcd.txn import Compare, Op

    request = rpc_pb2.TxnRequest()
    for item in _sequence(compare, "compare"):
        if not isinstance(item, Compare):
            raise TypeError(f"compare items must be Compare, not {type(item).__name__}")
        request.compare.append(item._to_pb(keys))
    for ops, branch, name in (
        (success, request.success, "success"),
        (failure, request.failure, "failure"),
    ):
        for op in _sequence(ops, name):
            if not isinstance(op, Op):
                raise TypeError(f"{name} items must be Op, not {type(op).__name__}")
            branch.append(op._to_pb(keys))
    return request


def _sequence(items: object, name: str) -> list[object]:
    if isinstance(items, (str, bytes, bytearray, memoryview)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a list or tuple, not {type(items).__name__}")
    return list(items)


# Replies.


def get_response(pb: rpc_pb2.RangeResponse, namespace: bytes) -> GetResponse:
    return GetResponse(response_header(pb.header), KeyValues(pb.kvs, namespace), pb.more, pb.count)


def put_response(pb: rpc_pb2.PutResponse, namespace: bytes) -> PutResponse:
    prev = key_value(pb.prev_kv, namespace) if pb.HasField("prev_kv") else None
    return PutResponse(response_header(pb.header), prev)


def delete_response(pb: rpc_pb2.DeleteRangeResponse, namespace: bytes) -> DeleteResponse:
    return DeleteResponse(response_header(pb.header), pb.deleted, KeyValues(pb.prev_kvs, namespace))


def txn_response(pb: rpc_pb2.TxnResponse, namespace: bytes) -> TxnResponse:
    responses: list[OpResponse] = []
    for op in pb.responses:
        kind = op.WhichOneof("response")
        if kind == "response_range":
            responses.append(get_response(op.response_range, namespace))
        elif kind == "response_put":
            responses.append(put_response(op.response_put, namespace))
        elif kind == "response_delete_range":
            responses.append(delete_response(op.response_delete_range, namespace))
        elif kind == "response_txn":
            responses.append(txn_response(op.response_txn, namespace))
    return TxnResponse(response_header(pb.header), pb.succeeded, responses)
