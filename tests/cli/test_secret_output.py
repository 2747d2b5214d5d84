"""The command never prints a password: not for a malformed endpoint URL (flag or
``ETCDCTL_ENDPOINTS``), a failed connection, or a mistyped password flag, in process or as
``python -m puregrpc_etcd``."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from cli_support import COMMAND_TIMEOUT, Runner, command

PASSWORD = "cli-Pw5Secret8Zt"
PIECES = ("Jq4Part", "Wm8Part")


@pytest.mark.parametrize(
    "args",
    [
        [f"--endpoints=etcd://user:{PASSWORD}@127.0.0.1:99999"],
        [f"--endpoints=http://user:{PASSWORD}@127.0.0.1:1"],
        [f"--endpoints=127.0.0.1:1,user:{PASSWORD}@127.0.0.1:2"],
        [f"--endpoints=foo://user:{PASSWORD}@127.0.0.1:1"],
        [f"--endpoints=etcd://user:{PIECES[0]}?{PIECES[1]}@127.0.0.1:1"],
        [f"--endpoints=http://user:{PIECES[0]},{PIECES[1]}@127.0.0.1:1"],
        [f"--pasword={PASSWORD}"],  # a mistyped flag
        ["--password-typo", PASSWORD],
    ],
)
def test_bad_endpoints_and_flags_never_print_the_password(cli: Runner, args: list[str]) -> None:
    result = cli(*args, "get", "k", endpoint=False)
    assert result.code != 0
    assert result.error.startswith("Error: "), result.error
    for secret in (PASSWORD, *PIECES):
        assert secret not in result.error + result.text


def test_endpoints_from_the_environment(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", f"http://root:{PASSWORD}@127.0.0.1:1")
    result = cli("get", "k", endpoint=False)
    assert result.code != 0
    assert "***@127.0.0.1:1" in result.error
    assert PASSWORD not in result.error + result.text


def test_a_failed_connection_does_not_print_the_password(cli: Runner, closed_endpoint: str) -> None:
    for user in ([f"--user=root:{PASSWORD}"], ["--user=root", f"--password={PASSWORD}"]):
        result = cli(f"--endpoints={closed_endpoint}", "--dial-timeout=1s", *user, "get", "k")
        assert result.code != 0
        assert "Error: " in result.error
        assert PASSWORD not in result.error + result.text


def test_the_real_process_prints_no_password() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    done = subprocess.run(
        command(f"--endpoints=etcd://root:{PASSWORD}@127.0.0.1:99999", "get", "k"),
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env=environment,
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode != 0
    assert output.startswith("Error: ")
    assert "Traceback" not in output
    assert PASSWORD not in output


@pytest.fixture
def closed_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


# The command runs in this process, under pytest's filters (warnings are errors): this test is
# about how the command shows the warning, so it must be shown, as it is outside pytest.
@pytest.mark.filterwarnings("default::puregrpc_etcd.PlaintextCredentialsWarning")
def test_plaintext_credentials_to_another_host_warn_in_one_line(
    cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialled: list[object] = []

    def no_dialling(sock: socket.socket, address: object) -> None:
        dialled.append(address)  # under trio: no packet leaves, whatever way it dials
        raise OSError("a test must not dial a non-loopback host")

    monkeypatch.setattr(socket.socket, "connect", no_dialling)
    result = cli(
        "--endpoints=192.0.2.1:2379", f"--user=root:{PASSWORD}", "get", "k", endpoint=False
    )
    assert result.code != 0
    warning, error = result.error.splitlines()
    assert warning.startswith("Warning: ")
    assert "192.0.2.1" in warning
    assert error.startswith("Error: ")
    assert PASSWORD not in result.error + result.text
    assert all(address[0] == "192.0.2.1" for address in dialled)  # type: ignore[index]
