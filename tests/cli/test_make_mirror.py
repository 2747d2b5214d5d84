"""``make-mirror`` between real etcd servers, side by side with etcdctl's: the copy, the changes
after it, the prefixes, ``--max-txn-ops``, ``--rev``, a destination restart, and Ctrl-C."""

from __future__ import annotations

import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import trio
import trio.testing
import trustme
from cli_support import COMMAND_TIMEOUT, Runner, command, reap

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool
from puregrpc_etcd.txn import Op

WAIT = 30.0


@pytest.fixture(scope="module")
def destinations() -> Iterator[tuple[EtcdServer, EtcdServer]]:
    """Two destination servers: one for our command, one for etcdctl's."""
    with EtcdServer() as ours, EtcdServer() as theirs:
        yield ours, theirs


def contents(endpoint: str, prefix: str = "") -> dict[bytes, bytes]:
    async def read() -> dict[bytes, bytes]:
        async with etcd.connect(endpoint) as client:
            return {key: kv.value for key, kv in (await client.get_prefix(prefix)).items()}

    return trio.run(read)


def mod_revisions(endpoint: str, prefix: str) -> set[int]:
    async def read() -> set[int]:
        async with etcd.connect(endpoint) as client:
            return {kv.mod_revision for kv in (await client.get_prefix(prefix)).values()}

    return trio.run(read)


