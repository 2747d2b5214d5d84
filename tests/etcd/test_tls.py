"""TLS end to end against a real etcd serving HTTPS, with certificates made by ``trustme``:
server authentication, client certificates (``--client-cert-auth``), and a wrong CA, an expired
certificate, a wrong host name and a server stalling mid-handshake failing with an error that
names the problem."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trustme

import puregrpc_etcd as etcd
from puregrpc_etcd.cluster import serving_endpoints, sync_endpoints
from puregrpc_etcd.errors import ConnectionFailedError, EtcdError
from puregrpc_etcd.grpc.tls import offered_alpn
from puregrpc_etcd.testing import EtcdServer


class Certificates:
    """A CA, a server certificate for 127.0.0.1 (etcd checks IP SANs) and a client one, on disk."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("client.example", common_name="root")
        self.ca_file = directory / "ca.pem"
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server-key.pem"
        self.client_cert = directory / "client.pem"
        self.client_key = directory / "client-key.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server.cert_chain_pems[0].write_to_path(self.server_cert)
        self.server.private_key_pem.write_to_path(self.server_key)
        self.client.cert_chain_pems[0].write_to_path(self.client_cert)
        self.client.private_key_pem.write_to_path(self.client_key)

    def server_args(self, *, client_cert_auth: bool = False) -> list[str]:
        args = ["--cert-file", str(self.server_cert), "--key-file", str(self.server_key)]
        if client_cert_auth:
            args += ["--client-cert-auth", "--trusted-ca-file", str(self.ca_file)]
        return args

    def context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_client_cert:
            self.client.configure_cert(context)
        context.set_alpn_protocols(["h2"])
        return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[EtcdServer]:
    with EtcdServer(scheme="https", args=certificates.server_args()) as started:
        yield started


@pytest.fixture(scope="module")
def mutual_tls_server(certificates: Certificates) -> Iterator[EtcdServer]:
    # The harness's health probe has no client certificate, so wait for it with our client.
    server = EtcdServer(scheme="https", args=certificates.server_args(client_cert_auth=True))
    try:
        server.spawn()
        trio.run(wait_until_serving, server, certificates.context(with_client_cert=True))
        yield server
    finally:
        server.close()


async def wait_until_serving(server: EtcdServer, context: ssl.SSLContext) -> None:
    with trio.fail_after(30):
        for _ in range(300):
            try:
                async with etcd.connect(server.endpoints, tls=context, connect_timeout=2) as c:
                    await c.get("ready?")
                    return
            except EtcdError:
                await trio.sleep(0.1)
    pytest.fail(f"{server!r} did not serve over mutual TLS:\n{server.log_tail()}")


async def test_tls_with_the_right_ca(tls_server: EtcdServer, certificates: Certificates) -> None:
    async with etcd.connect(tls_server.endpoints, tls=certificates.context()) as client:
        await client.put("tls/key", "over TLS")
        assert await client.get_value("tls/key") == b"over TLS"
        status = await client.maintenance.status(tls_server.client_url)
        assert status.is_leader
        members = await client.cluster.members()
        assert members[0].client_urls == (tls_server.client_url,)


async def test_tls_from_an_etcds_url(tls_server: EtcdServer, certificates: Certificates) -> None:
    url = f"etcds://{tls_server.endpoint}/?cacert={certificates.ca_file}"
    async with etcd.connect(url) as client:
        await client.put("tls/url", "etcds")
        assert await client.get_value("tls/url") == b"etcds"


async def test_tls_with_a_wrong_ca_fails_clearly(tls_server: EtcdServer) -> None:
    stranger = trustme.CA()
    context = ssl.create_default_context()
    stranger.configure_trust(context)
    context.set_alpn_protocols(["h2"])
    for tls in (context, True):
        with trio.fail_after(30), pytest.raises(ConnectionFailedError) as failed:
            async with etcd.connect(tls_server.endpoints, tls=tls, connect_timeout=3) as client:
                await client.get("never")
        message = str(failed.value).lower()
        assert "certificate" in message or "tls" in message or "ssl" in message, message


