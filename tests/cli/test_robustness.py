"""No input makes the command print a traceback or claim a success it did not have: closed and
empty standard input, bad flags, unreachable endpoints, Ctrl-C while waiting for a lock or a
leadership; each case exits with etcdctl's code (run on the same server where it has one)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest
from cli_support import (
    COMMAND_TIMEOUT,
    Result,
    Runner,
    closed_stdin,
    command,
    etcd_3_4,
    normalized,
    reap,
)

from puregrpc_etcd.testing import EtcdServer, find_etcd_tool

TXN = b"\n\n\n"  # a complete txn with nothing in it


def one_error_line(result: Result) -> bool:
    text = result.error
    return text.startswith("Error: ") and text.count("\n") == 1 and "Traceback" not in text


@pytest.fixture
def closed_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


# The commands that read stdin, with what etcdctl 3.5 exits with when it is empty or closed.
STDIN_COMMANDS = [
    (
        ["put", "k"],
        128,
        "Error: put command needs 1 argument and input from stdin or 2 arguments\n",
    ),
    (["txn"], 3, "Error: EOF\n"),
    (["txn", "-i"], 3, None),  # etcdctl prints its prompt first, as we do
]


@pytest.mark.parametrize("closed", [False, True], ids=["empty", "closed"])
@pytest.mark.parametrize("case", STDIN_COMMANDS, ids=lambda case: " ".join(case[0]))
def test_no_stdin_is_refused_as_etcdctl_does(
    cli: Runner, prefix: str, case: tuple[list[str], int, str | None], closed: bool
) -> None:
    args, code, error = case
    args = [prefix + word if word == "k" else word for word in args]
    cli.etcdctl("put", prefix + "k", "kept")
    stdin = None if closed else b""
    ours, theirs = cli(*args, stdin=stdin), cli.etcdctl(*args, stdin=stdin)
    assert ours.code == theirs.code == code, ours.error
    assert one_error_line(ours), ours.error
    if error is not None:
        assert ours.err == error.encode()
        # Before 3.5.30 etcdctl names the closed descriptor's read error instead of EOF.
        assert theirs.err == ours.err or closed
    assert ours.out == theirs.out
    # Nothing was written: the key keeps its value, no empty transaction ran.
    assert cli("get", prefix + "k", "--print-value-only").out == b"kept\n"


@pytest.mark.parametrize(
    "stdin",
    [b"\nput {p}k v\n", b"\nput {p}k v\n\n", b"\n\nput {p}k v", b'mod("{p}k") > "0"\n'],
    ids=["success-unended", "failure-missing", "failure-unended", "compares-only"],
)
def test_a_truncated_txn_commits_nothing(cli: Runner, prefix: str, stdin: bytes) -> None:
    text = stdin.replace(b"{p}", prefix.encode())
    ours, theirs = cli("txn", stdin=text), cli.etcdctl("txn", stdin=text)
    assert (ours.code, ours.err, ours.out) == (theirs.code, theirs.err, theirs.out)
    assert (ours.code, ours.err) == (3, b"Error: EOF\n")
    assert cli("get", prefix + "k").out == b""


@pytest.mark.parametrize("closed", [False, True], ids=["empty", "closed"])
@pytest.mark.parametrize(
    "args",
    [
        ["user", "add", "nobody", "--interactive=false"],
        ["user", "add", "nobody"],  # asks for a password, with no terminal to ask on
        ["user", "passwd", "root", "--interactive=false"],
        ["--user=root", "get", "k"],  # the same, for --user's password
    ],
)
def test_no_password_on_stdin_is_one_error_line(cli: Runner, args: list[str], closed: bool) -> None:
    # etcdctl 3.5 would create a user with an empty password from an empty stdin; we refuse.
    result = cli(*args, stdin=None if closed else b"")
    assert result.code == 128
    assert one_error_line(result), result.error
    assert "nobody" not in cli("user", "list").text


def test_closed_stdin_end_to_end(server: EtcdServer) -> None:
    """A real process with fd 0 closed (``<&-``), where ``sys.stdin`` is None."""
    for args, code in ((["put", "k"], 128), (["txn"], 3), (["user", "add", "x"], 128),
                       (["user", "add", "x", "--interactive=false"], 128)):  # fmt: skip
        done = subprocess.run(
            closed_stdin(command(f"--endpoints={server.endpoint}", *args)),
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert result.code == code, (args, result.error)
        assert one_error_line(result), result.error


# Every command this module is about, each with a bad flag and against no server at all.
COMMANDS = [
    ["put", "k", "v"],
    ["txn"],
    ["watch", "k"],
    ["lock", "l"],
    ["elect", "e", "p"],
    ["user", "add", "u:p"],
    ["user", "list"],
    ["role", "list"],
    ["auth", "status"],
    ["alarm", "list"],
    ["lease", "list"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_bad_flags_and_unreachable_endpoints(
    cli: Runner, closed_endpoint: str, args: list[str]
) -> None:
    bad = cli(*args, "--no-such-flag", stdin=None)  # with stdin closed, too
    assert bad.code == cli.etcdctl(*args, "--no-such-flag", stdin=TXN).code == 1
    assert one_error_line(bad), bad.error
    # etcdctl 3.5 exits 1 (context deadline exceeded) after its 5 s, or never for watch;
    # we fail fast with 2, etcdctl's code for a bad connection, for every command alike.
    unreachable = cli(f"--endpoints={closed_endpoint}", *args, stdin=TXN, endpoint=False)
    assert unreachable.code == 2, unreachable.error
    assert one_error_line(unreachable), unreachable.error
    assert closed_endpoint in unreachable.error


@pytest.mark.parametrize(
    "args",
    [a for a in COMMANDS if a[0] in ("user", "role", "auth", "alarm", "lease")] + [["version"]],
    ids=" ".join,
)
def test_commands_that_read_no_stdin_ignore_a_closed_one(cli: Runner, args: list[str]) -> None:
    ours = cli(*[a.replace("u:p", "closed-stdin-o:p") for a in args], stdin=None)
    if etcd_3_4() and args == ["auth", "status"]:
        return  # no AuthStatus call in etcd 3.4
    theirs = cli.etcdctl(*[a.replace("u:p", "closed-stdin-t:p") for a in args], stdin=None)
    assert (ours.code, ours.err) == (theirs.code, theirs.err) == (0, b""), ours.error
    if args[0] not in ("user", "version"):  # those print what differs between the two
        assert ours.out == theirs.out


def test_version(cli: Runner) -> None:
    from puregrpc_etcd import __version__

    ours, theirs = cli("version"), cli.etcdctl("version")
    assert (ours.code, ours.err) == (theirs.code, theirs.err) == (0, b"")
    assert ours.text == f"puregrpc-etcd version: {__version__}\nAPI version: 3.5\n"
    name, api = theirs.text.splitlines()
    assert name.startswith("etcdctl version: 3.")
    assert api.startswith("API version: 3.")


def _waiters(server: EtcdServer, name: str) -> int:
    """How many keys (holder and waiters) are under a lock's or election's name."""
    done = subprocess.run(
        [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", "get", "--prefix",
         "-w", "json", name + "/"],
        capture_output=True, timeout=COMMAND_TIMEOUT, check=True,
    )  # fmt: skip
    return len(json.loads(done.stdout).get("kvs", []))


def _interrupt_while_waiting(server: EtcdServer, argv: list[str], name: str) -> Result:
    """Run ``argv`` while another process holds ``name``; Ctrl-C it once it waits in line."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while _waiters(server, name) < 2:  # the holder's key and ours
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never queued"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        reap(process)
    return Result(process.returncode, out, err)


