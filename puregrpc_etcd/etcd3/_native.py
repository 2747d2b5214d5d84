"""How the python-etcd3 face reaches the engine: one blocking client of ``puregrpc_etcd.sync``,
made on first use, and the decorators that turn the library's errors into python-etcd3's."""

from __future__ import annotations

import functools
import ssl
from typing import Any, Callable, Iterator, Mapping, NoReturn, Optional, Sequence, TypeVar, Union

from puregrpc_etcd import errors
from puregrpc_etcd._endpoints import make_tls_context

from .exceptions import NoServerAvailableError, translate

__all__ = [
    "connect_options",
    "handle_errors",
    "handle_generator_errors",
    "python_etcd3_error",
    "tls_context",
]

_F = TypeVar("_F", bound=Callable[..., Any])

GrpcOptions = Union[Mapping[str, Any], Sequence["tuple[str, Any]"], None]

# grpcio channel options that have a counterpart in ``puregrpc_etcd.connect``; the others
# (load balancing, proxies, ...) mean nothing to this client and are ignored.
_OPTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "grpc.max_receive_message_length": ("max_receive_message_size", int),
    "grpc.max_send_message_length": ("max_send_message_size", int),
    "grpc.keepalive_time_ms": ("keepalive_interval", lambda ms: int(ms) / 1000),
    "grpc.keepalive_timeout_ms": ("keepalive_timeout", lambda ms: int(ms) / 1000),
}


def connect_options(grpc_options: GrpcOptions) -> dict[str, Any]:
    """``connect()`` keyword arguments for grpcio channel options (a dict or pairs)."""
    if grpc_options is None:
        return {}
    pairs = grpc_options.items() if isinstance(grpc_options, Mapping) else grpc_options
    options: dict[str, Any] = {}
    for name, value in pairs:
        known = _OPTIONS.get(name)
        if known is not None:
            options[known[0]] = known[1](value)
    return options


def tls_context(
    ca_cert: Any, cert_key: Optional[Any] = None, cert_cert: Optional[Any] = None
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` trusting ``ca_cert`` (a path), with a client certificate when
    ``cert_cert`` and ``cert_key`` are given: what python-etcd3 builds as grpc credentials."""
    with_cert = cert_cert is not None and cert_key is not None
    return make_tls_context(
        cacert=str(ca_cert),
        cert=str(cert_cert) if with_cert else None,
        key=str(cert_key) if with_cert else None,
    )


def handle_errors(method: _F) -> _F:
    """Raise python-etcd3's exception where it has one for the library's error."""

    @functools.wraps(method)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except errors.EtcdError as exc:
            _reraise(exc, args[0] if args else None)

    return handler  # type: ignore[return-value]


def handle_generator_errors(method: _F) -> _F:
    """``handle_errors`` for a generator method."""

    @functools.wraps(method)
    def handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from method(*args, **kwargs)
        except errors.EtcdError as exc:
            _reraise(exc, args[0] if args else None)

    return handler  # type: ignore[return-value]


def python_etcd3_error(error: errors.EtcdError, client: object) -> BaseException:
    """What python-etcd3 raises for the library's ``error`` on ``client``: ``translate``, and
    ``NoServerAvailableError`` when no endpoint could be reached on a client with
    ``failover=True`` (python-etcd3 raises it once every endpoint has failed; one call of this
    client tries them all)."""
    if isinstance(error, errors.ConnectionFailedError) and getattr(client, "failover", False):
        unavailable = NoServerAvailableError("No endpoint available and not failed")
        unavailable.__cause__ = error
        return unavailable
    return translate(error)


def _reraise(error: errors.EtcdError, client: object) -> NoReturn:
    translated = python_etcd3_error(error, client)
    if translated is error:
        raise error
    raise translated from error
