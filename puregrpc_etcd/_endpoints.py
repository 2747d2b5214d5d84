"""Where and how to connect: endpoint strings, ``etcd://`` URLs and etcdctl's variables.

Everything here is pure parsing (plus building an ``ssl.SSLContext``); ``client.connect`` merges
the result with its own arguments.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Mapping, Sequence, Union
from urllib.parse import parse_qs, unquote

from puregrpc_etcd.grpc.endpoints import (
    join_host_port,
    parsed_or_redacted,
    redact_userinfo,
    split_host_port,
)

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_ENDPOINT",
    "ConnectSettings",
    "make_tls_context",
    "parse_duration",
    "parse_endpoints",
    "settings_from_env",
]

DEFAULT_ENDPOINT = "127.0.0.1:2379"
DEFAULT_PORT = 2379

EndpointsArg = Union[str, Sequence[str], None]


@dataclass(frozen=True)
class ConnectSettings:
    """What an endpoint URL or the environment says; None means "not said"."""

    endpoints: list[str] = field(default_factory=list)
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    dial_timeout: float | None = None
    command_timeout: float | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure_skip_verify: bool = False

    def overridden_by(self, other: ConnectSettings) -> ConnectSettings:
        """These settings with every field that ``other`` sets taking its value."""
        changes = {
            name: getattr(other, name)
            for name in self.__dataclass_fields__
            if getattr(other, name) not in (None, False, [])
        }
        return replace(self, **changes)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context these settings ask for, or None for plaintext."""
        wants_tls = self.tls or any(e.startswith("https://") for e in self.endpoints)
        if not (wants_tls or self.cacert or self.cert):
            return None
        return make_tls_context(
            cacert=self.cacert,
            cert=self.cert,
            key=self.key,
            insecure_skip_verify=self.insecure_skip_verify,
        )


def parse_endpoints(endpoints: EndpointsArg) -> ConnectSettings:
    """Parse ``connect()``'s ``endpoints`` argument.

    Accepts ``"host:port"``, ``"http://host:port"``, ``"https://host:port"``, a list of those, a
    comma-separated string of those, or one ``etcd://`` / ``etcds://`` URL with credentials,
    several hosts and options. ``None`` means ``$ETCDCTL_ENDPOINTS``, else 127.0.0.1:2379.
    """
    if endpoints is None:
        from_env = os.environ.get("ETCDCTL_ENDPOINTS", "").strip()
        return parse_endpoints(from_env or DEFAULT_ENDPOINT)
    if isinstance(endpoints, (bytes, bytearray)):
        raise TypeError("endpoints must be str or a sequence of str, not bytes")
    if isinstance(endpoints, str):
        text = endpoints.strip()
        lowered = text.lower()
        if lowered.startswith(("etcd://", "etcds://")):
            return _parse_etcd_url(text)
        if "@" in text:
            # A password with a "," would be split into pieces no message can then hide.
            raise ValueError(
                f"invalid endpoints {redact_userinfo(text)!r}: only an etcd:// URL carries a "
                "user name and password (or give username=/password=)"
            )
        items: list[str] = [part for part in text.split(",") if part.strip()]
    else:
        items = list(endpoints)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"each endpoint must be a str, not {type(item).__name__}")
    if not items:
        raise ValueError("no endpoints given")
    normalized = [normalize_endpoint(item) for item in items]
    return ConnectSettings(endpoints=normalized)


_SCHEMES = ("http://", "https://", "unix://", "unixs://")


def normalize_endpoint(endpoint: str) -> str:
    """One endpoint as the channel takes it: ``host:port`` or ``http(s)://host:port``.

    A missing port means 2379; a trailing ``/`` is dropped. ``[::1]:2379`` is IPv6.
    """
    return parsed_or_redacted(_normalized, endpoint.strip())


def _normalized(endpoint: str) -> str:
    text = endpoint.strip().rstrip("/")
    if not text:
        raise ValueError("empty endpoint")
    scheme = ""
    lowered = text.lower()
    for candidate in _SCHEMES:
        if lowered.startswith(candidate):
            scheme, text = candidate, text[len(candidate) :]
            break
    else:
        if "://" in text:
            raise ValueError("unsupported scheme: use http or https")
    if scheme.startswith("unix"):
        raise ValueError("unix socket endpoints are not supported")
    return scheme + join_host_port(*split_host_port(text, DEFAULT_PORT))