async def test_plaintext_against_tls_fails_clearly(tls_server: EtcdServer) -> None:
    with trio.fail_after(30), pytest.raises(EtcdError):
        async with etcd.connect(tls_server.endpoint, connect_timeout=3) as client:
            await client.get("never", timeout=3)


async def test_client_certificate(
    mutual_tls_server: EtcdServer, certificates: Certificates
) -> None:
    context = certificates.context(with_client_cert=True)
    async with etcd.connect(mutual_tls_server.endpoints, tls=context) as client:
        await client.put("mtls/key", "with a client certificate")
        assert await client.get_value("mtls/key") == b"with a client certificate"
    url = (
        f"etcds://{mutual_tls_server.endpoint}/?cacert={certificates.ca_file}"
        f"&cert={certificates.client_cert}&key={certificates.client_key}"
    )
    async with etcd.connect(url) as client:
        assert await client.get_value("mtls/key") == b"with a client certificate"


async def test_client_certificate_required(
    mutual_tls_server: EtcdServer, certificates: Certificates
) -> None:
    with trio.fail_after(30), pytest.raises(EtcdError):
        async with etcd.connect(
            mutual_tls_server.endpoints, tls=certificates.context(), connect_timeout=3
        ) as client:
            await client.get("never", timeout=3)


async def test_client_certificate_common_name_is_the_auth_user(
    mutual_tls_server: EtcdServer, certificates: Certificates
) -> None:
    # The client certificate's CN is "root": with auth on, etcd takes it as the user, so the
    # client needs no password and no token.
    context = certificates.context(with_client_cert=True)
    async with etcd.connect(mutual_tls_server.endpoints, tls=context) as client:
        await client.auth.user_add("root", "unused-password-Vb19")
        await client.auth.user_grant_role("root", "root")
        await client.auth.enable()
        try:
            assert (await client.auth.status()).enabled
            await client.put("mtls/as-root", "by certificate")
            assert "root" in await client.auth.user_list()
        finally:
            await client.auth.disable()
        assert not (await client.auth.status()).enabled


def alpn_and_verification(context: ssl.SSLContext) -> tuple[object, ...]:
    return (
        offered_alpn(context),
        context.verify_mode,
        context.check_hostname,
        context.verify_flags,
        context.options,
        context.minimum_version,
        context.maximum_version,
        # (not get_ca_certs(): OpenSSL adds the system CAs it looks up while verifying)
    )


async def test_the_callers_context_is_used_unchanged(
    tls_server: EtcdServer, certificates: Certificates
) -> None:
    context = certificates.context()
    context.set_alpn_protocols(["h2", "http/1.1"])  # theirs: kept, h2 is what etcd picks
    before = alpn_and_verification(context)
    async with etcd.connect(tls_server.endpoints, tls=context) as client:
        await client.put("tls/unchanged", "yes")
        await client.maintenance.status(tls_server.client_url)  # a second channel, same context
    assert alpn_and_verification(context) == before
    # A context offering no ALPN, or not h2, as ssl.create_default_context() makes them: h2 is
    # offered on our connections only, and the caller's context still offers what it did.
    for theirs in ([], ["http/1.1"]):
        bare = ssl.create_default_context()
        certificates.ca.configure_trust(bare)
        if theirs:
            bare.set_alpn_protocols(theirs)
        before = alpn_and_verification(bare)
        async with etcd.connect(tls_server.endpoints, tls=bare) as client:
            await client.put("tls/bare", "h2 offered for us")
            await client.maintenance.status(tls_server.client_url)
        assert alpn_and_verification(bare) == before
        assert offered_alpn(bare) == theirs


