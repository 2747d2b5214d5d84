"""Expected failures print one line on stderr and exit non-zero, with etcdctl's exit codes;
``dev-server`` and the end-to-end command (``python -m puregrpc_etcd``)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest
from cli_support import COMMAND_TIMEOUT, Runner, command, reap


def one_line(text: str) -> bool:
    return text.startswith("Error: ") and text.count("\n") == 1 and "Traceback" not in text


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["get"], 128),  # missing key
        (["get", "k", "--no-such-flag"], 1),  # etcdctl: cobra's flag errors exit 1
        (["no-such-command"], 1),
        (["get", "k", "-w", "table"], 4),  # etcdctl: table is not supported for get
        (["get", "k", "--prefix", "--from-key"], 128),
        (["get", "k", "-w", "json", "--print-value-only"], 128),
        (["--dial-timeout=soon", "get", "k"], 1),
        (["get", "k", "--limit", "many"], 1),
        (["get", "k", "--order", "UP"], 4),  # etcdctl: bad sort order
        (["get", "a", "b", "c"], 128),  # too many arguments
        (["elect", "name"], 128),  # neither a proposal nor -l
        (["compaction", "0"], 128),
        (["put", "", "v"], 128),  # the library refuses an empty key before any I/O
    ],
)
def test_bad_command_lines(cli: Runner, args: list[str], code: int) -> None:
    result = cli(*args)
    assert result.code == code
    assert one_line(result.error), result.error
    assert result.out == b""


def test_help_goes_to_stdout_and_succeeds(cli: Runner) -> None:
    result = cli("--help")
    assert result.code == 0
    assert "dev-server" in result.text
    assert cli("get", "--help").code == 0


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b'value("k") = \n\n\n', 'Error: malformed comparison: value("k") ='),
        (b'size("k") = "1"\n\n\n', "Error: malformed comparison: size"),
        (b'version("k") = "x"\n\n\n', "Error: invalid txn compare request"),
        (b"\nfrobnicate k\n\n", "Error: invalid txn request: frobnicate k"),
        (b"\nput k\n\n", "Error: invalid txn request: put k"),
    ],
)
def test_txn_input_errors(cli: Runner, stdin: bytes, message: str) -> None:
    result = cli("txn", stdin=stdin)
    assert result.code == 3
    assert result.error.startswith(message)
    assert one_line(result.error)


def test_no_server(cli: Runner, closed_endpoint: str) -> None:
    result = cli(f"--endpoints={closed_endpoint}", "get", "k", endpoint=False)
    assert result.code == 2
    assert one_line(result.error)
    assert closed_endpoint in result.error


def test_a_server_that_never_answers_times_out(cli: Runner, silent_endpoint: str) -> None:
    result = cli(
        f"--endpoints={silent_endpoint}",
        "--dial-timeout=300ms",
        "--command-timeout=500ms",
        "get",
        "k",
        endpoint=False,
    )
    assert result.code in (1, 2)
    assert one_line(result.error), result.error


def test_watch_from_a_compacted_revision(cli: Runner, prefix: str) -> None:
    revision = json.loads(cli("put", "-w", "json", prefix + "k", "v").out)["header"]["revision"]
    assert cli("compaction", str(revision)).code == 0
    result = cli("watch", prefix + "k", "--rev", "1")
    assert result.code == 1
    assert result.error == (
        "Error: etcdserver: mvcc: required revision has been compacted "
        f"(compact revision {revision})\n"
    )


def test_endpoint_health_with_a_dead_endpoint(cli: Runner, closed_endpoint: str) -> None:
    result = cli(
        f"--endpoints={cli.endpoint},{closed_endpoint}", "endpoint", "health", endpoint=False
    )
    assert result.code == 1
    assert result.text.startswith(f"{cli.endpoint} is healthy: ")
    unhealthy, summary = result.error.splitlines()
    assert unhealthy.startswith(f"{closed_endpoint} is unhealthy: failed to commit proposal: ")
    assert summary == "Error: unhealthy cluster"


def test_environment_variables_configure_the_command(
    cli: Runner, monkeypatch: pytest.MonkeyPatch, closed_endpoint: str, prefix: str
) -> None:
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", cli.endpoint)
    monkeypatch.setenv("ETCDCTL_WRITE_OUT", "json")
    assert cli("put", prefix + "k", "v", endpoint=False).code == 0
    assert cli("get", prefix + "k", endpoint=False).text.startswith('{"header":')
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", closed_endpoint)
    assert cli("get", prefix + "k", endpoint=False).code == 2
    # A flag wins over the variable.
    assert cli(f"--endpoints={cli.endpoint}", "get", prefix + "k", endpoint=False).code == 0
    # A variable that does not parse: etcdctl keeps its default silently, we also warn.
    monkeypatch.delenv("ETCDCTL_ENDPOINTS")  # etcdctl refuses one that a flag shadows
    for name, value in (("ETCDCTL_DIAL_TIMEOUT", "forever"), ("ETCDCTL_COMMAND_TIMEOUT", "soon")):
        monkeypatch.setenv(name, value)
        ours, theirs = cli("get", prefix + "k"), cli.etcdctl("get", prefix + "k")
        assert (ours.code, ours.out) == (theirs.code, theirs.out) == (0, theirs.out)
        assert (
            ours.error == f"Warning: {name} ignored: invalid duration {value!r} (e.g. 5s, 500ms)\n"
        )
        monkeypatch.delenv(name)
    monkeypatch.setenv("ETCDCTL_WRITE_OUT", "yaml")
    ours, theirs = cli("get", prefix + "k"), cli.etcdctl("get", prefix + "k")
    assert ours.code == theirs.code == 4


def test_the_installed_command_fails_cleanly_end_to_end(closed_endpoint: str) -> None:
    for args, code in (
        (["get", "--bogus"], 1),  # etcdctl: an unknown flag exits 1
        ([f"--endpoints={closed_endpoint}", "get", "k"], 2),
    ):
        done = subprocess.run(
            command(*args), capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
        assert done.returncode == code
        assert one_line(done.stderr.decode())


def test_dev_server_serves_until_ctrl_c_and_removes_its_data() -> None:
    process = subprocess.Popen(
        command("dev-server", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        match = re.match(r"etcd \d+\.\d+ serving at (127\.0\.0\.1:\d+)\n$", first)
        assert match is not None, first + process.stderr.read().decode()  # type: ignore[union-attr]
        data = re.match(r"data in (\S+) ", process.stdout.readline().decode())
        assert data is not None
        assert os.path.isdir(data.group(1))
        endpoint = match.group(1)
        put = subprocess.run(
            command(f"--endpoints={endpoint}", "put", "hello", "world"),
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert put.stdout == b"OK\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=COMMAND_TIMEOUT)
        assert (process.returncode, err) == (0, b"")
        assert not os.path.exists(data.group(1))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=COMMAND_TIMEOUT)


def test_dev_server_refuses_a_busy_port(cli: Runner, silent_endpoint: str) -> None:
    result = cli("dev-server", "--port", silent_endpoint.rsplit(":", 1)[1], endpoint=False)
    assert result.code == 1
    assert one_line(result.error)
    assert "in use" in result.error


def test_ctrl_c_during_a_short_command_is_one_line_and_130() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(COMMAND_TIMEOUT)
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            command(f"--endpoints={endpoint}", "--dial-timeout=60s", "get", "k"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            connection, _ = listener.accept()  # the command is waiting for the server now
            with connection:
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            reap(process)
    assert (process.returncode, out, err) == (130, b"", b"Error: interrupted\n")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.7, 1.0])
def test_ctrl_c_while_the_command_starts_prints_no_traceback(delay: float) -> None:
    """Ctrl-C at any moment of start-up (the imports take most of a second on a slow machine):
    one line and 130, or the command had finished; never a traceback."""
    script = os.path.join(os.path.dirname(sys.executable), "puregrpc-etcd")
    if not os.path.exists(script):
        if sys.version_info < (3, 10):
            pytest.skip("python -m is recognised from sys.orig_argv, new in Python 3.10")
        argv = command("version")
    else:
        argv = [script, "version"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        reap(process)
    if b"Traceback" in err:
        # Before the guard is in: Python's own start-up (site, the script's import line) or
        # the package's first import, the one that installs it. Not ours to quiet; the rest is.
        files = set(re.findall(rb"/puregrpc_etcd/(\w+\.py)", err))
        early = b"init_import_site" in err or b"import _entry" in err or not files
        assert early, err.decode()
        assert files <= {b"__init__.py", b"_entry.py"}, err.decode()
        return
    if process.returncode == 130:
        assert (out, err) == (b"", b"Error: interrupted\n")
    elif process.returncode == 0:  # done before the signal
        assert out.startswith(b"puregrpc-etcd version: ")
    else:  # ended by it before Python set its handler, or while Python was exiting
        assert process.returncode == -signal.SIGINT, err.decode()


@pytest.mark.parametrize("group", ["lease", "member", "user", "check"])
def test_a_group_alone_prints_its_help_as_etcdctl(cli: Runner, group: str) -> None:
    ours, theirs = cli(group, stdin=None), cli.etcdctl(group, stdin=None)
    assert (ours.code, ours.err) == (theirs.code, theirs.err) == (0, b"")
    for name in ("grant", "list", "add", "datascale"):
        assert (name in ours.text) == (name in theirs.text.split("OPTIONS")[0]), name
