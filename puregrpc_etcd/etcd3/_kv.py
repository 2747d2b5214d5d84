"""The KV methods of python-etcd3's client: ``get`` and its range forms, ``put``,
``delete``, ``replace``, ``put_if_not_exists``, ``compact`` and ``transaction``."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.types import GetResponse

from . import transactions, utils
from ._native import handle_errors
from ._results import KVMetadata, Transactions, delete_pb, put_pb, range_pb, txn_responses

__all__ = ["KVMethods"]

_SORT_ORDERS = {None: "none", "ascend": "ascend", "descend": "descend"}
_RANGE_DEFAULTS: dict[str, Any] = {
    "range_end": None,
    "limit": 0,
    "revision": 0,
    "sort_order": "none",
    "sort_target": "key",
    "serializable": False,
    "keys_only": False,
    "count_only": False,
    "min_mod_revision": 0,
    "max_mod_revision": 0,
    "min_create_revision": 0,
    "max_create_revision": 0,
}
_SORT_TARGETS = {
    None: "key",
    "key": "key",
    "version": "version",
    "create": "create",
    "mod": "mod",
    "value": "value",
}


class KVMethods:
    """Mixed into ``MultiEndpointEtcd3Client``."""

    _native: Any
    transactions: Transactions

    def _range_options(  # noqa: PLR0917 - python-etcd3's _build_get_range_request
        self,
        key: Any,
        range_end: Any = None,
        limit: Optional[int] = None,
        revision: Optional[int] = None,
        sort_order: Optional[str] = None,
        sort_target: Optional[str] = "key",
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: Optional[int] = None,
        max_mod_revision: Optional[int] = None,
        min_create_revision: Optional[int] = None,
        max_create_revision: Optional[int] = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """The key and the options for the engine's ``get`` (python-etcd3's names in)."""
        if sort_order not in _SORT_ORDERS:
            raise ValueError(f'unknown sort order: "{sort_order}"')
        if sort_target not in _SORT_TARGETS:
            raise ValueError(
                'sort_target must be one of "key", "version", "create", "mod" or "value"'
            )
        options = {
            "range_end": None if range_end is None else utils.to_bytes(range_end),
            "limit": limit or 0,
            "revision": revision or 0,
            "sort_order": _SORT_ORDERS[sort_order],
            "sort_target": _SORT_TARGETS[sort_target],
            "serializable": bool(serializable),
            "keys_only": bool(keys_only),
            "count_only": bool(count_only),
            "min_mod_revision": min_mod_revision or 0,
            "max_mod_revision": max_mod_revision or 0,
            "min_create_revision": min_create_revision or 0,
            "max_create_revision": max_create_revision or 0,
        }
        # Only what differs from the defaults travels on: a plain get takes the engine's
        # shortest path.
        changed = {name: v for name, v in options.items() if v != _RANGE_DEFAULTS[name]}
        return utils.to_bytes(key), changed

    def _build_get_range_request(self, key: Any, **kwargs: Any) -> rpc_pb2.RangeRequest:
        """The protobuf ``RangeRequest`` python-etcd3 would send for these arguments."""
        start, options = self._range_options(key, **kwargs)
        request = rpc_pb2.RangeRequest(
            key=start,
            sort_order=options.pop("sort_order", "none").upper(),
            sort_target=options.pop("sort_target", "key").upper(),
        )
        for name, value in options.items():
            setattr(request, name, value)
        return request

    @handle_errors
    def _range(self, key: Any, **kwargs: Any) -> GetResponse:
        start, options = self._range_options(key, **kwargs)
        return self._native.get(start, **options)  # type: ignore[no-any-return]

    def get_response(
        self, key: Any, serializable: bool = False, **kwargs: Any
    ) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for one key (python-etcd3's range options as keywords;
        ``serializable`` also second positionally, as python-etcd3 0.12.0 takes it)."""
        return range_pb(self._range(key, serializable=serializable, **kwargs))

    def get(self, key: Any, **kwargs: Any) -> tuple[Optional[bytes], Optional[KVMetadata]]:
        """``(value, KVMetadata)`` of one key, or ``(None, None)`` if it does not exist."""
        reply = self._range(key, **kwargs)
        if reply.count < 1 or not reply.kvs:
            return None, None
        kv = reply.kvs[-1]
        return kv.value, KVMetadata(kv, reply.header)

    def _prefix_range(self, key_prefix: Any, kwargs: dict[str, Any]) -> GetResponse:
        if "key" in kwargs or "range_end" in kwargs:
            raise TypeError("Don't use key or range_end with prefix")
        range_end = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self._range(key_prefix, range_end=range_end, **kwargs)

    def get_prefix_response(self, key_prefix: Any, **kwargs: Any) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for every key under a prefix."""
        return range_pb(self._prefix_range(key_prefix, kwargs))

    def get_prefix(self, key_prefix: Any, **kwargs: Any) -> Iterator[tuple[bytes, KVMetadata]]:
        """``(value, KVMetadata)`` of every key under a prefix."""
        return _pairs(self._prefix_range(key_prefix, kwargs))

    def get_range_response(
        self,
        range_start: Any,
        range_end: Any,
        sort_order: Optional[str] = None,
        sort_target: Optional[str] = "key",
        **kwargs: Any,
    ) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for the keys in ``[range_start, range_end)``."""
        return range_pb(
            self._range(
                range_start,
                range_end=range_end,
                sort_order=sort_order,
                sort_target=sort_target,
                **kwargs,
            )
        )

    def get_range(
        self, range_start: Any, range_end: Any, **kwargs: Any
    ) -> Iterator[tuple[bytes, KVMetadata]]:
        """``(value, KVMetadata)`` of every key in ``[range_start, range_end)``."""
        return _pairs(self._range(range_start, range_end=range_end, **kwargs))

    def _all(
        self,
        sort_order: Optional[str] = None,
        sort_target: Optional[str] = "key",
        keys_only: bool = False,
    ) -> GetResponse:
        options = {"sort_order": sort_order, "sort_target": sort_target, "keys_only": keys_only}
        return self._range(b"\0", range_end=b"\0", **options)

    def get_all_response(
        self,
        sort_order: Optional[str] = None,
        sort_target: Optional[str] = "key",
        keys_only: bool = False,
    ) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for every key."""
        return range_pb(self._all(sort_order, sort_target, keys_only))

    def get_all(self, **kwargs: Any) -> Iterator[tuple[bytes, KVMetadata]]:
        """``(value, KVMetadata)`` of every key."""
        return _pairs(self._all(**kwargs))

    @handle_errors
    def put(
        self, key: Any, value: Any, lease: Any = None, prev_kv: bool = False
    ) -> rpc_pb2.PutResponse:
        """Set a key; ``lease`` is a ``Lease`` or a lease id; returns the ``PutResponse``."""
        options: dict[str, Any] = {}
        lease_id = utils.lease_to_id(lease)
        if lease_id:
            options["lease"] = lease_id
        if prev_kv:
            options["prev_kv"] = True
        reply = self._native.put(utils.to_bytes(key), utils.to_bytes(value), **options)
        return put_pb(reply)

    def put_if_not_exists(self, key: Any, value: Any, lease: Any = None) -> bool:
        """Put only if the key does not exist; True if it was put."""
        status, _ = self.transaction(
            compare=[self.transactions.create(key) == "0"],
            success=[self.transactions.put(key, value, lease=lease)],
            failure=[],
        )
        return status

    def replace(self, key: Any, initial_value: Any, new_value: Any) -> bool:
        """Set ``new_value`` only if the value is ``initial_value``; True if it was set."""
        status, _ = self.transaction(
            compare=[self.transactions.value(key) == initial_value],
            success=[self.transactions.put(key, new_value)],
            failure=[],
        )
        return status

    @handle_errors
    def delete(self, key: Any, prev_kv: bool = False, return_response: bool = False) -> Any:
        """Delete one key: True if it existed, or the ``DeleteRangeResponse`` with
        ``return_response=True``."""
        reply = self._native.delete(utils.to_bytes(key), prev_kv=bool(prev_kv))
        if return_response:
            return delete_pb(reply)
        return reply.deleted >= 1

    @handle_errors
    def delete_prefix(self, prefix: Any) -> rpc_pb2.DeleteRangeResponse:
        """Delete every key under a prefix; returns the ``DeleteRangeResponse``."""
        start = utils.to_bytes(prefix)
        reply = self._native.delete(start, range_end=utils.prefix_range_end(start))
        return delete_pb(reply)

    @handle_errors
    def compact(self, revision: int, physical: bool = False) -> None:
        """Discard the history before ``revision``."""
        self._native.compact(revision, physical=physical)

    def _ops_to_requests(self, ops: Any) -> list[Any]:
        """The library's ``Op`` for each of python-etcd3's ``Put``/``Get``/``Delete``/``Txn``."""
        return transactions.native_ops(ops)

    @handle_errors
    def transaction(
        self, compare: Iterable[Any], success: Any = None, failure: Any = None
    ) -> tuple[bool, list[Any]]:
        """Run ``success`` if every compare holds, else ``failure``; ``(succeeded,
        responses)`` as python-etcd3 gives them."""
        reply = self._native.txn(
            [transactions.native_compare(c) for c in compare],
            self._ops_to_requests(success),
            self._ops_to_requests(failure),
        )
        return reply.succeeded, txn_responses(reply)


def _pairs(reply: GetResponse) -> Iterator[tuple[bytes, KVMetadata]]:
    header = reply.header
    return iter([(kv.value, KVMetadata(kv, header)) for kv in reply.kvs])
