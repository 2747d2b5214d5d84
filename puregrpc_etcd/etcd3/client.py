"""python-etcd3's clients: ``client()``, ``Etcd3Client``, ``MultiEndpointEtcd3Client`` and
``Endpoint``, over the blocking face ``puregrpc_etcd.sync`` (one engine, no grpcio).

The KV calls live here; watches, leases, locks, the cluster and maintenance in the mixins of
``_watching`` and ``_admin``.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from typing import Any, Iterable, Iterator, Optional

from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.types import GetResponse

from . import transactions, utils
from ._admin import AdminMethods
from ._native import GrpcOptions, connect_options, handle_errors, tls_context
from ._results import (
    Alarm,
    KVMetadata,
    Status,
    Transactions,
    delete_pb,
    put_pb,
    range_pb,
    txn_responses,
)
from ._watching import WatchMethods

__all__ = [
    "Alarm",
    "Endpoint",
    "Etcd3Client",
    "EtcdTokenCallCredentials",
    "KVMetadata",
    "MultiEndpointEtcd3Client",
    "Status",
    "Transactions",
    "client",
]

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


class Endpoint:
    """One etcd endpoint: ``host``, ``port``, ``secure`` and ``creds``.

    ``creds`` is an ``ssl.SSLContext`` (python-etcd3 takes grpc credentials; build one with
    ``MultiEndpointEtcd3Client.get_secure_creds``). ``time_retry`` and ``opts`` are accepted:
    the client moves between endpoints by itself, and ``opts`` takes grpcio's channel options
    that mean something here (message sizes, keepalive).
    """

    def __init__(  # noqa: PLR0917 - python-etcd3's signature
        self,
        host: str,
        port: int,
        secure: bool = True,
        creds: Optional[ssl.SSLContext] = None,
        time_retry: float = 300.0,
        opts: GrpcOptions = None,
    ) -> None:
        self.host = host
        self.port = port
        self.netloc = f"{host}:{port}"
        self.secure = secure
        self.protocol = "https" if secure else "http"
        if self.secure and creds is None:
            raise ValueError("Please set TLS credentials for secure connections")
        self.credentials = creds
        self.time_retry = time_retry
        self.opts = opts
        self.in_use = False
        self.last_failed = 0.0

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.netloc}"

    def close(self) -> None:
        """Nothing to close: connections belong to the client."""

    def fail(self) -> None:
        self.in_use = False
        self.last_failed = time.time()

    def use(self) -> None:
        self.in_use = True
        self.last_failed = 0.0

    def is_failed(self) -> bool:
        return (time.time() - self.last_failed) < self.time_retry

    def __str__(self) -> str:
        return f"Endpoint({self.protocol}://{self.netloc})"


class EtcdTokenCallCredentials:
    """python-etcd3's metadata plugin: ``plugin(context, callback)`` hands ``callback`` the
    ``token`` metadata. Kept for code that imports it; this client sends (and renews) its token
    itself, so nothing here uses it."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __call__(self, context: object, callback: Any) -> None:
        callback((("token", self._access_token),), None)

    def __repr__(self) -> str:
        return "EtcdTokenCallCredentials(<token>)"


