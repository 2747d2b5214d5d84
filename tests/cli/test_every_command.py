"""Every subcommand of the parser (found by walking it, so a new command is covered when it is
added) driven with closed and empty standard input, a bad flag, no arguments, a closed
loopback port and bad files: never a traceback, always one ``Error:`` line on failure, and
etcdctl's exit code wherever etcdctl 3.5 fails the same way without a server (a bad flag, a
missing argument, a TLS file it cannot open)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from cli_support import (
    Result,
    Runner,
    etcd_3_4,
    etcdctl_commands,
    leaf_commands,
    name_of,
)

from puregrpc_etcd.testing import EtcdServer

LEAVES = leaf_commands()
ETCDCTL = etcdctl_commands()
# Commands that serve until Ctrl-C or run a long load: never started against the live server.
LONG_RUNNING = {"watch", "lock", "elect", "lease keep-alive", "make-mirror", "dev-server", "demo"}
LONG_RUNNING |= {" ".join(leaf) for leaf in LEAVES if leaf[0] in ("check", "benchmark")}
# Commands that touch no etcd.
LOCAL = {"version", "snapshot status", "dev-server", "demo"}
# Arguments that make each command do its work (the rest need none).
TYPICAL = {
    "get": ["k"], "put": ["k", "v"], "del": ["k"], "compaction": ["1"], "watch": ["k"],
    "lease grant": ["10"], "lease revoke": ["1"], "lease timetolive": ["1"],
    "lease keep-alive": ["1"], "lock": ["l"], "elect": ["e", "p"],
    "member add": ["m", "--learner", "--peer-urls=http://127.0.0.1:1"],
    "member remove": ["1"], "member update": ["1", "--peer-urls=http://127.0.0.1:1"],
    "member promote": ["1"], "move-leader": ["1"], "make-mirror": ["127.0.0.1:1"],
    "user add": ["every-u:p"], "user delete": ["every-u"], "user get": ["every-u"],
    "user grant-role": ["every-u", "every-r"],
    "user revoke-role": ["every-u", "every-r"], "role add": ["every-r"],
    "role delete": ["every-r"], "role get": ["every-r"],
    "role grant-permission": ["every-r", "read", "k"], "role revoke-permission": ["every-r", "k"],
    "snapshot save": ["{tmp}/s.db"], "snapshot status": ["{tmp}/none.db"],
    "user passwd": ["every-u", "--interactive=false"], "check datascale": ["--load=s"],
    "benchmark range": ["k"],
}  # fmt: skip
# What each command reads on stdin when it does its work.
STDIN = {"txn": b"\n\n\n", "user passwd": b"new-password\n"}
# Commands that report each endpoint's failure on a line of its own and exit 1, as etcdctl's.
PER_ENDPOINT = {"endpoint health": "Error: unhealthy cluster", "defrag": "Failed to defragment"}
FAST = ["--dial-timeout=100ms", "--command-timeout=2s"]


def typical(leaf: list[str], files: dict[str, str]) -> list[str]:
    return [arg.format(**files) for arg in TYPICAL.get(name_of(leaf), [])]


def fails_cleanly(result: Result, leaf: list[str] | None = None) -> bool:
    """A failure printed as etcdctl prints one: one ``Error:`` line (after any warnings), or
    for the commands that report each endpoint, their lines as etcdctl's."""
    lines = result.error.splitlines()
    if "Traceback" in result.error or not lines:
        return False
    if leaf is not None and name_of(leaf) in PER_ENDPOINT:
        return result.code == 1 and PER_ENDPOINT[name_of(leaf)] in result.error
    return lines[-1].startswith("Error: ") and all(
        line.startswith("Warning: ") for line in lines[:-1]
    )


@pytest.fixture(scope="module")
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def files(tmp_path: Path, server: EtcdServer) -> dict[str, str]:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(3 * 4096))
    return {
        "missing": str(tmp_path / "missing.pem"),
        "directory": str(tmp_path),
        "corrupt": str(corrupt),
        "busy-port": server.endpoint.rpartition(":")[2],
        "tmp": str(tmp_path),
    }


@pytest.mark.parametrize("leaf", LEAVES, ids=name_of)
def test_a_bad_flag_with_closed_stdin(cli: Runner, files: dict[str, str], leaf: list[str]) -> None:
    for bad in ("--no-such-flag", "--dial-timeout=bogus"):
        ours = cli(*leaf, *typical(leaf, files), bad, stdin=None)
        assert ours.code == 1, ours.error
        assert fails_cleanly(ours), ours.error
        assert ours.out == b""
        if name_of(leaf) in ETCDCTL:
            theirs = cli.etcdctl(*leaf, bad, stdin=None)
            assert theirs.code == ours.code