def wait_until_equal(endpoint: str, prefix: str, expected: dict[bytes, bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while contents(endpoint, prefix) != expected:
        assert time.monotonic() < deadline, (contents(endpoint, prefix), expected)
        time.sleep(0.1)


def write(endpoint: str, *ops: Op) -> int:
    """One source transaction; returns its revision."""

    async def run() -> int:
        async with etcd.connect(endpoint) as client:
            return (await client.txn(success=ops)).header.revision

    return trio.run(run)


def start(args: list[str], *, etcdctl: bool = False) -> subprocess.Popen[bytes]:
    argv = [find_etcd_tool("etcdctl"), *args] if etcdctl else command(*args)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    return process.returncode, out.decode(), err.decode()


def test_copy_then_changes_as_etcdctl(
    server: EtcdServer, destinations: tuple[EtcdServer, EtcdServer], prefix: str
) -> None:
    ours_dest, their_dest = destinations
    source = server.endpoint
    write(source, *(Op.put(f"{prefix}a/{i}", f"v{i}") for i in range(5)), Op.put(f"{prefix}b", "x"))
    args = ["--prefix", f"{prefix}a/", "--dest-prefix", f"{prefix}m/"]
    ours = start([f"--endpoints={source}", "make-mirror", *args, ours_dest.endpoint])
    theirs = start(
        [f"--endpoints={source}", "make-mirror", *args, their_dest.endpoint], etcdctl=True
    )
    try:
        copied = {f"{prefix}m/{i}".encode(): f"v{i}".encode() for i in range(5)}
        wait_until_equal(ours_dest.endpoint, prefix, copied)
        wait_until_equal(their_dest.endpoint, prefix, copied)
        write(source, Op.put(f"{prefix}a/9", "new"))
        write(source, Op.delete(f"{prefix}a/0"))
        write(
            source, *(Op.put(f"{prefix}a/{i}", "txn") for i in (1, 2, 3)), Op.put(f"{prefix}c", "y")
        )
        expected = contents(their_dest.endpoint, prefix)
        wait_until_equal(their_dest.endpoint, prefix, {
            f"{prefix}m/1".encode(): b"txn", f"{prefix}m/2".encode(): b"txn",
            f"{prefix}m/3".encode(): b"txn", f"{prefix}m/4".encode(): b"v4",
            f"{prefix}m/9".encode(): b"new",
        })  # fmt: skip
        expected = contents(their_dest.endpoint, prefix)
        wait_until_equal(ours_dest.endpoint, prefix, expected)
        # One destination transaction per source transaction, as etcdctl writes them.
        assert len(mod_revisions(ours_dest.endpoint, f"{prefix}m/")) == len(
            mod_revisions(their_dest.endpoint, f"{prefix}m/")
        )
    finally:
        code, out, err = interrupt(ours)
        reap(theirs)
    assert code == 0, err
    # 5 copied, then a put, a delete and 3 puts: what etcdctl prints every 30 s, printed once
    # more on the way out.
    assert out.splitlines()[-1] == "10"
    assert "Traceback" not in err


def test_no_dest_prefix_and_max_txn_ops(
    cli: Runner, server: EtcdServer, destinations: tuple[EtcdServer, EtcdServer], prefix: str
) -> None:
    dest = destinations[0].endpoint
    source = server.endpoint
    args = ["make-mirror", "--prefix", f"{prefix}src/", "--no-dest-prefix", "--max-txn-ops", "2"]
    ours = start([f"--endpoints={source}", *args, dest])
    try:
        # Once this arrived, the copy is over: what follows is a change.
        write(source, Op.put(f"{prefix}src/{prefix}ready", ""))
        wait_until_equal(dest, prefix, {f"{prefix}ready".encode(): b""})
        write(source, *(Op.put(f"{prefix}src/{prefix}k{i}", str(i)) for i in range(5)))
        expected = {f"{prefix}k{i}".encode(): str(i).encode() for i in range(5)}
        wait_until_equal(dest, f"{prefix}k", expected)
    finally:
        code, _, err = interrupt(ours)
    assert code == 0, err
    # Five puts of one source revision, in transactions of at most two: three revisions.
    assert len(mod_revisions(dest, f"{prefix}k")) == 3
    both = cli("make-mirror", "--dest-prefix", "x", "--no-dest-prefix", dest)
    reference = cli.etcdctl("make-mirror", "--dest-prefix", "x", "--no-dest-prefix", dest)
    assert (both.code, both.error) == (reference.code, reference.error)


def test_rev_copies_changes_from_that_revision_only(
    server: EtcdServer, destinations: tuple[EtcdServer, EtcdServer], prefix: str
) -> None:
    dest = destinations[0].endpoint
    source = server.endpoint
    write(source, Op.put(f"{prefix}old", "1"))
    revision = write(source, Op.put(f"{prefix}new", "2"))
    ours = start(
        [f"--endpoints={source}", "make-mirror", "--prefix", prefix, "--rev", str(revision), dest]
    )
    try:
        wait_until_equal(dest, prefix, {f"{prefix}new".encode(): b"2"})
    finally:
        code, _, err = interrupt(ours)
    assert code == 0, err


def test_a_destination_restart_loses_nothing(
    server: EtcdServer, destinations: tuple[EtcdServer, EtcdServer], prefix: str
) -> None:
    dest_server = destinations[0]
    source = server.endpoint
    # A command timeout shorter than the outage: the command's own retries are what bridge it.
    args = ["--command-timeout=1s", "make-mirror", "--prefix", prefix, dest_server.endpoint]
    ours = start([f"--endpoints={source}", *args])
    try:
        write(source, Op.put(f"{prefix}before", "1"))
        wait_until_equal(dest_server.endpoint, prefix, {f"{prefix}before".encode(): b"1"})
        dest_server.kill()
        for i in range(5):
            write(source, Op.put(f"{prefix}during{i}", str(i)))
        write(source, Op.delete(f"{prefix}before"))
        time.sleep(3)
        dest_server.restart()
        expected = {f"{prefix}during{i}".encode(): str(i).encode() for i in range(5)}
        wait_until_equal(dest_server.endpoint, prefix, expected)
    finally:
        code, _, err = interrupt(ours)
    assert code == 0, err
    assert "Warning: the destination" in err


@pytest.mark.slow
def test_a_long_outage_resyncs_to_the_exact_source_state(
    server: EtcdServer, destinations: tuple[EtcdServer, EtcdServer], prefix: str
) -> None:
    """More changes during an outage than the mirror keeps for a reader (10 000): it copies
    the prefix again, and deletes at the destination the keys gone meanwhile."""
    dest_server = destinations[0]
    source = server.endpoint
    args = ["--command-timeout=1s", "make-mirror", "--prefix", prefix, dest_server.endpoint]
    ours = start([f"--endpoints={source}", *args])
    try:
        write(source, Op.put(f"{prefix}gone", "1"), Op.put(f"{prefix}kept", "1"))
        wait_until_equal(dest_server.endpoint, prefix, contents(source, prefix))
        dest_server.kill()
        # "first" is taken and stuck in a transaction to the dead destination; the delete and
        # all that follows wait unread, more of them than the mirror keeps.
        write(source, Op.put(f"{prefix}first", "1"))
        write(source, Op.delete(f"{prefix}gone"))
        for batch in range(81):  # 81 x 128 = 10 368 puts
            write(source, *(Op.put(f"{prefix}bulk/{batch}/{i}", "x") for i in range(128)))
        time.sleep(5)  # for the mirror to receive them all meanwhile
        dest_server.restart()
        wait_until_equal(dest_server.endpoint, prefix, contents(source, prefix))
    finally:
        code, out, err = interrupt(ours)
    assert code == 0, err
    # 3 changes, then the copy of the 10 370 keys there and the delete of the one gone.
    assert out.splitlines()[-1] == str(3 + 10_370 + 1), out


def test_a_source_restart_loses_nothing() -> None:
    """The source (a server of this test's own, as it is restarted) comes back: the mirror's
    watch resumes where it was, nothing lost or applied twice."""
    with EtcdServer() as source, EtcdServer() as dest:
        ours = start([f"--endpoints={source.endpoint}", "make-mirror", dest.endpoint])
        try:
            write(source.endpoint, Op.put("a", "1"))
            wait_until_equal(dest.endpoint, "", {b"a": b"1"})
            source.kill()
            time.sleep(1)
            source.restart()
            write(source.endpoint, Op.put("b", "2"), Op.delete("a"))
            write(source.endpoint, Op.put("c", "3"))
            wait_until_equal(dest.endpoint, "", {b"b": b"2", b"c": b"3"})
            # Once each: a put of a, then a txn of two changes, then one put.
            assert len(mod_revisions(dest.endpoint, "")) == 2
        finally:
            code, out, err = interrupt(ours)
        assert code == 0, err
        assert out.splitlines()[-1] == "4"


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        ([], 128, None),
        (["--dest-user", "bob", "127.0.0.1:1"], 128, "Error: --dest-user needs a password"),
        (["--dest-cacert", "/no/such/ca.pem", "127.0.0.1:1"], 128, None),
        (["--max-txn-ops", "0", "127.0.0.1:1"], 128, "Error: --max-txn-ops must be"),
        (["--bogus", "127.0.0.1:1"], 1, None),
    ],
    ids=["no-destination", "user-without-password", "missing-cacert", "zero-ops", "bad-flag"],
)
def test_bad_arguments_fail_before_any_connection(
    cli: Runner, args: list[str], code: int, error: str | None
) -> None:
    result = cli("make-mirror", *args, stdin=None)
    assert result.code == code
    assert result.error.startswith(error or "Error: ")
    assert result.error.count("\n") == 1
    if error is None:  # etcdctl has the same case: the same code
        assert cli.etcdctl("make-mirror", *args, stdin=None).code == code


