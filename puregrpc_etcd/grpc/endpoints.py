"""Endpoint strings ("host:port", "http://host:port", "https://host:port", "[::1]:2379")
parsed into host, port and whether the scheme asks for TLS. Pure parsing; no I/O."""

from __future__ import annotations

import ssl
from typing import NamedTuple, Union

__all__ = ["Endpoint", "TlsOption", "parse_endpoint"]

TlsOption = Union[ssl.SSLContext, bool, None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Endpoint(NamedTuple):
    """One place to connect to; ``text`` is how the user wrote it."""

    text: str
    host: str
    port: int
    # True for https://, False for http://, None when the channel's ``tls`` decides.
    scheme_tls: bool | None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint; ValueError when it is not one."""
    if not isinstance(text, str):
        raise TypeError(f"an endpoint must be a str, not {type(text).__name__}")
    rest = text.strip()
    scheme = None
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported scheme in endpoint {text!r}: use http or https")
    rest = rest.rstrip("/")
    if not rest or "/" in rest or "@" in rest:
        raise ValueError(f"invalid endpoint {text!r}: expected host:port")
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"invalid IPv6 endpoint {text!r}")
        port_text = after[1:]
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    elif ":" in rest:
        raise ValueError(f"IPv6 endpoint {text!r} needs brackets, as in [::1]:2379")
    else:
        host, port_text = rest, ""
    if not host:
        raise ValueError(f"invalid endpoint {text!r}: no host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port in endpoint {text!r}")
        port = int(port_text)
    elif scheme is not None:
        port = _DEFAULT_PORTS[scheme]
    else:
        raise ValueError(f"endpoint {text!r} needs a port (host:port)")
    scheme_tls = None if scheme is None else scheme == "https"
    return Endpoint(text, host, port, scheme_tls)
