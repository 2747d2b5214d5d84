"""Secrets stay secret before any I/O: a password in a malformed endpoint or URL never reaches
an error's text, repr, args or traceback; the loopback test behind the plaintext warning; the
ALPN check that lets a caller's ``ssl.SSLContext`` be used unchanged; ``tls=`` with ``http://``."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import traceback
import warnings

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd import grpc
from puregrpc_etcd._credentials import PlaintextCredentialsWarning, exposed_hosts, is_loopback
from puregrpc_etcd._endpoints import parse_endpoints, settings_from_env
from puregrpc_etcd.grpc.endpoints import redact_userinfo
from puregrpc_etcd.grpc.tls import (
    _alpn_of_client_hello,
    check_tls_option,
    offered_alpn,
    offering_h2,
)

# Each piece of each password is unique, so that finding any piece in a message is a leak.
PASSWORD = "Pw9Secret7Qx"
PIECES = ("Qx7Lurk", "Zr9Hide", "Vv3Mask")


def all_text(error: BaseException) -> str:
    """Everything an error shows: str, repr, args and the traceback, over its whole chain."""
    parts = []
    seen: BaseException | None = error
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    parts += traceback.format_exception(type(error), error, error.__traceback__)
    return "\n".join(parts)


def assert_hidden(error: BaseException, *secrets: str) -> None:
    text = all_text(error)
    for secret in secrets:
        assert secret not in text, text


MALFORMED_URLS = [
    f"etcd://user:{PASSWORD}@127.0.0.1:99999",  # bad port
    f"etcd://user:{PASSWORD}@127.0.0.1:port",
    f"etcd://user:{PASSWORD}@h:1/?bogus=1",  # unknown option
    f"etcd://user:{PASSWORD}@h:1/?dial_timeout=forever",  # bad value
    f"etcd://user:{PASSWORD}@h:1/?insecure_skip_tls_verify=maybe",
    f"etcd://user:{PASSWORD}@",  # empty host
    f"etcd://user:{PASSWORD}@,,",
    f"etcd://user:{PASSWORD}@h:1/path",
    f"etcds://user:{PASSWORD}@[::1",
    f"etcd://user:{PASSWORD}@::1:2379",
    f"foo://user:{PASSWORD}@h:1",  # unknown scheme
    f"unix://user:{PASSWORD}@h:1",
    f"http://user:{PASSWORD}@h:1",  # credentials in a plain endpoint
    f"user:{PASSWORD}@h:1",
    f"h0:1,http://user:{PASSWORD}@h:1,h2:1",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_malformed_urls_never_quote_the_password(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_endpoints(url)
    assert_hidden(caught.value, PASSWORD)
    assert "***" in str(caught.value) or "@" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        # Unescaped "/", "?", "," and "@" cut the password into what look like hosts and options.
        f"etcd://user:{PIECES[0]}/{PIECES[1]}@h:1",
        f"etcd://user:{PIECES[0]}?{PIECES[1]}@h:1",
        f"etcd://user:{PIECES[0]}?{PIECES[1]}&{PIECES[2]}@h:1",
        f"etcd://user:{PIECES[0]}?dial_timeout={PIECES[1]}@h:1",
        f"etcd://user:{PIECES[0]},{PIECES[1]}@h:99999",
        f"etcd://user:{PIECES[0]}@{PIECES[1]}@h:99999",
        f"etcd://user:{PIECES[0]}://{PIECES[1]}@h:port",
        f"{PIECES[0]}:{PIECES[1]},{PIECES[2]}@h:1",
        f"http://{PIECES[0]}:{PIECES[1]},{PIECES[2]}@h:1",
        f"{PIECES[0]}://{PIECES[1]}@h:1",
    ],
)
def test_a_password_cut_in_pieces_leaks_no_piece(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_endpoints(url)
    assert_hidden(caught.value, *PIECES)


def test_percent_encoded_passwords_stay_hidden_in_both_forms() -> None:
    encoded = "p%40ss%2Fw%3Frd-Kq4"
    with pytest.raises(ValueError) as caught:
        parse_endpoints(f"etcd://user:{encoded}@h:99999")
    assert_hidden(caught.value, encoded, "p@ss/w?rd-Kq4", "rd-Kq4")
    # Encoded right, it parses: the same password, decoded, and still out of the repr.
    settings = parse_endpoints(f"etcd://user:{encoded}@h:1")
    assert settings.password == "p@ss/w?rd-Kq4"
    assert "Kq4" not in repr(settings)


def test_endpoint_lists_and_the_environment_hide_credentials_too() -> None:
    for endpoints in ([f"http://user:{PASSWORD}@h:1"], ["h:1", f"u:{PASSWORD}@h:1"]):
        with pytest.raises(ValueError) as caught:
            parse_endpoints(endpoints)
        assert_hidden(caught.value, PASSWORD)
    with pytest.raises(ValueError) as caught:
        settings_from_env({"ETCDCTL_ENDPOINTS": f"etcd://u:{PASSWORD}@h:0"})
    assert_hidden(caught.value, PASSWORD)


def test_the_channel_hides_credentials_in_endpoints() -> None:
    with pytest.raises(ValueError) as caught:
        grpc.Channel([f"https://user:{PASSWORD}@h:1"])
    assert_hidden(caught.value, PASSWORD)
    assert "https://***@h:1" in str(caught.value)


async def test_connect_raises_before_io_without_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        async with etcd.connect(f"etcd://user:{PASSWORD}@127.0.0.1:99999"):
            pytest.fail("connected")
    assert_hidden(caught.value, PASSWORD)


def test_redaction_keeps_what_follows_the_last_at() -> None:
    assert redact_userinfo("etcd://u:p@h1,h2/?x=1") == "etcd://***@h1,h2/?x=1"
    assert redact_userinfo("u:p@h:1") == "***@h:1"
    assert redact_userinfo("h:1") == "h:1"
    assert redact_userinfo("u:p://x@h") == "***@h"  # not a scheme: it has a ":" in it
    assert redact_userinfo("Etcds://u:p@h") == "Etcds://***@h"
    assert redact_userinfo("user://pass@h") == "***@h"  # "user" is no scheme of ours


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.0.1", False),
        ("192.0.2.1", False),
        ("::2", False),
        ("etcd.example", False),
        ("localhost.example", False),
        ("128.0.0.1", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposed_hosts_are_the_non_loopback_ones_without_tls() -> None:
    endpoints = ["127.0.0.1:2379", "http://[::1]:1", "10.0.0.1:2379", "http://etcd.example:1"]
    assert exposed_hosts(endpoints, tls=False) == ["10.0.0.1", "etcd.example"]
    assert exposed_hosts(endpoints, tls=True) == []
    assert exposed_hosts(["localhost:2379"], tls=False) == []


async def test_plaintext_credentials_warn_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A password bound for a non-loopback host without TLS warns before the first dial: as an
    error, the warning stops the connection from being made at all."""
    dialled: list[object] = []

    def no_dialling(sock: socket.socket, address: object) -> None:
        # The guard sits under trio: whatever way the channel dials, no packet leaves.
        dialled.append(address)
        raise OSError("a test must not dial a non-loopback host")

    monkeypatch.setattr(socket.socket, "connect", no_dialling)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlaintextCredentialsWarning)
        with pytest.raises(PlaintextCredentialsWarning) as caught:
            async with etcd.connect("192.0.2.1:2379", username="u", password=PASSWORD):
                pytest.fail("connected")
    assert dialled == []
    assert "192.0.2.1" in str(caught.value)
    assert_hidden(caught.value, PASSWORD)