def test_to_a_destination_with_auth(server: EtcdServer, prefix: str) -> None:
    """``--dest-user name:password`` (and ``--dest-password``); the password is never printed."""
    password = "mirror-Secret-77"

    async def enable_auth(endpoint: str) -> None:
        async with etcd.connect(endpoint) as client:
            await client.auth.user_add("root", password)
            await client.auth.user_grant_role("root", "root")
            await client.auth.enable()

    async def read(endpoint: str) -> dict[bytes, bytes]:
        async with etcd.connect(endpoint, username="root", password=password) as client:
            return {key: kv.value for key, kv in (await client.get_prefix(prefix)).items()}

    with EtcdServer() as dest:
        trio.run(enable_auth, dest.endpoint)
        user_args = (
            ["--dest-user", f"root:{password}"],
            ["--dest-user", "root", "--dest-password", password],
        )
        for number, args in enumerate(user_args):
            # A key of each run's own, so that each waits for its own copy.
            write(server.endpoint, Op.put(f"{prefix}k{number}", "v"))
            ours = start(
                [
                    f"--endpoints={server.endpoint}",
                    "make-mirror",
                    "--prefix",
                    prefix,
                    *args,
                    dest.endpoint,
                ]
            )
            try:
                deadline = time.monotonic() + WAIT
                while f"{prefix}k{number}".encode() not in trio.run(read, dest.endpoint):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            finally:
                code, out, err = interrupt(ours)
            assert code == 0, err
            assert password not in out + err
        wrong = start(
            [
                f"--endpoints={server.endpoint}",
                "make-mirror",
                "--dest-user",
                "root:nope",
                dest.endpoint,
            ]
        )
        code, out, err = interrupt_after_exit(wrong)
        assert code == 1
        assert err.startswith("Error: ")
        assert "nope" not in err


def interrupt_after_exit(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    return process.returncode, out.decode(), err.decode()


def test_the_count_is_printed_every_30_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    """As etcdctl's: the number of keys synced so far, alone on its line, every 30 s."""
    from puregrpc_etcd._cli.mirror_command import Copier
    from puregrpc_etcd._cli.session import Context, Settings

    copier = Copier(None, b"", b"", 128)  # type: ignore[arg-type]  # report() writes nothing

    async def run() -> None:
        with trio.move_on_after(95):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(copier.report, Context(Settings()))
                await trio.sleep(31)
                copier.total = 7

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert capsys.readouterr().out == "0\n7\n7\n"


def test_to_a_tls_destination(server: EtcdServer, prefix: str, tmp_path: Path) -> None:
    """``--dest-cacert`` trusts the destination's CA (the source stays plaintext), as for
    etcdctl's; without it the untrusted destination is one error line."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = (tmp_path / name for name in ("ca.pem", "s.pem", "k.pem"))
    ca.cert_pem.write_to_path(ca_path)
    issued.cert_chain_pems[0].write_to_path(cert_path)
    issued.private_key_pem.write_to_path(key_path)
    tls_args = ["--cert-file", str(cert_path), "--key-file", str(key_path)]
    with EtcdServer(scheme="https", args=tls_args) as dest:
        write(server.endpoint, Op.put(f"{prefix}k", "v"))
        argv = [f"--endpoints={server.endpoint}", "make-mirror", "--prefix", prefix]
        ours = start([*argv, "--dest-cacert", str(ca_path), dest.endpoints[0]])

        async def read() -> dict[bytes, bytes]:
            tls = ssl.create_default_context(cafile=str(ca_path))
            async with etcd.connect(dest.endpoints, tls=tls) as client:
                return {k: kv.value for k, kv in (await client.get_prefix(prefix)).items()}

        try:
            deadline = time.monotonic() + WAIT
            while trio.run(read) != {f"{prefix}k".encode(): b"v"}:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            code, _, err = interrupt(ours)
        assert code == 0, err
        untrusted = start([*argv, dest.endpoints[0]])
        code, _, err = interrupt_after_exit(untrusted)
        assert code != 0
        assert err.startswith("Error: ")
        assert err.count("\n") == 1
