"""What a command needs to talk to etcd: settings from flags and ``ETCDCTL_*``, and a client.

Flags win over the environment, which wins over etcdctl's defaults (127.0.0.1:2379, a 2 s
dial timeout, a 5 s command timeout).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Mapping, TypeVar

from puregrpc_etcd._cli import stdin
from puregrpc_etcd._cli.args import (
    EXIT_BAD_FEATURE,
    WRITE_OUT_FORMATS,
    UsageError,
    duration,
)
from puregrpc_etcd._cli.formats import Output
from puregrpc_etcd._endpoints import ConnectSettings, parse_endpoints
from puregrpc_etcd.grpc.endpoints import redact_userinfo

if TYPE_CHECKING:
    import ssl

    import trio

    from puregrpc_etcd.client import Client
else:
    from puregrpc_etcd._cli import trio  # imported on first use

R = TypeVar("R")

DEFAULT_ENDPOINTS = ["127.0.0.1:2379"]
DEFAULT_DIAL_TIMEOUT = 2.0
DEFAULT_COMMAND_TIMEOUT = 5.0

_TRUE_WORDS = frozenset({"1", "t", "true", "yes", "on"})


@dataclass
class Settings:
    """The connection settings of one command run (the password is kept out of ``repr``)."""

    endpoints: list[str] = field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure_skip_tls_verify: bool = False
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    # None: the library's ping policy (etcdctl's 2s/6s ping more often than etcd allows).
    keepalive_time: float | None = None
    keepalive_timeout: float | None = None
    write_out: str = "simple"
    hex: bool = False

    @property
    def wants_tls(self) -> bool:
        return bool(
            self.cacert
            or self.cert
            or self.insecure_skip_tls_verify
            or any(endpoint.startswith("https://") for endpoint in self.endpoints)
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if self.key and not self.cert:
            raise UsageError(f"--key {self.key} needs --cert, the client certificate")
        if not self.wants_tls:
            return None
        from puregrpc_etcd._endpoints import make_tls_context

        for path in (self.cacert, self.cert, self.key):
            if path:
                _check_readable(path)
        try:
            return make_tls_context(
                cacert=self.cacert,
                cert=self.cert,
                key=self.key,
                insecure_skip_verify=self.insecure_skip_tls_verify,
            )
        except OSError as exc:
            raise UsageError(f"cannot load {self._tls_files_at_fault()}: {exc}") from None

    def _tls_files_at_fault(self) -> str:
        """The flags and files a TLS context failed on (ssl's errors do not say)."""
        from puregrpc_etcd._endpoints import make_tls_context

        if self.cacert:
            try:
                make_tls_context(cacert=self.cacert)
            except OSError:
                return f"--cacert {self.cacert}"
        return " and ".join(
            f"{flag} {path}" for flag, path in (("--cert", self.cert), ("--key", self.key)) if path
        )


def _check_readable(path: str) -> None:
    """A TLS file that cannot be read fails as etcdctl's: ``open PATH: no such file ...``."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(open_error_text(path, exc)) from None


def open_error_text(path: str, exc: OSError) -> str:
    """A file that cannot be opened, in Go's words: ``open PATH: no such file or directory``."""
    return f"open {path}: {(exc.strerror or str(exc)).lower()}"


def _env_flag(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get("ETCDCTL_" + name.upper().replace("-", "_"))
    return value if value else None


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Merge the parsed global flags with ``ETCDCTL_*`` variables."""

    def pick(name: str, dest: str | None = None) -> str | None:
        value = getattr(args, dest or name.replace("-", "_"), None)
        if value is not None:
            return value  # type: ignore[no-any-return]
        return _env_flag(environ, name)

    settings = Settings()
    url = endpoint_url(pick("endpoints"))
    settings.endpoints = url.endpoints or list(DEFAULT_ENDPOINTS)
    # What an etcd:// URL says applies where no flag (or variable) says otherwise.
    settings.user = pick("user") or url.username
    settings.password = pick("password")
    if settings.password is None and not pick("user"):
        settings.password = url.password
    settings.cacert = pick("cacert") or url.cacert
    settings.cert = pick("cert") or url.cert
    settings.key = pick("key", "tls_key") or url.key
    settings.dial_timeout = url.dial_timeout or settings.dial_timeout
    settings.command_timeout = url.command_timeout or settings.command_timeout
    for name in ("insecure-skip-tls-verify", "hex"):
        flag = getattr(args, name.replace("-", "_"), None)
        env_value = _env_flag(environ, name)
        enabled = bool(flag) or (env_value is not None and env_value.lower() in _TRUE_WORDS)
        setattr(settings, name.replace("-", "_"), enabled)
    settings.insecure_skip_tls_verify |= url.insecure_skip_verify
    if pick("discovery-srv"):
        raise UsageError(
            "DNS discovery (--discovery-srv) is not supported: give --endpoints", EXIT_BAD_FEATURE
        )
    for name in ("dial-timeout", "command-timeout", "keepalive-time", "keepalive-timeout"):
        value = getattr(args, name.replace("-", "_"), None)
        if value is None:
            text = _env_flag(environ, name)
            if text is not None:
                try:
                    value = duration(text)
                except argparse.ArgumentTypeError as exc:
                    # etcdctl silently keeps its default; say so, as a warning.
                    variable = "ETCDCTL_" + name.upper().replace("-", "_")
                    print(f"Warning: {variable} ignored: {exc}", file=sys.stderr)
        if value is not None:
            setattr(settings, name.replace("-", "_"), value)
    write_out = pick("write-out") or "simple"
    if write_out not in WRITE_OUT_FORMATS:
        raise UsageError(
            f"unsupported output format {write_out!r} (simple, json or table)", EXIT_BAD_FEATURE
        )
    settings.write_out = write_out
    if settings.user and settings.password is None and ":" in settings.user:
        settings.user, settings.password = settings.user.split(":", 1)
    return settings


def is_etcd_url(text: str) -> bool:
    return text.strip().lower().startswith(("etcd://", "etcds://"))


def endpoint_url(text: str | None) -> ConnectSettings:
    """``--endpoints`` (or ``ETCDCTL_ENDPOINTS``): host:port or http(s):// endpoints, kept as
    written, or one ``etcd://`` / ``etcds://`` URL with user, password, hosts and options, as
    ``puregrpc_etcd.connect`` takes it. Errors quote the text with its user info redacted."""
    if text is None:
        return ConnectSettings()
    if is_etcd_url(text):
        try:
            return parse_endpoints(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if "@" in text:
        # Refused whole: split at its commas, a password would leave pieces no message hides.
        raise UsageError(
            f"invalid endpoints {redact_userinfo(text)!r}: give the user with --user "
            "(and --password), or write one etcd://user:password@host:port URL"
        )
    endpoints = [e.strip() for e in text.split(",") if e.strip()]
    if not endpoints:
        raise UsageError("--endpoints is empty")
    return ConnectSettings(endpoints=endpoints)


def error_text(exc: BaseException) -> str:
    """An error as one line: etcd's own message for gRPC failures, as etcdctl prints them."""
    from puregrpc_etcd.errors import RpcError

    text = (exc.details if isinstance(exc, RpcError) else "") or str(exc) or type(exc).__name__
    return " ".join(text.split("\n")).strip()


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) ended the command after its clients closed cleanly."""


class Context:
    """One command run: its settings, where it prints, and how it connects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out = Output(hex_bytes=settings.hex)
        self.interrupted = False
        self._scopes: set[trio.CancelScope] = set()

    @property
    def write_out(self) -> str:
        return self.settings.write_out

    @property
    def command_timeout(self) -> float:
        return self.settings.command_timeout

    def require_format(self, *formats: str) -> None:
        """Refuse an output format this command cannot write, before any I/O."""
        if self.write_out not in formats:
            raise UsageError(f"{self.write_out} not supported as output format", EXIT_BAD_FEATURE)

    def _password(self) -> str | None:
        settings = self.settings
        if settings.user and settings.password is None:
            if not stdin.is_terminal():
                raise UsageError("--user needs a password: give user:password or --password")
            settings.password = getpass.getpass("Password: ")
        return settings.password

    @asynccontextmanager
    async def connect(self, endpoints: list[str] | None = None) -> AsyncIterator[Client]:
        """A client for these settings (or for ``endpoints`` with the same credentials)."""
        from puregrpc_etcd.client import (
            DEFAULT_KEEPALIVE_INTERVAL,
            DEFAULT_KEEPALIVE_TIMEOUT,
            connect,
        )

        settings = self.settings
        password = self._password()
        async with connect(
            endpoints or settings.endpoints,
            username=settings.user or None,
            password=password,
            tls=settings.tls_context(),
            connect_timeout=settings.dial_timeout,
            timeout=settings.command_timeout,
            keepalive_interval=settings.keepalive_time or DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout=settings.keepalive_timeout or DEFAULT_KEEPALIVE_TIMEOUT,
        ) as client:
            # Ctrl-C cancels what runs with the client, not the client itself: its connection
            # must live on while locks, elections and leases clean up on the way out.
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                if self.interrupted:
                    scope.cancel()
                try:
                    yield client
                finally:
                    self._scopes.discard(scope)
        if scope.cancelled_caught:
            raise Interrupted

    def interrupt(self) -> bool:
        """Ctrl-C: cancel the work of every open client; False when none is open."""
        self.interrupted = True
        for scope in self._scopes:
            scope.cancel()
        return bool(self._scopes)

    async def show(
        self,
        call: Callable[[Client], Awaitable[R]],
        to_json: Callable[[R], object],
        print_simple: Callable[[R], None],
    ) -> int:
        """Make one call and print its reply as json or in the simple form; the shape of
        most commands."""
        self.require_format("simple", "json")
        async with self.connect() as client:
            reply = await call(client)
        if self.write_out == "json":
            self.out.json(to_json(reply))
        else:
            print_simple(reply)
        return 0


def from_environment(args: argparse.Namespace) -> Context:
    return Context(settings_from(args, os.environ))
