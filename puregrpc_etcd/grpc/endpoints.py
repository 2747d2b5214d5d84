"""Endpoint strings ("host:port", "http://host:port", "https://host:port", "[::1]:2379")
parsed into host, port and whether the scheme asks for TLS. Pure parsing; no I/O.

Error messages quote endpoints through ``redact_userinfo``: a URL written with a password in
it (``http://user:secret@host``) must not carry the password into logs and tracebacks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, NamedTuple, TypeVar, Union

if TYPE_CHECKING:
    import ssl

__all__ = [
    "Endpoint",
    "TlsOption",
    "join_host_port",
    "parse_endpoint",
    "parsed_or_redacted",
    "redact_userinfo",
    "split_host_port",
]

T = TypeVar("T")

# ssl itself is imported where a context is made: the command's --help never needs it.
TlsOption = Union["ssl.SSLContext", bool, None]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The schemes kept in front of a redaction; any other "word://" may be the start of user info.
_SCHEME = re.compile(r"\s*(?:https?|etcds?|unixs?)://", re.IGNORECASE)


class Endpoint(NamedTuple):
    """One place to connect to; ``text`` is how the user wrote it."""

    text: str
    host: str
    port: int
    # True for https://, False for http://, None when the channel's ``tls`` decides.
    scheme_tls: bool | None

    @property
    def authority(self) -> str:
        return join_host_port(self.host, self.port)


def redact_userinfo(text: str) -> str:
    """``text`` fit to quote in a message: everything before its last ``@`` but a leading
    ``http(s)://``, ``etcd(s)://`` or ``unix(s)://`` replaced by ``***``.

    Whatever precedes an ``@`` may be user info, and a malformed URL (an unescaped ``/``, ``?``
    or ``,`` in the password) does not say where it ends, so all of it goes; for a list of
    URLs that hides more than the credentials, never less.
    """
    at = text.rfind("@")
    if at < 0:
        return text
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme is not None and scheme.end() <= at else 0
    return text[:start] + "***" + text[at:]


def parsed_or_redacted(parse: Callable[[str], T], text: str, what: str = "endpoint") -> T:
    """``parse(text)``; its ValueError (whose reason must not quote ``text``) raised again as
    ``invalid <what> '<text redacted>': <reason>``, with no chained exception to keep more."""
    try:
        return parse(text)
    except ValueError as exc:
        reason = str(exc)
    raise ValueError(f"invalid {what} {redact_userinfo(text)!r}: {reason}")


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint; ValueError when it is not one."""
    if not isinstance(text, str):
        raise TypeError(f"an endpoint must be a str, not {type(text).__name__}")
    return parsed_or_redacted(_parse, text)


def _parse(text: str) -> Endpoint:
    rest = text.strip()
    scheme = None
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError("unsupported scheme: use http or https")
    default_port = None if scheme is None else _DEFAULT_PORTS[scheme]
    host, port = split_host_port(rest.rstrip("/"), default_port)
    scheme_tls = None if scheme is None else scheme == "https"
    return Endpoint(text, host, port, scheme_tls)


def split_host_port(text: str, default_port: int | None) -> tuple[str, int]:
    """``"h:1"`` -> ``("h", 1)``, ``"[::1]:1"`` -> ``("::1", 1)``; without a port
    ``default_port``, or a ValueError when that is None. The package's one host:port parser.

    The ValueError says what is wrong without quoting ``text``: callers quote their whole input,
    with any credentials redacted (``parsed_or_redacted``).
    """
    if "@" in text:
        raise ValueError(
            "an endpoint carries no user name or password: use an etcd:// URL or "
            "username=/password="
        )
    if not text or "/" in text:
        raise ValueError("expected host:port")
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("an IPv6 address goes in brackets, as in [::1]:2379")
        port_text = after[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError("an IPv6 address needs brackets, as in [::1]:2379")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError("no host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError("invalid port")
        return host, int(port_text)
    if default_port is None:
        raise ValueError("a port is needed (host:port)")
    return host, default_port


def join_host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
