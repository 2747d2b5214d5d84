"""The KV calls of a client: get, put, delete, txn, compact, and conveniences built on them.

``scan`` pages through any number of keys at one revision; the others map one to one onto
etcd's KV service (README.md, "Keys and values").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, cast

import trio

from puregrpc_etcd import _fast_kv_codec, _kv_requests
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._client_contract import ClientBase
from puregrpc_etcd._keys import KeyLike
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.errors import CompactedError, EtcdError, RpcError
from puregrpc_etcd.types import (
    CompactResponse,
    DeleteResponse,
    GetResponse,
    KeyValue,
    PutResponse,
    TxnResponse,
    key_value,
    response_header,
)

if TYPE_CHECKING:
    from puregrpc_etcd.txn import Compare, Op

__all__ = ["KVMixin"]

_COMPACT_PROBE_TIMEOUT = 1.0

_RangeRequest = rpc_pb2.RangeRequest
_PutRequest = rpc_pb2.PutRequest
# Pure-Python protobuf (PyPy) spends a tenth of a put's client time on its messages: _fast_kv_codec
# writes the same bytes (and reads the replies: see _rpcs.py).
if _fast_kv_codec.PURE_PYTHON_PROTOBUF:
    _put_request = cast("Callable[[bytes, bytes], rpc_pb2.PutRequest]", _fast_kv_codec.PutRequest)
else:

    def _put_request(key: bytes, value: bytes) -> rpc_pb2.PutRequest:
        return _PutRequest(key=key, value=value)


class KVMixin(ClientBase):
    """Reading and writing keys (etcd's KV service)."""

    async def get(
        self,
        key: KeyLike,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: KeyLike | None = None,
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
        timeout: float | None = None,
    ) -> GetResponse:
        """Read one key, or a range of keys (``prefix``, ``from_key`` or ``range_end``).

        ``revision`` reads the store as it was then; ``serializable`` lets the member answer
        from its local state without a quorum round; the other options filter and sort.

        Sorting is sent as Go's ``WithSort`` sends it (``sort_order="ascend"`` by key, the
        server's natural order, goes out as no order). With ``sort_order`` "ascend" or
        "descend", etcd reads the whole range, sorts it by ``sort_target`` and then keeps
        ``limit`` keys. With ``sort_target`` alone (``sort_order="none"``) etcd sorts ascending
        by the target only what it read in key order up to the limit: ``get(p, prefix=True,
        sort_target="create", limit=3)`` gives the 3 oldest of the first 4 keys (``limit + 1``)
        in key order, not the 3 oldest keys; ``sort_order="ascend"`` gives those. ``etcdctl get
        --sort-by=CREATE --limit 3`` without ``--order`` gives the same as the former.
        """
        request = _kv_requests.range_request(
            self._keyspace,
            key,
            prefix=prefix,
            from_key=from_key,
            range_end=range_end,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        try:
            reply = await self._unary(rpcs.RANGE, request, timeout=timeout)
        except CompactedError as error:
            error.compact_revision = await self._compacted_at(request.key, request.revision)
            raise
        return _kv_requests.get_response(reply, self._keyspace.prefix)

    async def get_value(
        self, key: KeyLike, default: bytes | None = None, *, timeout: float | None = None
    ) -> bytes | None:
        """The value of one key, or ``default`` when it does not exist."""
        request = _RangeRequest(key=self._keyspace.key(key))
        reply = await self._unary(rpcs.RANGE, request, timeout=timeout)
        kvs = reply.kvs
        return kvs[0].value if kvs else default

    async def exists(self, key: KeyLike, *, timeout: float | None = None) -> bool:
        """Whether the key exists."""
        request = _RangeRequest(key=self._keyspace.key(key), count_only=True)
        reply = await self._unary(rpcs.RANGE, request, timeout=timeout)
        return reply.count > 0

    async def get_prefix(
        self, prefix: KeyLike, *, page_size: int = 10_000, timeout: float | None = None
    ) -> dict[bytes, KeyValue]:
        """Every key under ``prefix``, read at one revision (in pages, see ``scan``; larger
        pages than ``scan``'s default because the whole result is kept anyway)."""
        return {kv.key: kv async for kv in self.scan(prefix, page_size=page_size, timeout=timeout)}

    async def scan(
        self,
        prefix_or_key: KeyLike,
        *,
        prefix: bool = True,
        range_end: KeyLike | None = None,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[KeyValue]:
        """Iterate over any number of keys in pages of ``page_size``, all read at one revision.

        With ``prefix=True`` (the default) the keys under a prefix, else every key from
        ``prefix_or_key`` on (up to ``range_end`` if given). The first page fixes the revision
        (unless ``revision`` does), so the result is a consistent snapshot even while others
        write; ``CompactedError`` if that revision is compacted away mid-scan. ``timeout``
        applies to each page. A page too large to receive is fetched again in smaller pages.
        """
        if range_end is not None:
            prefix = False
        first = _kv_requests.range_request(
            self._keyspace,
            prefix_or_key,
            prefix=prefix,
            from_key=not prefix and range_end is None,
            range_end=range_end,
            limit=_kv_requests.check_int(page_size, "page_size") or 1000,
            revision=revision,
            keys_only=keys_only,
        )
        namespace = self._keyspace.prefix
        request = first
        while True:
            reply = await self._range_page(request, timeout)
            if request is first and not request.revision:
                request = _RangeRequest()
                request.CopyFrom(first)
                request.revision = reply.header.revision
            for pb in reply.kvs:
                yield key_value(pb, namespace)
            if not reply.more or not reply.kvs:
                return
            request.key = reply.kvs[-1].key + b"\0"

    async def _range_page(
        self, request: rpc_pb2.RangeRequest, timeout: float | None
    ) -> rpc_pb2.RangeResponse:
        while True:
            try:
                return await self._unary(rpcs.RANGE, request, timeout=timeout)
            except CompactedError as error:  # noqa: PERF203 - the rare path
                error.compact_revision = await self._compacted_at(request.key, request.revision)
                raise
            except RpcError as error:
                # A page larger than the receive limit: halve it (down to one key) and retry.
                if error.code.name != "RESOURCE_EXHAUSTED" or request.limit <= 1:
                    raise
                request.limit = max(1, request.limit // 2)

    async def _compacted_at(self, key: bytes, revision: int) -> int:
        """The store's compact revision, or 0 if it cannot be learned within a second.

        A Range error does not say it, but a watch from that revision is cancelled with it.
        """
        if not revision:
            return 0
        create = rpc_pb2.WatchCreateRequest(key=key, start_revision=revision)
        with trio.move_on_after(_COMPACT_PROBE_TIMEOUT):
            try:
                async with self._stream(rpcs.WATCH) as stream:
                    await stream.send_message(rpc_pb2.WatchRequest(create_request=create))
                    for _ in range(2):  # "created", then "canceled" with the revision
                        reply = await stream.receive_message()
                        if reply is None:
                            break
                        if reply.compact_revision:
                            return reply.compact_revision
            except EtcdError:
                pass
        return 0

    async def put(
        self,
        key: KeyLike,
        value: KeyLike | None,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
    ) -> PutResponse:
        """Set a key's value; ``lease`` attaches it to a lease; ``prev_kv`` returns the old
        key-value; ``ignore_value``/``ignore_lease`` keep the current value/lease."""
        if not (lease or prev_kv or ignore_value or ignore_lease):
            if type(value) is bytes:
                request = _put_request(self._keyspace.key(key), value)
            else:
                request = _kv_requests.put_request(self._keyspace, key, value)
            reply = await self._unary(rpcs.PUT, request, timeout=timeout)
            return PutResponse(response_header(reply.header), None)
        request = _kv_requests.put_request(
            self._keyspace,
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        reply = await self._unary(rpcs.PUT, request, timeout=timeout)
        return _kv_requests.put_response(reply, self._keyspace.prefix)

    async def put_json(self, key: KeyLike, obj: Any, **put_options: Any) -> PutResponse:
        """Store ``obj`` as compact JSON (UTF-8)."""
        value = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return await self.put(key, value, **put_options)

    async def get_json(
        self, key: KeyLike, default: Any = None, *, timeout: float | None = None
    ) -> Any:
        """The JSON value of a key, decoded, or ``default`` when the key does not exist."""
        value = await self.get_value(key, timeout=timeout)
        if value is None:
            return default
        return json.loads(value)

    async def delete(
        self,
        key: KeyLike,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: KeyLike | None = None,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResponse:
        """Delete one key or a range; ``deleted`` counts them, ``prev_kvs`` when asked for."""
        request = _kv_requests.delete_request(
            self._keyspace,
            key,
            prefix=prefix,
            from_key=from_key,
            range_end=range_end,
            prev_kv=prev_kv,
        )
        reply = await self._unary(rpcs.DELETE_RANGE, request, timeout=timeout)
        return _kv_requests.delete_response(reply, self._keyspace.prefix)

    async def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResponse:
        """If every ``compare`` holds, run ``success``, else ``failure``, atomically.

        ``responses`` holds one reply per operation of the branch that ran, in order. A txn
        of reads only is retried like a read.
        """
        request = _kv_requests.txn_request(self._keyspace, compare, success, failure)
        read_only = all(
            op.WhichOneof("request") == "request_range"
            for op in (*request.success, *request.failure)
        )
        reply = await self._unary(rpcs.TXN, request, timeout=timeout, repeatable=read_only)
        return _kv_requests.txn_response(reply, self._keyspace.prefix)

    async def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> CompactResponse:
        """Discard the history before ``revision``; ``physical`` waits until the space is
        reclaimed on every member."""
        request = rpc_pb2.CompactionRequest(revision=_kv_requests.check_int(revision, "revision"))
        if physical:
            request.physical = _kv_requests.check_bool(physical, "physical")
        reply = await self._unary(rpcs.COMPACT, request, timeout=timeout)
        return CompactResponse(response_header(reply.header))
