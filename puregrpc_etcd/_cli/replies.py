"""How KV replies print, in etcdctl's simple and json forms (get, put, del, txn, watch).

The txn and watch printers reuse the get, put and del ones, as etcdctl's do; ``current_header``
gives the replies whose library form drops the header one for their json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from puregrpc_etcd._cli.formats import JsonObject, header_json, kv_json, kvs_json, omit_empty
from puregrpc_etcd.types import DeleteResponse, GetResponse, PutResponse, TxnResponse

if TYPE_CHECKING:
    from puregrpc_etcd._cli.formats import Output
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.types import ResponseHeader
    from puregrpc_etcd.watch import Event


async def current_header(client: Client) -> ResponseHeader:
    """The cluster and member ids, revision and term now, for replies whose library form drops
    the header (lease list, members, auth and alarm replies)."""
    return (await client.get(b"\x00", count_only=True)).header


def get_json(reply: GetResponse) -> JsonObject:
    return omit_empty(
        [
            ("header", header_json(reply.header)),
            ("kvs", kvs_json(reply.kvs)),
            ("more", reply.more),
            ("count", reply.count),
        ]
    )


def put_json(reply: PutResponse) -> JsonObject:
    prev = kv_json(reply.prev_kv) if reply.prev_kv is not None else None
    return omit_empty([("header", header_json(reply.header)), ("prev_kv", prev)])


def delete_json(reply: DeleteResponse) -> JsonObject:
    return omit_empty(
        [
            ("header", header_json(reply.header)),
            ("deleted", reply.deleted),
            ("prev_kvs", kvs_json(reply.prev_kvs)),
        ]
    )


def txn_json(reply: TxnResponse) -> JsonObject:
    responses = [{"Response": _op_reply_json(item)} for item in reply.responses]
    return omit_empty(
        [
            ("header", header_json(reply.header)),
            ("succeeded", reply.succeeded),
            ("responses", responses or None),
        ]
    )


def _op_reply_json(item: object) -> JsonObject:
    # The names are those of the oneof in etcdserverpb.ResponseOp.
    if isinstance(item, TxnResponse):
        return {"response_txn": txn_json(item)}
    if isinstance(item, GetResponse):
        return {"response_range": get_json(item)}
    if isinstance(item, PutResponse):
        return {"response_put": put_json(item)}
    if isinstance(item, DeleteResponse):
        return {"response_delete_range": delete_json(item)}
    raise TypeError(f"unexpected txn reply {item!r}")


def print_get(out: Output, reply: GetResponse, *, value_only: bool = False) -> None:
    for kv in reply.kvs:
        out.kv(kv, value_only=value_only)


def print_put(out: Output, reply: PutResponse) -> None:
    out.line("OK")
    if reply.prev_kv is not None:
        out.kv(reply.prev_kv)


def print_delete(out: Output, reply: DeleteResponse) -> None:
    out.line(str(reply.deleted))
    for kv in reply.prev_kvs:
        out.kv(kv)


def print_txn(out: Output, reply: TxnResponse) -> None:
    out.line("SUCCESS" if reply.succeeded else "FAILURE")
    for item in reply.responses:
        out.line()
        if isinstance(item, GetResponse):
            print_get(out, item)
        elif isinstance(item, PutResponse):
            print_put(out, item)
        elif isinstance(item, DeleteResponse):
            print_delete(out, item)
        else:
            out.line(f"unexpected response {item!r}")


def print_events(out: Output, events: Sequence[Event]) -> None:
    for event in events:
        out.line("DELETE" if event.type == "delete" else "PUT")
        if event.prev_kv is not None:
            out.kv(event.prev_kv)
        out.kv(event.kv)


def events_json(header: ResponseHeader, events: Sequence[Event]) -> JsonObject:
    """A watch reply as etcdctl prints it: Go's field names, since clientv3's WatchResponse
    has no json tags."""
    encoded = [
        omit_empty(
            [
                ("type", 1 if event.type == "delete" else 0),
                ("kv", kv_json(event.kv)),
                ("prev_kv", kv_json(event.prev_kv) if event.prev_kv is not None else None),
            ]
        )
        for event in events
    ]
    return {
        "Header": header_json(header),
        "Events": encoded,
        "CompactRevision": 0,
        "Canceled": False,
        "Created": False,
    }
