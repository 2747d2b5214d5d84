"""Endpoint strings as the channel accepts them."""

from __future__ import annotations

import pytest

from puregrpc_etcd.grpc.endpoints import Endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2379", Endpoint("127.0.0.1:2379", "127.0.0.1", 2379, None)),
        ("http://etcd-1:2379", Endpoint("http://etcd-1:2379", "etcd-1", 2379, False)),
        ("https://etcd-1:2379/", Endpoint("https://etcd-1:2379/", "etcd-1", 2379, True)),
        ("HTTPS://example.org", Endpoint("HTTPS://example.org", "example.org", 443, True)),
        ("http://example.org", Endpoint("http://example.org", "example.org", 80, False)),
        ("[::1]:2379", Endpoint("[::1]:2379", "::1", 2379, None)),
        ("https://[fe80::1]:1", Endpoint("https://[fe80::1]:1", "fe80::1", 1, True)),
    ],
)
def test_valid_endpoints(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


def test_authority_brackets_ipv6() -> None:
    assert parse_endpoint("[::1]:2379").authority == "[::1]:2379"
    assert parse_endpoint("https://h").authority == "h:443"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host",
        "::1:2379",
        "[::1",
        "[::1]x",
        "unix:///tmp/sock",
        "ftp://h:1",
        "h:0",
        "h:65536",
        "h:port",
        "http://user@h:1",
        "http://h:1/path",
        ":2379",
    ],
)
def test_invalid_endpoints(text: str) -> None:
    with pytest.raises(ValueError, match=r"endpoint|port|scheme"):
        parse_endpoint(text)


def test_endpoint_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        parse_endpoint(b"h:1")  # type: ignore[arg-type]
