"""Credentials on the wire: the warning when a password or auth token would cross a network in
plaintext, and the loopback test behind it. (Keeping them out of messages is
``grpc.endpoints.redact_userinfo``'s job.)
"""

from __future__ import annotations

import ipaddress
import warnings
from typing import TYPE_CHECKING, Iterable

from puregrpc_etcd.grpc.endpoints import parse_endpoint

if TYPE_CHECKING:
    from puregrpc_etcd._caller import Caller

__all__ = ["PlaintextCredentialsWarning", "exposed_hosts", "is_loopback", "warn_if_exposed"]


class PlaintextCredentialsWarning(UserWarning):
    """A password or auth token is about to be sent without TLS to a host that is not this
    machine (anyone on the path can read it). Loopback addresses never warn."""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (also IPv4-mapped): hosts whose traffic never
    leaves the machine. Any other name may resolve anywhere, so it is not loopback."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def exposed_hosts(endpoints: Iterable[str], *, tls: bool) -> list[str]:
    """The hosts among ``endpoints`` that calls would reach in plaintext over a network.

    ``tls`` is whether the client dials with TLS: then every endpoint uses it (an ``http://``
    endpoint with TLS is refused before this matters), else every endpoint is plaintext.
    """
    if tls:
        return []
    hosts: list[str] = []
    for text in endpoints:
        host = parse_endpoint(text).host
        if not is_loopback(host) and host not in hosts:
            hosts.append(host)
    return hosts


def warn_if_exposed(caller: Caller, endpoints: Iterable[str], *, stacklevel: int) -> None:
    """Warn (once per client) when the client's password or token would go in plaintext to a
    host that is not loopback. Called before any connection to those endpoints is made."""
    if caller.username is None or caller.plaintext_warned:
        return
    hosts = exposed_hosts(endpoints, tls=caller.tls)
    if hosts:
        caller.plaintext_warned = True
        warnings.warn(
            PlaintextCredentialsWarning(
                f"the password and auth token of user {caller.username!r} go without TLS to "
                f"{', '.join(hosts)}: use https:// endpoints (or tls=)"
            ),
            stacklevel=stacklevel + 1,
        )