class MultiEndpointEtcd3Client(WatchMethods, AdminMethods):
    """etcd v3 client over several endpoints (python-etcd3's API).

    Unlike python-etcd3, a failed call does not leave the client on a dead endpoint until the
    application retries: the engine moves to a working endpoint by itself (reads are retried
    there; writes are when they provably did not reach the server). With ``failover=False``
    the client keeps to one endpoint picked at random, as python-etcd3 does. With ``user`` and
    ``password`` the token is renewed when it expires (python-etcd3 keeps the first one).
    """

    def __init__(
        self,
        endpoints: Optional[Iterable[Endpoint]] = None,
        timeout: Optional[float] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        failover: bool = False,
    ) -> None:
        self.endpoints = {ep.netloc: ep for ep in endpoints or ()}
        if not self.endpoints:
            raise ValueError("at least one Endpoint is needed")
        self.failover = failover
        self.timeout = timeout
        self._current_endpoint_label = random.choice(list(self.endpoints))
        if (user is None) != (password is None):
            raise ValueError(
                "if using authentication credentials both user and password must be specified."
            )
        self._user = user
        self._password = password
        self._connect_lock = threading.Lock()
        self._sync: Any = None
        self._closed = False
        self.transactions = Transactions()
        self._init_watching()
        # python-etcd3 sets these when it authenticates; here the engine holds the token.
        self.metadata = None
        self.call_credentials: Optional[object] = None
        if user is not None:
            self.call_credentials = object()
            self._native  # noqa: B018 - authenticate now, so bad credentials fail here

    # The connection.

    @property
    def endpoint_in_use(self) -> Endpoint:
        """The endpoint picked first (the engine may have moved to another since)."""
        return self.endpoints[self._current_endpoint_label]

    def _urls(self) -> list[str]:
        if self.failover:
            return [ep.url for ep in self.endpoints.values()]
        return [self.endpoint_in_use.url]

    def _connect_options(self) -> dict[str, Any]:
        chosen = self.endpoint_in_use
        options = connect_options(chosen.opts)
        tls = next((ep.credentials for ep in self.endpoints.values() if ep.secure), None)
        if tls is not None:
            options["tls"] = tls
        return options

    @property
    def _native(self) -> Any:
        """The blocking client of ``puregrpc_etcd.sync``, connected on first use."""
        native = self._sync
        if native is not None:
            return native
        with self._connect_lock:
            if self._closed:
                raise ValueError("the client is closed")
            if self._sync is None:
                from puregrpc_etcd import sync

                self._sync = sync.connect(
                    self._urls(),
                    username=self._user,
                    password=self._password,
                    timeout=self.timeout,
                    **self._connect_options(),
                )
                self.endpoint_in_use.use()
            return self._sync

    def close(self) -> None:
        """Close the connections and end every watch."""
        self._close_watching()
        with self._connect_lock:
            self._closed = True
            native, self._sync = self._sync, None
        if native is not None:
            native.close()

    def __enter__(self) -> MultiEndpointEtcd3Client:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    @staticmethod
    def get_secure_creds(
        ca_cert: Any, cert_key: Optional[Any] = None, cert_cert: Optional[Any] = None
    ) -> ssl.SSLContext:
        """The TLS context for ``Endpoint(creds=...)`` from certificate file paths."""
        return tls_context(ca_cert, cert_key, cert_cert)

    # KV.

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

    def get_response(self, key: Any, **kwargs: Any) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for one key (python-etcd3's range options as keywords)."""
        return range_pb(self._range(key, **kwargs))

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

    def get_all_response(self, **kwargs: Any) -> rpc_pb2.RangeResponse:
        """The ``RangeResponse`` for every key (``sort_order``, ``sort_target``, ``keys_only``)."""
        return range_pb(self._all(**kwargs))

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


class Etcd3Client(MultiEndpointEtcd3Client):
    """etcd v3 client for one endpoint (python-etcd3's API).

    ``ca_cert`` alone (a path) gives TLS; with ``cert_cert`` and ``cert_key`` also a client
    certificate. ``grpc_options`` takes grpcio channel options (a dict or pairs); those with a
    counterpart here apply (message sizes, keepalive), the others are ignored.
    """

    def __init__(  # noqa: PLR0917 - python-etcd3's signature
        self,
        host: str = "localhost",
        port: int = 2379,
        ca_cert: Any = None,
        cert_key: Any = None,
        cert_cert: Any = None,
        timeout: Optional[float] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        grpc_options: GrpcOptions = None,
    ) -> None:
        if ca_cert is not None and (cert_cert is None) != (cert_key is None):
            raise ValueError(
                "to use a secure channel ca_cert is required by itself, "
                "or cert_cert and cert_key must both be specified."
            )
        self.uses_secure_channel = ca_cert is not None
        credentials = tls_context(ca_cert, cert_key, cert_cert) if ca_cert is not None else None
        endpoint = Endpoint(
            host, port, secure=self.uses_secure_channel, creds=credentials, opts=grpc_options
        )
        super().__init__(endpoints=[endpoint], timeout=timeout, user=user, password=password)


def client(  # noqa: PLR0917 - python-etcd3's signature
    host: str = "localhost",
    port: int = 2379,
    ca_cert: Any = None,
    cert_key: Any = None,
    cert_cert: Any = None,
    timeout: Optional[float] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    grpc_options: GrpcOptions = None,
) -> Etcd3Client:
    """An ``Etcd3Client`` (python-etcd3's entry point); it connects on first use."""
    return Etcd3Client(
        host=host,
        port=port,
        ca_cert=ca_cert,
        cert_key=cert_key,
        cert_cert=cert_cert,
        timeout=timeout,
        user=user,
        password=password,
        grpc_options=grpc_options,
    )
