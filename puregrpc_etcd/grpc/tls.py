"""The TLS context a channel dials with, chosen without changing the caller's.

gRPC needs ALPN ``h2`` (etcd answers HTTP/1.1 otherwise), but an ``ssl.SSLContext`` can be
neither copied (its certificates and keys cannot be read back) nor asked for its ALPN list, and
leaving ``h2`` set on the caller's context would change what their other connections offer.
So the ALPN list a caller's context offers is read from the ClientHello it writes into memory;
when it lacks ``h2``, ``h2`` is offered only while our TLS object is made (OpenSSL copies the
list into each connection when it is created) and the caller's list is put back at once.
"""

from __future__ import annotations

import ssl
import struct
from contextlib import contextmanager
from typing import Iterator, Sequence

from .endpoints import Endpoint, TlsOption

__all__ = ["check_tls_option", "default_context", "offered_alpn", "offering_h2"]

_HANDSHAKE_RECORD = 22
_CLIENT_HELLO = 1
_ALPN_EXTENSION = 16


def default_context() -> ssl.SSLContext:
    """System CAs, hostname checks, ALPN ``h2``: the context of ``tls=True``."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def check_tls_option(tls: TlsOption, endpoints: Sequence[Endpoint]) -> None:
    """Refuse, before any I/O, what would make a channel quietly weaker than asked.

    ``tls=`` with an ``http://`` endpoint would send that endpoint's calls in plaintext.
    """
    if tls is not None and not isinstance(tls, (bool, ssl.SSLContext)):
        raise TypeError(f"tls must be an ssl.SSLContext, a bool or None, not {type(tls).__name__}")
    if not tls:
        return
    for endpoint in endpoints:
        if endpoint.scheme_tls is False:
            raise ValueError(
                f"endpoint {endpoint.text!r} is http:// but tls= asks for TLS: "
                "use https:// (or leave tls= out for plaintext)"
            )


@contextmanager
def offering_h2(context: ssl.SSLContext) -> Iterator[None]:
    """Make the TLS objects created inside this block offer ALPN ``h2`` on ``context``, and
    leave ``context`` offering what it offered before.

    The block must create its ``SSLObject`` without awaiting: other tasks see the caller's list,
    and only another thread wrapping with the same context at that instant could see ``h2``.
    """
    offered = offered_alpn(context)
    if offered is None or "h2" in offered:
        yield  # already offers h2, or cannot be read: used exactly as given
        return
    context.set_alpn_protocols(["h2", *offered])
    try:
        yield
    finally:
        context.set_alpn_protocols(offered)  # [] clears the list again (OpenSSL)


def offered_alpn(context: ssl.SSLContext) -> list[str] | None:
    """The ALPN protocols a client context offers, read from the ClientHello it writes into
    memory (no I/O, the context unchanged); None when that cannot be told."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        tls = context.wrap_bio(incoming, outgoing, server_hostname="alpn.check.invalid")
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass  # the ClientHello is written; the handshake waits for a server that never comes
    except (ssl.SSLError, ValueError):
        return None
    return _alpn_of_client_hello(outgoing.read())


def _alpn_of_client_hello(data: bytes) -> list[str] | None:
    try:
        record_type, _, record_length = struct.unpack_from("!BHH", data, 0)
        body = memoryview(data)[5 : 5 + record_length]
        if record_type != _HANDSHAKE_RECORD or body[0] != _CLIENT_HELLO:
            return None
        position = 4 + 2 + 32  # handshake header, legacy version, random
        position += 1 + body[position]  # session id
        position += 2 + struct.unpack_from("!H", body, position)[0]  # cipher suites
        position += 1 + body[position]  # compression methods
        (extensions_end,) = struct.unpack_from("!H", body, position)
        position += 2
        extensions_end += position
        while position + 4 <= extensions_end:
            kind, length = struct.unpack_from("!HH", body, position)
            position += 4
            if kind == _ALPN_EXTENSION:
                return _protocol_names(bytes(body[position + 2 : position + length]))
            position += length
    except (struct.error, IndexError):
        return None
    return []


def _protocol_names(data: bytes) -> list[str]:
    names, position = [], 0
    while position < len(data):
        length = data[position]
        names.append(data[position + 1 : position + 1 + length].decode("ascii", "replace"))
        position += 1 + length
    return names