def test_tls_with_an_http_endpoint_is_refused() -> None:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    for tls in (True, context):
        with pytest.raises(ValueError, match="http://"):
            grpc.Channel(["http://h:1"], tls=tls)
        with pytest.raises(ValueError, match="http://"):
            grpc.Channel(["https://h:1"], tls=tls).set_endpoints(["https://h:1", "http://h:2"])
    grpc.Channel(["h:1", "https://h:2"], tls=context)  # no scheme: tls= decides


async def test_connect_refuses_tls_with_http_endpoints_before_io() -> None:
    # An https:// endpoint beside an http:// one would leave the latter quietly in plaintext.
    for endpoints, options in [
        ("http://127.0.0.1:1", {"tls": True}),
        ("https://127.0.0.1:1,http://127.0.0.2:1", {}),
    ]:
        with pytest.raises(ValueError, match="http://"):
            async with etcd.connect(endpoints, **options):  # type: ignore[arg-type]
                pytest.fail("connected")


def test_alpn_is_read_from_the_client_hello_without_changing_the_context() -> None:
    context = ssl.create_default_context()
    assert offered_alpn(context) == []
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert offered_alpn(context) == ["h2", "http/1.1"]
    assert offered_alpn(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is None
    tls12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_alpn_protocols(["h2"])
    assert offered_alpn(tls12) == ["h2"]


def test_a_context_without_h2_offers_it_only_while_wrapping() -> None:
    for theirs in ([], ["http/1.1"], ["h2", "http/1.1"]):
        context = ssl.create_default_context()
        if theirs:
            context.set_alpn_protocols(theirs)
        check_tls_option(context, [])  # accepted: h2 is added where our connections are made
        outgoing = ssl.MemoryBIO()
        with offering_h2(context):
            ours = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="example.test")
        assert offered_alpn(context) == theirs  # the caller's list, back at once
        with pytest.raises(ssl.SSLWantReadError):
            ours.do_handshake()
        offered = _alpn_of_client_hello(outgoing.read())
        assert offered is not None
        assert offered[0] == "h2"
        assert offered[1:] == [name for name in theirs if name != "h2"]
    with pytest.raises(TypeError):
        check_tls_option("yes", [])  # type: ignore[arg-type]


def test_a_refused_channel_option_raises_instead_of_hanging() -> None:
    # The channel refuses these before any I/O; connect() once waited forever for its own
    # shielded nursery after such a refusal, which no cancel scope of the caller can end: hence
    # a process of its own, killed if it hangs.
    code = (
        "import trio, puregrpc_etcd as etcd\n"
        "async def main():\n"
        "    async with etcd.connect('127.0.0.1:1', keepalive_interval=0):\n"
        "        pass\n"
        "try:\n"
        "    trio.run(main)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.startswith("refused: keepalive_interval"), done.stdout + done.stderr
