"""The channel's TLS record layer (``grpc.tls.TlsStream``) against trio's ``SSLStream`` as the
server, over a loopback socket pair: data both ways in order and within ``max_bytes``, ALPN,
the host name check, a peer that ends or garbles the connection, and ``close_notify`` on close."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import pytest
import trio
import trustme

from puregrpc_etcd.grpc import RpcError
from puregrpc_etcd.grpc.tls import TlsStream, open_tls

CA = trustme.CA()
SERVER_CERT = CA.issue_cert("server.example")


def server_context(alpn: tuple[str, ...] | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    SERVER_CERT.configure_cert(context)
    if alpn is not None:
        context.set_alpn_protocols(list(alpn))
    return context


def client_context(*alpn: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    CA.configure_trust(context)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


_sockets: list[trio.socket.SocketType] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    """Each test's socket pairs are closed after it, whatever state its streams were left in
    (the suite turns ResourceWarnings into errors). After the test's trio run has ended, so a
    socket is detached from trio and its descriptor closed (trio's ``close`` needs a run)."""
    yield
    while _sockets:
        sock = _sockets.pop()
        if sock.fileno() != -1:
            os.close(sock.detach())


def socket_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    left, right = trio.socket.socketpair()
    _sockets.extend((left, right))
    return left, right


async def pair(
    nursery: trio.Nursery,
    *,
    client: ssl.SSLContext | None = None,
    host: str = "server.example",
    alpn: tuple[str, ...] | None = ("h2",),
) -> tuple[TlsStream, trio.SSLStream[trio.SocketStream]]:
    left, right = socket_pair()
    server = trio.SSLStream(trio.SocketStream(right), server_context(alpn), server_side=True)

    async def handshake() -> None:
        try:
            await server.do_handshake()
        except trio.BrokenResourceError:
            pass  # the client refused the server: what some tests check

    nursery.start_soon(handshake)
    stream = await open_tls(trio.SocketStream(left), client or client_context("h2"), host)
    return stream, server


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int, max_bytes: int) -> bytes:
    chunks = []
    received = 0
    while received < size:
        chunk = await stream.receive_some(max_bytes)
        assert chunk, "end of stream before all the data"
        assert len(chunk) <= max_bytes
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


async def test_data_both_ways_within_max_bytes() -> None:
    payload = bytes(range(256)) * 12_000  # 3 MB: many records, and reads cut inside them
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            stream, server = await pair(nursery)
            assert stream.selected_alpn_protocol() == "h2"
            nursery.start_soon(server.send_all, payload)
            assert await receive_exactly(stream, len(payload), 10_000) == payload
            nursery.start_soon(stream.send_all, payload)
            assert await receive_exactly(server, len(payload), 65_536) == payload
            await stream.send_all(b"")  # nothing to send: no record, no end of stream
            await stream.send_all(b"last")
            assert await server.receive_some() == b"last"


async def test_concurrent_writes_stay_whole_and_in_order() -> None:
    size, count = 20_000, 30
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            stream, server = await pair(nursery)

            async def write(tag: bytes) -> None:
                for _ in range(count):
                    await stream.send_all(tag * size)

            nursery.start_soon(write, b"a")
            nursery.start_soon(write, b"b")
            data = await receive_exactly(server, 2 * size * count, 1 << 20)
    runs = []
    position = 0
    while position < len(data):
        end = position
        while end < len(data) and data[end] == data[position]:
            end += 1
        runs.append(end - position)
        position = end
    assert all(run % size == 0 for run in runs), runs
    assert data.count(b"a") == data.count(b"b") == size * count


async def test_a_server_choosing_another_protocol_is_refused() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            # The caller's context offers http/1.1 too; the server picks it.
            with pytest.raises(RpcError, match="not h2"):
                await pair(nursery, client=client_context("http/1.1"), alpn=("http/1.1",))
            nursery.cancel_scope.cancel()


async def test_a_server_selecting_no_protocol_is_refused() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            with pytest.raises(RpcError, match="no ALPN protocol; gRPC needs h2"):
                await pair(nursery, alpn=None)
            nursery.cancel_scope.cancel()


async def test_the_host_name_is_checked() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            with pytest.raises(ssl.SSLCertVerificationError, match=r"other\.example"):
                await pair(nursery, host="other.example")
            nursery.cancel_scope.cancel()


async def test_a_host_name_ssl_refuses_closes_the_transport() -> None:
    """A name the ssl module will not put in SNI (an empty label) fails as ValueError before
    any byte is sent, and the transport is closed rather than leaked."""
    left, _ = socket_pair()
    transport = trio.SocketStream(left)
    with pytest.raises(ValueError, match="label empty"):
        await open_tls(transport, client_context("h2"), ".example")
    assert transport.socket.fileno() == -1


async def test_an_end_in_the_handshake_is_a_broken_stream() -> None:
    left, right = socket_pair()
    peer = trio.SocketStream(right)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def hang_up() -> None:
                hello = await peer.receive_some()
                assert hello[:1] == b"\x16"  # a handshake record: the ClientHello
                await peer.aclose()

            nursery.start_soon(hang_up)
            with pytest.raises(trio.BrokenResourceError, match="TLS handshake"):
                await open_tls(trio.SocketStream(left), client_context("h2"), "server.example")


async def test_garbage_after_the_handshake_is_a_tls_error() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stream, server = await pair(nursery)
            # An application-data record whose contents are not what the key encrypts.
            await server.transport_stream.send_all(b"\x17\x03\x03\x00\x20" + bytes(32))
            with pytest.raises(ssl.SSLError):
                await stream.receive_some(1000)


async def test_close_sends_close_notify_even_when_forced() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stream, server = await pair(nursery)
            await stream.send_all(b"bye")
            assert await server.receive_some() == b"bye"
            await trio.aclose_forcefully(stream)  # as a connection is closed
            # An SSLStream that is not https_compatible reports a truncated end as an error;
            # close_notify is a clean end of stream.
            assert await server.receive_some() == b""
            with pytest.raises(trio.ClosedResourceError):
                await stream.transport.send_all(b"x")


async def test_the_peers_close_notify_ends_the_stream() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stream, server = await pair(nursery)
            await server.send_all(b"last words")
            await server.aclose()
            assert await receive_exactly(stream, 10, 100) == b"last words"
            assert await stream.receive_some(100) == b""
            assert await stream.receive_some(100) == b""
