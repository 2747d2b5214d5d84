"""python-etcd3's clients: ``client()``, ``Etcd3Client``, ``MultiEndpointEtcd3Client`` and
``Endpoint``, over the blocking face ``puregrpc_etcd.sync`` (one engine, no grpcio).

The connection lives here; the calls in the mixins of ``_kv`` (keys, transactions),
``_watching`` (watches) and ``_admin`` (leases, locks, the cluster, maintenance).
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from typing import Any, Iterable, Optional

from ._admin import AdminMethods
from ._kv import KVMethods
from ._native import GrpcOptions, connect_options, tls_context
from ._results import Alarm, KVMetadata, Status, Transactions
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


class MultiEndpointEtcd3Client(KVMethods, WatchMethods, AdminMethods):
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
                # The engine keeps what it needs to renew the token; no copy stays here.
                self._password = None
            return self._sync

    def __repr__(self) -> str:
        endpoints = ", ".join(str(ep) for ep in self.endpoints.values())
        return f"<{type(self).__name__} [{endpoints}] user={self._user!r}>"

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


#: python-etcd3's entry point, ``etcd3.client(host, port, ...)``: a function there that passes
#: every argument on to ``Etcd3Client``, which takes the same; it connects on first use.
client = Etcd3Client