@pytest.fixture(scope="module")
def dual_scheme_server(certificates: Certificates) -> Iterator[EtcdServer]:
    """One member serving TLS and, on a second port, plaintext; it advertises both URLs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    server = EtcdServer(scheme="https", args=certificates.server_args())
    urls = f"{server.client_url},http://127.0.0.1:{http_port}"
    server.args += ["--listen-client-urls", urls, "--advertise-client-urls", urls]
    with server:
        yield server


async def test_endpoint_sync_keeps_each_client_on_its_own_scheme(
    dual_scheme_server: EtcdServer, certificates: Certificates
) -> None:
    server = dual_scheme_server
    async with etcd.connect(server.endpoints, tls=certificates.context()) as client:
        (member,) = await client.cluster.members()
        assert {url.split(":")[0] for url in member.client_urls} == {"http", "https"}
        await sync_endpoints(client._caller)
        assert client._caller.channel.endpoints == [server.client_url]
        http_url = next(url for url in member.client_urls if url.startswith("http://"))
        # The leader lookup of move_leader picks the same way.
        assert serving_endpoints([member], tls=True) == [server.client_url]
    async with etcd.connect(http_url, auto_sync_interval=0.05) as plain:
        await sync_endpoints(plain._caller)
        assert plain._caller.channel.endpoints == [http_url]
        await trio.sleep(0.2)  # the background task, a few rounds
        assert plain._caller.channel.endpoints == [http_url]
        await plain.put("tls/plain", "over http")


def serve_with(certificate: trustme.LeafCert, directory: Path) -> EtcdServer:
    """An etcd serving TLS with ``certificate`` (issued by the shared test CA)."""
    cert, key = directory / "server.pem", directory / "server-key.pem"
    certificate.cert_chain_pems[0].write_to_path(cert)
    certificate.private_key_pem.write_to_path(key)
    return EtcdServer(scheme="https", args=["--cert-file", str(cert), "--key-file", str(key)])


async def expect_connection_failure(endpoints: list[str], tls: ssl.SSLContext) -> str:
    with trio.fail_after(30), pytest.raises(ConnectionFailedError) as failed:
        async with etcd.connect(endpoints, tls=tls, connect_timeout=3) as client:
            await client.get("never")
    return str(failed.value)


async def test_an_expired_server_certificate_is_refused(
    certificates: Certificates, tmp_path: Path
) -> None:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    expired = certificates.ca.issue_cert(
        "127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=1)
    )
    with serve_with(expired, tmp_path) as server:
        message = await expect_connection_failure(server.endpoints, certificates.context())
    assert "certificate has expired" in message, message


async def test_the_server_name_is_checked_and_can_be_skipped(
    certificates: Certificates, tmp_path: Path
) -> None:
    # Valid and trusted, but for another name than the one dialled (127.0.0.1).
    elsewhere = certificates.ca.issue_cert("etcd.example")
    with serve_with(elsewhere, tmp_path) as server:
        message = await expect_connection_failure(server.endpoints, certificates.context())
        assert "mismatch" in message, message
        assert "127.0.0.1" in message, message
        url = f"etcds://{server.endpoint}/?insecure_skip_tls_verify=true"
        async with etcd.connect(url) as client:
            await client.put("tls/unverified", "skipped")
            assert await client.get_value("tls/unverified") == b"skipped"


async def test_a_server_that_stalls_mid_handshake_times_out(
    tls_server: EtcdServer, certificates: Certificates
) -> None:
    """A relay to etcd that passes the ClientHello on but only the first bytes of the reply:
    the handshake has begun and never ends. The connect timeout ends it, and says where."""
    forwarded: list[int] = []
    host, port = tls_server.endpoint.rsplit(":", 1)

    async def relay(client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream(host, int(port)) as server:
            hello = await client.receive_some()
            assert hello[:1] == b"\x16"  # a TLS handshake record
            await server.send_all(hello)
            reply = await server.receive_some()
            forwarded.append(len(reply))
            await client.send_all(reply[:40])  # part of the ServerHello, then silence
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, relay, 0, host="127.0.0.1"))
        relay_port = listeners[0].socket.getsockname()[1]
        started = trio.current_time()
        with trio.fail_after(20), pytest.raises(ConnectionFailedError) as failed:
            async with etcd.connect(
                f"127.0.0.1:{relay_port}", tls=certificates.context(), connect_timeout=1
            ) as client:
                await client.get("never", timeout=5)
        assert trio.current_time() - started < 10
        nursery.cancel_scope.cancel()
    assert "TLS handshake not finished within 1 s" in str(failed.value), failed.value
    assert forwarded, "the relay never heard from etcd"
    assert forwarded[0] > 40  # etcd did answer: the stall was the relay's
