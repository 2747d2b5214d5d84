"""The command over TLS: --cacert (and ETCDCTL_CACERT), --insecure-skip-tls-verify, and an
untrusted server as one error line; etcdctl on the same HTTPS server for comparison."""

from __future__ import annotations

from typing import Iterator

import pytest
import trustme
from cli_support import Runner

from puregrpc_etcd.testing import EtcdServer


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    directory = tmp_path_factory.mktemp("cli-tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: directory / name for name in ("ca.pem", "server.pem", "server-key.pem")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    server_cert.cert_chain_pems[0].write_to_path(paths["server.pem"])
    server_cert.private_key_pem.write_to_path(paths["server-key.pem"])
    args = ["--cert-file", str(paths["server.pem"]), "--key-file", str(paths["server-key.pem"])]
    return str(paths["ca.pem"]), args


@pytest.fixture(scope="module")
def server(ca_file: tuple[str, list[str]]) -> Iterator[EtcdServer]:
    with EtcdServer(scheme="https", args=ca_file[1]) as etcd_server:
        yield etcd_server


def test_tls_with_a_ca_bundle(
    cli: Runner, server: EtcdServer, ca_file: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.endpoints[0]
    ca = ca_file[0]
    assert cli(f"--endpoints={url}", f"--cacert={ca}", "put", "k", "v", endpoint=False).code == 0
    ours = cli(f"--endpoints={url}", f"--cacert={ca}", "get", "k", "-w", "json", endpoint=False)
    cli.endpoint = url
    theirs = cli.etcdctl(f"--cacert={ca}", "get", "k", "-w", "json")
    assert ours.code == theirs.code == 0
    assert ours.out == theirs.out
    skip = cli(f"--endpoints={url}", "--insecure-skip-tls-verify", "get", "k", "--print-value-only",
               endpoint=False)  # fmt: skip
    assert skip.out == b"v\n"
    monkeypatch.setenv("ETCDCTL_CACERT", ca)
    assert cli(f"--endpoints={url}", "get", "k", "--print-value-only", endpoint=False).out == b"v\n"


def test_an_etcds_url_carries_the_tls_settings(
    cli: Runner, server: EtcdServer, ca_file: tuple[str, list[str]]
) -> None:
    """``etcds://host/?cacert=...``: TLS and the CA bundle from the URL, as connect() takes it."""
    authority = server.endpoints[0].split("://", 1)[1]
    assert cli(f"--endpoints={server.endpoints[0]}", f"--cacert={ca_file[0]}", "put", "u", "w",
               endpoint=False).code == 0  # fmt: skip
    url = f"etcds://{authority}/?cacert={ca_file[0]}&dial_timeout=2s"
    ours = cli(f"--endpoints={url}", "get", "u", "--print-value-only", endpoint=False)
    assert (ours.code, ours.out, ours.err) == (0, b"w\n", b"")
    untrusted = cli(f"--endpoints=etcds://{authority}", "get", "u", endpoint=False)
    assert untrusted.code in (1, 2)
    assert untrusted.error.startswith("Error: ")
    plaintext = cli(f"--endpoints=etcd://{authority}/?dial_timeout=1s", "get", "u", endpoint=False)
    assert plaintext.code != 0  # an etcd:// URL speaks plaintext to a TLS port
    assert plaintext.error.startswith("Error: ")


def test_an_untrusted_server_is_one_error_line(cli: Runner, server: EtcdServer) -> None:
    result = cli(f"--endpoints={server.endpoints[0]}", "get", "k", endpoint=False)
    assert result.code in (1, 2)
    assert result.error.startswith("Error: ")
    assert result.error.count("\n") == 1
    missing = cli(f"--endpoints={server.endpoints[0]}", "--cacert=/no/such/ca.pem", "get", "k",
                  endpoint=False)  # fmt: skip
    cli.endpoint = server.endpoints[0]
    assert (missing.code, missing.err) == (
        128,
        b"Error: open /no/such/ca.pem: no such file or directory\n",
    )
    real = cli.etcdctl("--cacert=/no/such/ca.pem", "get", "k")
    assert (real.code, real.err) == (missing.code, missing.err)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--cacert=/etc/passwd"], "--cacert /etc/passwd"),  # not a certificate
        (["--cacert=/"], "open /: is a directory"),
        (["--cert=/no/cert.pem", "--key=/no/key.pem"], "open /no/cert.pem"),
        (["--cert=/etc/passwd", "--key=/etc/passwd"], "--cert /etc/passwd and --key /etc/passwd"),
        (["--key=/etc/passwd"], "--key /etc/passwd needs --cert"),
    ],
)
def test_tls_file_errors_name_the_file(
    cli: Runner, server: EtcdServer, flags: list[str], named: str
) -> None:
    result = cli(f"--endpoints={server.endpoints[0]}", *flags, "get", "k", endpoint=False)
    assert result.code == 128
    assert result.error.startswith("Error: ")
    assert named in result.error
    assert result.error.count("\n") == 1