# Without arguments: every command but the two that then run (a server, the demo); with stdin
# closed, and empty too for the commands that read it.
NO_ARGUMENTS = [
    (leaf, closed)
    for leaf in LEAVES
    if name_of(leaf) not in ("dev-server", "demo")
    for closed in ((True, False) if name_of(leaf) in ("put", "txn", "user add") else (True,))
]


@pytest.mark.parametrize(
    ("leaf", "closed"),
    NO_ARGUMENTS,
    ids=[f"{name_of(leaf)}-{'closed' if closed else 'empty'}" for leaf, closed in NO_ARGUMENTS],
)
def test_no_arguments_and_no_server(
    cli: Runner, closed_port: str, leaf: list[str], closed: bool
) -> None:
    """A missing argument (or txn input) is refused before connecting, with etcdctl's code; a
    command that needs none fails within the dial timeout with 2 (etcdctl waits, exits 1)."""
    stdin = None if closed else b""
    ours = cli(f"--endpoints={closed_port}", *FAST, *leaf, stdin=stdin, endpoint=False)
    if ours.code == 0:
        assert name_of(leaf) in LOCAL, ours.text
        return
    assert fails_cleanly(ours, leaf), ours.error
    if ours.code in (128, 3):
        if name_of(leaf) in ETCDCTL:  # fails before dialling: as quick with etcdctl
            assert cli.etcdctl(*FAST, *leaf, stdin=stdin, endpoint=closed_port).code == ours.code
    elif name_of(leaf) not in PER_ENDPOINT:
        assert (ours.code, name_of(leaf) in LOCAL) == (2, False), ours.error


@pytest.mark.parametrize("leaf", [a for a in LEAVES if name_of(a) not in LOCAL], ids=name_of)
def test_typical_arguments_and_no_server(
    cli: Runner, files: dict[str, str], closed_port: str, leaf: list[str]
) -> None:
    ours = cli(f"--endpoints={closed_port}", *FAST, *leaf, *typical(leaf, files),
               stdin=STDIN.get(name_of(leaf), b""), endpoint=False)  # fmt: skip
    code = 1 if name_of(leaf) in PER_ENDPOINT else 2
    assert ours.code == code, ours.error
    # (benchmark txn-mixed names its read mode first, as etcd's tool does)
    assert ours.out in (b"", b"bench with linearizable range\n")
    assert fails_cleanly(ours, leaf), ours.error
    assert closed_port in ours.error


@pytest.mark.parametrize("leaf", [a for a in LEAVES if name_of(a) not in LONG_RUNNING], ids=name_of)
def test_typical_arguments_on_a_live_server_with_closed_stdin(
    cli: Runner, files: dict[str, str], leaf: list[str]
) -> None:
    """Success, or one error line from etcd (no such member, no root user, ...)."""
    ours = cli(*FAST, *leaf, *typical(leaf, files), stdin=None)
    assert "Traceback" not in ours.error
    if ours.code != 0:
        assert fails_cleanly(ours, leaf), ours.error


# Bad files, for every command: each a global TLS flag (so every command that connects opens
# it first) or the command's own file argument.
BAD_TLS = [
    (["--cacert={missing}"], "open {missing}: no such file or directory"),
    (["--cacert={directory}"], "open {directory}: is a directory"),
    (["--cert={missing}", "--key={missing}"], "open {missing}: no such file or directory"),
    (["--cacert={corrupt}"], "--cacert {corrupt}"),
]


@pytest.mark.parametrize("leaf", [a for a in LEAVES if name_of(a) not in LOCAL], ids=name_of)
@pytest.mark.parametrize("bad", BAD_TLS, ids=lambda case: case[1].split()[0] + case[0][0][:8])
def test_bad_tls_files(
    cli: Runner, files: dict[str, str], leaf: list[str], bad: tuple[list[str], str]
) -> None:
    flags, message = ([f.format(**files) for f in bad[0]], bad[1].format(**files))
    args = [*flags, *FAST, *leaf, *typical(leaf, files)]
    stdin = STDIN.get(name_of(leaf), b"")
    ours = cli(*args, stdin=stdin)
    assert ours.code == 128, ours.error
    assert fails_cleanly(ours), ours.error
    assert message in ours.error
    if name_of(leaf) in ETCDCTL and "missing" in bad[1]:
        # etcdctl opens its TLS files before dialling too (it then waits on unreadable ones).
        theirs = cli.etcdctl(*args, stdin=stdin)
        assert (theirs.code, theirs.err) == (ours.code, ours.err)


