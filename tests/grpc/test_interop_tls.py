"""TLS against grpcio's server: ALPN h2 with a custom CA, the server name checked, client
certificates, and the failures of an untrusted or mistaken peer (certificates from trustme)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from _pb import interop_pb2 as pb
from interop_support import (
    InteropServer,
    assert_channel_works,
    method,
    require_grpcio,
    stream_output,
)

from puregrpc_etcd import grpc as pg

if TYPE_CHECKING:
    import trustme

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    require_grpcio()
    import trustme

    return trustme.CA()


def start_tls_server(
    ca: trustme.CA, directory: Path, *, require_client_certificate: bool
) -> InteropServer:
    # Issued for "localhost" only, so that dialling 127.0.0.1 must fail the name check.
    certificate = ca.issue_cert("localhost")
    certificate.private_key_pem.write_to_path(str(directory / "server.key"))
    chain = b"".join(pem.bytes() for pem in certificate.cert_chain_pems)
    (directory / "server.pem").write_bytes(chain)
    arguments = [
        "--tls-cert",
        str(directory / "server.pem"),
        "--tls-key",
        str(directory / "server.key"),
    ]
    if require_client_certificate:
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        arguments += ["--client-ca", str(directory / "ca.pem")]
    server = InteropServer(*arguments)
    server.start()
    return server


@pytest.fixture(scope="module")
def tls_server(
    tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InteropServer]:
    server = start_tls_server(
        tls_ca, tmp_path_factory.mktemp("tls"), require_client_certificate=False
    )
    yield server
    server.kill()


@pytest.fixture(scope="module")
def mutual_tls_server(
    tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InteropServer]:
    server = start_tls_server(
        tls_ca, tmp_path_factory.mktemp("mtls"), require_client_certificate=True
    )
    yield server
    server.kill()


def client_context(
    trusted: trustme.CA | None = None, certificate: trustme.LeafCert | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    if trusted is not None:
        trusted.configure_trust(context)
    if certificate is not None:
        certificate.configure_cert(context)
    return context


async def expect_unavailable(
    endpoint: str, context: ssl.SSLContext | None, mentioning: str = ""
) -> None:
    with trio.fail_after(20):
        async with pg.Channel([endpoint], tls=context, connect_timeout=5.0) as channel:
            with pytest.raises(pg.RpcError) as caught:
                await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty, timeout=10.0)
    assert caught.value.code == pg.StatusCode.UNAVAILABLE
    assert mentioning in caught.value.details


async def test_calls_over_tls(tls_ca: trustme.CA, tls_server: InteropServer) -> None:
    endpoint = f"https://localhost:{tls_server.port}"
    with trio.fail_after(30):
        async with pg.Channel([endpoint], tls=client_context(tls_ca)) as channel:
            request = pb.SimpleRequest(response_size=MiB, payload=pb.Payload(body=bytes(MiB)))
            reply = await channel.unary_unary(method("UnaryCall"), request, pb.SimpleResponse)
            assert reply.request_payload_size == MiB
            assert len(reply.payload.body) == MiB
            sizes = [64 * 1024] * 64
            received, digest, server_digest = await stream_output(channel, sizes)
    assert received == sizes
    assert digest == server_digest


async def test_tls_option_applies_to_bare_endpoints(
    tls_ca: trustme.CA, tls_server: InteropServer
) -> None:
    with trio.fail_after(20):
        async with pg.Channel(
            [f"localhost:{tls_server.port}"], tls=client_context(tls_ca)
        ) as channel:
            await assert_channel_works(channel)


async def test_untrusted_server_certificate_is_refused(tls_server: InteropServer) -> None:
    await expect_unavailable(
        f"https://localhost:{tls_server.port}", client_context(), "certificate verify failed"
    )


async def test_server_name_is_checked(tls_ca: trustme.CA, tls_server: InteropServer) -> None:
    await expect_unavailable(
        f"https://127.0.0.1:{tls_server.port}", client_context(tls_ca), "certificate verify failed"
    )


async def test_plaintext_to_a_tls_server_fails(tls_server: InteropServer) -> None:
    await expect_unavailable(f"http://localhost:{tls_server.port}", None)


async def test_client_certificate(tls_ca: trustme.CA, mutual_tls_server: InteropServer) -> None:
    endpoint = f"https://localhost:{mutual_tls_server.port}"
    certificate = tls_ca.issue_cert("client.example")
    with trio.fail_after(20):
        async with pg.Channel([endpoint], tls=client_context(tls_ca, certificate)) as channel:
            await assert_channel_works(channel)
    await expect_unavailable(endpoint, client_context(tls_ca))