@pytest.mark.parametrize(
    "args", [["lock", "{n}"], ["elect", "{n}", "second"]], ids=["lock", "elect"]
)
def test_ctrl_c_while_waiting_is_not_a_success(
    server: EtcdServer, prefix: str, args: list[str]
) -> None:
    etcdctl = find_etcd_tool("etcdctl")
    name = prefix + args[0]
    argv = [word.replace("{n}", name) for word in args]
    holder = subprocess.Popen(
        [
            etcdctl,
            f"--endpoints={server.endpoint}",
            *argv[:2],
            *(["first"] if args[0] == "elect" else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith(name.encode())  # it holds
        ours = _interrupt_while_waiting(
            server, command(f"--endpoints={server.endpoint}", *argv), name
        )
        theirs = _interrupt_while_waiting(
            server, [etcdctl, f"--endpoints={server.endpoint}", *argv], name
        )
        assert _waiters(server, name) == 1  # the waiters' keys are gone
    finally:
        holder.send_signal(signal.SIGINT)
        holder.communicate(timeout=COMMAND_TIMEOUT)
    assert ours.code == theirs.code == 1
    assert theirs.err == b"Error: context canceled\n"
    assert one_error_line(ours), ours.error
    assert ours.out == theirs.out == b""


def test_json_of_a_fresh_server_and_of_alarms(cli: Runner) -> None:
    """``lease list`` with no lease, and ``alarm list|disarm``, on a server of their own whose
    small quota raises NOSPACE."""
    small_quota = ["--quota-backend-bytes", str(256 * 1024)]
    with EtcdServer(args=small_quota) as server:
        cli.endpoint = server.endpoint
        for args in (["lease", "list"], ["alarm", "list"], ["alarm", "disarm"]):
            for output in ("simple", "json", "table"):
                if etcd_3_4() and args[0] == "alarm" and output == "json":
                    continue  # etcdctl 3.4 leaves the header out; we print 3.5's reply
                ours, theirs = cli(*args, "-w", output), cli.etcdctl(*args, "-w", output)
                assert (ours.code, ours.err) == (theirs.code, theirs.err), (args, output)
                assert ours.out == theirs.out, (args, output)
        assert cli("lease", "list", "-w", "json").out.endswith(b'"leases":[]}\n')
        value = "v" * 16_000
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while cli("put", "fill", value).code == 0:
            assert time.monotonic() < deadline
        for output in ("simple",) if etcd_3_4() else ("simple", "json"):
            ours = cli("alarm", "list", "-w", output)
            theirs = cli.etcdctl("alarm", "list", "-w", output)
            assert (ours.code, ours.out) == (theirs.code, theirs.out), output
        listed = json.loads(cli("alarm", "list", "-w", "json").out)["alarms"]
        assert [alarm["alarm"] for alarm in listed] == [1]  # NOSPACE
        disarmed = cli("alarm", "disarm", "-w", "json")
        assert json.loads(disarmed.out) == {"alarms": listed}
        assert normalized(json.loads(cli("lease", "list", "-w", "json").out)) == normalized(
            json.loads(cli.etcdctl("lease", "list", "-w", "json").out)
        )