@pytest.mark.parametrize(
    "args",
    [
        ["snapshot", "status", "{missing}"],
        ["snapshot", "status", "{directory}"],
        ["snapshot", "status", "{corrupt}"],
        ["snapshot", "save", "{directory}"],
        ["snapshot", "save", "{missing}/x.db"],
        ["make-mirror", "--dest-cacert={missing}", "127.0.0.1:1"],
        ["make-mirror", "--dest-cacert={directory}", "127.0.0.1:1"],
        ["make-mirror", "--dest-cert={corrupt}", "--dest-key={corrupt}", "127.0.0.1:1"],
        ["dev-server", "--binary={missing}"],
        ["dev-server", "--binary={directory}"],
        ["dev-server", "--binary={corrupt}"],
        ["dev-server", "--port={busy-port}"],
        ["demo", "--binary={missing}"],
        ["demo", "--binary={corrupt}"],
    ],
    ids=lambda args: " ".join(args).split("/")[0],
)
def test_bad_files_of_commands(cli: Runner, files: dict[str, str], args: list[str]) -> None:
    ours = cli(*FAST, *[a.format(**files) for a in args], stdin=None)
    assert ours.code in (1, 128), ours.error
    assert fails_cleanly(ours), ours.error


@pytest.mark.parametrize(
    "run",
    [["no-such-command"], ["{missing}"], ["{corrupt}"], ["{directory}"], ["sh", "-c", "exit 4"]],
    ids=["not-on-path", "missing", "not-executable", "directory", "exit-4"],
)
def test_lock_with_a_command_that_cannot_run(
    cli: Runner, files: dict[str, str], prefix: str, run: list[str]
) -> None:
    """As etcdctl: Go's words for a command that cannot start (1), the command's own status
    otherwise; the lock is released either way."""
    argv = ["lock", prefix + "l", "--", *[word.format(**files) for word in run]]
    ours, theirs = cli(*argv, stdin=None), cli.etcdctl(*argv, stdin=None)
    assert ours.code == (4 if run[0] == "sh" else 1)
    if etcd_3_4() and run[0] == "sh":
        theirs.code = 4  # etcdctl 3.4 exits 1 whatever the command's status; 3.5 passes it on
    assert (ours.code, ours.err, ours.out) == (theirs.code, theirs.err, theirs.out)
    assert cli("get", "--prefix", prefix + "l/").out == b""


@pytest.mark.parametrize(
    "args",
    [
        ["get", "k", "--limit=abc"],
        ["get", "k", "--rev=x"],
        ["get", "k", "--consistency=x"],
        ["get", "k", "--order=x"],
        ["put", "k", "v", "--lease=zz"],
        ["lease", "grant", "abc"],
        ["lease", "grant", "-5"],
        ["lease", "revoke", "zz"],
        ["lease", "timetolive", "-1"],
        ["member", "remove", "zz"],
        ["compaction", "abc"],
        ["compaction", "-1"],
        ["watch", "k", "--rev=abc"],
        ["lock", "l", "--ttl=abc"],
        ["make-mirror", "127.0.0.1:1", "--max-txn-ops=abc"],
        ["role", "grant-permission", "r", "bogus", "k"],
        ["check", "datascale", "--load=zz"],
        ["move-leader", "zz"],
        ["snapshot", "save"],
        ["del", "a", "b", "--prefix"],
        ["get", "a", "b", "--from-key"],
        ["put", "k", "--ignore-lease"],
    ],
    ids=" ".join,
)
def test_bad_values_exit_as_etcdctl(cli: Runner, args: list[str]) -> None:
    """Values that do not parse, negative numbers where etcdctl's parser sees a flag, missing
    and conflicting arguments: refused before any change, with etcdctl's exit code."""
    ours, theirs = cli(*args, stdin=None), cli.etcdctl(*args, stdin=None)
    assert ours.code == theirs.code != 0, (ours.error, theirs.error)
    assert fails_cleanly(ours), ours.error
    assert ours.out == b""  # (etcdctl prints its usage on stdout for a flag it cannot parse)
