"""python-etcd3's result shapes, made from the library's typed results.

Where python-etcd3 returns protobuf messages (``RangeResponse``, ``PutResponse``,
``DeleteRangeResponse``, ``ResponseOp``, ``LeaseTimeToLiveResponse``, ...) these functions build
the same messages from what the library returns; ``KVMetadata``, ``Status``, ``Alarm`` and
``Transactions`` are its small classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from puregrpc_etcd._proto import kv_pb2, rpc_pb2
from puregrpc_etcd.types import (
    DeleteResponse,
    GetResponse,
    KeyValue,
    PutResponse,
    ResponseHeader,
    TxnResponse,
)

from . import transactions

if TYPE_CHECKING:
    from puregrpc_etcd.watch import Event

    from .members import Member

__all__ = [
    "Alarm",
    "KVMetadata",
    "Status",
    "Transactions",
    "delete_pb",
    "event_pb",
    "header_pb",
    "kv_pb",
    "put_pb",
    "range_pb",
    "txn_responses",
]


class Transactions:
    """``client.transactions``: the builders of ``etcd3.transactions`` by python-etcd3's names."""

    def __init__(self) -> None:
        self.value = transactions.Value
        self.version = transactions.Version
        self.create = transactions.Create
        self.mod = transactions.Mod

        self.put = transactions.Put
        self.get = transactions.Get
        self.delete = transactions.Delete
        self.txn = transactions.Txn


class KVMetadata:
    """What python-etcd3 gives with a value: ``key``, ``create_revision``, ``mod_revision``,
    ``version``, ``lease_id`` and the reply's ``response_header`` (a protobuf message)."""

    __slots__ = (
        "_header",
        "_header_pb",
        "create_revision",
        "key",
        "lease_id",
        "mod_revision",
        "version",
    )

    def __init__(self, keyvalue: Any, header: Any) -> None:
        self.key: bytes = keyvalue.key
        self.create_revision: int = keyvalue.create_revision
        self.mod_revision: int = keyvalue.mod_revision
        self.version: int = keyvalue.version
        self.lease_id: int = keyvalue.lease
        self._header = header
        self._header_pb: Optional[rpc_pb2.ResponseHeader] = None

    @property
    def response_header(self) -> rpc_pb2.ResponseHeader:
        # Made on first use: most callers read the value and never the header.
        if self._header_pb is None:
            header = self._header
            if not isinstance(header, rpc_pb2.ResponseHeader):
                header = header_pb(header)
            self._header_pb = header
        return self._header_pb

    def __repr__(self) -> str:
        return (
            f"KVMetadata(key={self.key!r}, create_revision={self.create_revision}, "
            f"mod_revision={self.mod_revision}, version={self.version}, "
            f"lease_id={self.lease_id})"
        )


class Status:
    """``client.status()``: ``version``, ``db_size``, ``leader`` (a ``Member`` or None),
    ``raft_index``, ``raft_term``."""

    def __init__(
        self,
        version: str,
        db_size: int,
        leader: Optional[Member],
        raft_index: int,
        raft_term: int,
    ) -> None:
        self.version = version
        self.db_size = db_size
        self.leader = leader
        self.raft_index = raft_index
        self.raft_term = raft_term


class Alarm:
    """An alarm: ``alarm_type`` (``etcdrpc.NOSPACE``, ``etcdrpc.CORRUPT``) and ``member_id``."""

    def __init__(self, alarm_type: int, member_id: int) -> None:
        self.alarm_type = alarm_type
        self.member_id = member_id

    def __repr__(self) -> str:
        return f"Alarm(alarm_type={self.alarm_type}, member_id={self.member_id})"


def header_pb(header: ResponseHeader) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(
        cluster_id=header.cluster_id,
        member_id=header.member_id,
        revision=header.revision,
        raft_term=header.raft_term,
    )


def kv_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )


def range_pb(reply: GetResponse) -> rpc_pb2.RangeResponse:
    return rpc_pb2.RangeResponse(
        header=header_pb(reply.header),
        kvs=[kv_pb(kv) for kv in reply.kvs],
        more=reply.more,
        count=reply.count,
    )


def put_pb(reply: PutResponse) -> rpc_pb2.PutResponse:
    message = rpc_pb2.PutResponse(header=header_pb(reply.header))
    if reply.prev_kv is not None:
        message.prev_kv.CopyFrom(kv_pb(reply.prev_kv))
    return message


def delete_pb(reply: DeleteResponse) -> rpc_pb2.DeleteRangeResponse:
    return rpc_pb2.DeleteRangeResponse(
        header=header_pb(reply.header),
        deleted=reply.deleted,
        prev_kvs=[kv_pb(kv) for kv in reply.prev_kvs],
    )


def txn_pb(reply: TxnResponse) -> rpc_pb2.TxnResponse:
    return rpc_pb2.TxnResponse(
        header=header_pb(reply.header),
        succeeded=reply.succeeded,
        responses=[_response_op(r) for r in reply.responses],
    )


def _response_op(reply: Any) -> rpc_pb2.ResponseOp:
    if isinstance(reply, GetResponse):
        return rpc_pb2.ResponseOp(response_range=range_pb(reply))
    if isinstance(reply, PutResponse):
        return rpc_pb2.ResponseOp(response_put=put_pb(reply))
    if isinstance(reply, DeleteResponse):
        return rpc_pb2.ResponseOp(response_delete_range=delete_pb(reply))
    return rpc_pb2.ResponseOp(response_txn=txn_pb(reply))


def txn_responses(reply: TxnResponse) -> list[Any]:
    """python-etcd3's second item of ``transaction()``: for a get, a list of ``(value,
    KVMetadata)``; for the others, the protobuf ``ResponseOp``."""
    responses: list[Any] = []
    for response in reply.responses:
        if isinstance(response, GetResponse):
            responses.append([(kv.value, KVMetadata(kv, reply.header)) for kv in response.kvs])
        else:
            responses.append(_response_op(response))
    return responses


def event_pb(event: Event) -> kv_pb2.Event:
    message = kv_pb2.Event(
        type=kv_pb2.Event.DELETE if event.type == "delete" else kv_pb2.Event.PUT,
        kv=kv_pb(event.kv),
    )
    if event.prev_kv is not None:
        message.prev_kv.CopyFrom(kv_pb(event.prev_kv))
    return message