def _parse_etcd_url(url: str) -> ConnectSettings:
    try:
        return _etcd_url_settings(url)
    except ValueError as exc:
        reason = str(exc)
    scheme_end = url.index("://") + 3
    authority_end = min(
        (i for i in (url.find("/", scheme_end), url.find("?", scheme_end)) if i >= 0),
        default=len(url),
    )
    if url.rfind("@") > authority_end:
        # An "@" after the host list: most likely a password with an unescaped "/" or "?",
        # whose pieces the parser took for hosts or options; any detail could quote them.
        reason = "a user name or password must percent-encode '/', '?', '#' and '@'"
    raise ValueError(f"invalid etcd:// URL {redact_userinfo(url)!r}: {reason}")


def _etcd_url_settings(url: str) -> ConnectSettings:
    # The messages raised here may quote hosts and options but never the user info (before
    # the last "@" of the authority); ``_parse_etcd_url`` quotes the URL itself, redacted.
    scheme, _, rest = url.partition("://")
    tls = scheme.lower() == "etcds"
    authority, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in authority:
        authority, _, query = authority.partition("?")
    if path.strip("/"):
        raise ValueError("an etcd:// URL has no path; put options after '/?'")
    username = password = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user_part, colon, password_part = userinfo.partition(":")
        username = unquote(user_part)
        password = unquote(password_part) if colon else None
    hosts = [part for part in authority.split(",") if part.strip()]
    if not hosts:
        raise ValueError("an etcd:// URL needs at least one host")
    url_scheme = "https://" if tls else "http://"
    endpoints = [url_scheme + join_host_port(*_host_port_of(host.strip())) for host in hosts]
    options = {name: values[-1] for name, values in parse_qs(query, keep_blank_values=True).items()}
    known = {
        "dial_timeout",
        "command_timeout",
        "cacert",
        "cert",
        "key",
        "insecure_skip_tls_verify",
    }
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown etcd:// URL option(s): {', '.join(unknown)}")
    dial = options.get("dial_timeout")
    command = options.get("command_timeout")
    return ConnectSettings(
        endpoints=endpoints,
        tls=tls,
        username=username or None,
        password=password,
        dial_timeout=parse_duration(dial) if dial else None,
        command_timeout=parse_duration(command) if command else None,
        cacert=options.get("cacert") or None,
        cert=options.get("cert") or None,
        key=options.get("key") or None,
        insecure_skip_verify=_parse_bool(options.get("insecure_skip_tls_verify", "")),
    )


def _host_port_of(host: str) -> tuple[str, int]:
    try:
        return split_host_port(host, DEFAULT_PORT)
    except ValueError as exc:
        raise ValueError(f"host {host!r}: {exc}") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> ConnectSettings:
    """etcdctl's ``ETCDCTL_*`` variables as connection settings."""
    env = os.environ if environ is None else environ
    endpoints = env.get("ETCDCTL_ENDPOINTS", "").strip()
    settings = parse_endpoints(endpoints or DEFAULT_ENDPOINT)
    username = password = None
    user = env.get("ETCDCTL_USER", "")
    if user:
        username, colon, rest = user.partition(":")
        password = rest if colon else None
    if env.get("ETCDCTL_PASSWORD"):
        password = env["ETCDCTL_PASSWORD"]
    dial = env.get("ETCDCTL_DIAL_TIMEOUT", "").strip()
    command = env.get("ETCDCTL_COMMAND_TIMEOUT", "").strip()
    return replace(
        settings,
        username=username or settings.username,
        password=password if password is not None else settings.password,
        dial_timeout=parse_duration(dial) if dial else settings.dial_timeout,
        command_timeout=parse_duration(command) if command else settings.command_timeout,
        cacert=env.get("ETCDCTL_CACERT") or settings.cacert,
        cert=env.get("ETCDCTL_CERT") or settings.cert,
        key=env.get("ETCDCTL_KEY") or settings.key,
        insecure_skip_verify=_parse_bool(env.get("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", ""))
        or settings.insecure_skip_verify,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds from a plain number (``"5"``, ``"2.5"``) or a Go duration (``"1m30s"``)."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position != len(value) or not value:
            raise ValueError(f"invalid duration: {text!r}") from None
    if not 0 <= seconds < math.inf:
        raise ValueError(f"invalid duration: {text!r}")
    return seconds


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("", "0", "false", "no", "off"):
        return False
    if lowered in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"invalid boolean: {text!r}")


def make_tls_context(
    *,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    insecure_skip_verify: bool = False,
) -> ssl.SSLContext:
    """A client TLS context with ALPN ``h2``: system CAs unless ``cacert`` is given, a client
    certificate when ``cert`` (and ``key``) are given."""
    import ssl  # here, not at the top: the command's --help never builds a context

    context = ssl.create_default_context(cafile=cacert)
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    elif key:
        raise ValueError("a client key needs a client certificate (cert=)")
    context.set_alpn_protocols(["h2"])
    return context
