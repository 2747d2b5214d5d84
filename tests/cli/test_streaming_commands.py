"""watch, lock and elect as processes: parity with etcdctl, Ctrl-C ending them cleanly, and
mutual exclusion with etcdctl's own lock and election."""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import time
from typing import IO

import pytest
from cli_support import COMMAND_TIMEOUT, Runner, command, etcd_3_4

from puregrpc_etcd.testing import EtcdServer, find_etcd_tool

WAIT = 20.0


class Process:
    """A command run in the background whose stdout is read as it comes, within bounds."""

    def __init__(self, args: list[str], stdin: int | None = None) -> None:
        self.popen = subprocess.Popen(
            args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.output = b""

    def read_until(self, expected: bytes, timeout: float = WAIT) -> bytes:
        stdout: IO[bytes] = self.popen.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while expected not in self.output:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError(f"{expected!r} not seen; got {self.output!r}")
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"ended before {expected!r}; got {self.output!r}")
                self.output += chunk
        return self.output

    def interrupt(self) -> tuple[int, bytes, bytes]:
        """Ctrl-C, then everything it printed and its exit status."""
        self.popen.send_signal(signal.SIGINT)
        out, err = self.popen.communicate(timeout=COMMAND_TIMEOUT)
        return self.popen.returncode, self.output + out, err

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.communicate(timeout=COMMAND_TIMEOUT)  # reaps it and closes its pipes


@pytest.fixture
def processes() -> list[Process]:
    started: list[Process] = []
    yield started  # type: ignore[misc]
    for process in started:
        process.close()


def ours(server: EtcdServer, *args: str) -> list[str]:
    return command(f"--endpoints={server.endpoint}", *args)


def theirs(server: EtcdServer, *args: str) -> list[str]:
    return [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", *args]


def test_watch_prints_as_etcdctl_and_ends_on_ctrl_c(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    start = json.loads(cli("get", "-w", "json", "x").out)["header"]["revision"] + 1
    watchers = {}
    for name, argv in (("ours", ours), ("theirs", theirs)):
        for output in ("simple", "json"):
            args = argv(server, "watch", "-w", output, "--prefix", prefix, "--prev-kv")
            process = Process([*args, f"--rev={start}"])
            processes.append(process)
            watchers[name, output] = process
    # A first event replayed from --rev proves every watcher is caught up with the store.
    cli("put", prefix + "probe", "1")
    for (_, output), process in watchers.items():
        process.read_until(b"probe" if output == "simple" else b"cHJvYmU")
    for args in (("put", "k", "a"), ("put", "k", "b"), ("del", "k"), ("put", "k2", "x y")):
        assert cli(args[0], prefix + args[1], *args[2:]).code == 0
    last_value = b"x y"
    outputs = {}
    for key, process in watchers.items():
        process.read_until(last_value if key[1] == "simple" else b"eCB5")
        code, out, err = process.interrupt()
        outputs[key] = out
        if key[0] == "ours":
            assert (code, err) == (0, b"")
    assert outputs["ours", "simple"] == outputs["theirs", "simple"]
    ours_json = [json.loads(line) for line in outputs["ours", "json"].splitlines()]
    theirs_json = [json.loads(line) for line in outputs["theirs", "json"].splitlines()]
    assert ours_json == theirs_json
    assert [event.get("type", 0) for line in ours_json for event in line["Events"]] == [
        0, 0, 0, 1, 0,
    ]  # fmt: skip


def test_watch_json_prints_one_reply_per_revision(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    """Replayed history arrives in one server reply; each revision is printed as a reply of its
    own, never with the first event of the next revision (as a live watch would see them)."""
    start = json.loads(cli("put", "-w", "json", prefix + "a", "1").out)["header"]["revision"]
    txn = f"\nput {prefix}b 2\nput {prefix}c 3\n\n\n".encode()
    assert cli("txn", stdin=txn).code == 0
    assert cli("put", prefix + "d", "4").code == 0
    watcher = Process(ours(server, "watch", "-w", "json", "--prefix", prefix, f"--rev={start}"))
    processes.append(watcher)
    watcher.read_until(base64.b64encode(prefix.encode() + b"d"))
    code, out, err = watcher.interrupt()
    assert (code, err) == (0, b"")
    replies = [json.loads(line) for line in out.splitlines()]
    revisions = [[e["kv"]["mod_revision"] for e in reply["Events"]] for reply in replies]
    assert revisions == [[start], [start + 1] * 2, [start + 2]]
    assert [reply["Header"]["revision"] for reply in replies] == [start, start + 1, start + 2]


def test_interactive_watch_as_etcdctl(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    """``watch -i``: requests read line by line, bad lines reported and skipped, and the end
    of the input ends the command with 3, for both tools alike."""
    start = json.loads(cli("get", "-w", "json", "x").out)["header"]["revision"] + 1
    requests = [
        f"watch --rev={start} {prefix}a",
        "bogus line",
        "watch",
        f"watch --prefix {prefix}b {prefix}c",  # a range_end with --prefix
        f"watch --prev-kv --rev {start} --prefix {prefix}b",
    ]
    watchers = {}
    for name, argv in (("ours", ours), ("theirs", theirs)):
        process = Process(argv(server, "watch", "-i", "-w", "json"), stdin=subprocess.PIPE)
        processes.append(process)
        assert process.popen.stdin is not None
        process.popen.stdin.write("".join(line + "\n" for line in requests).encode())
        process.popen.stdin.flush()
        watchers[name] = process
    for args in (("put", "a", "1"), ("put", "b1", "2"), ("put", "b1", "3"), ("del", "a")):
        assert cli(args[0], prefix + args[1], *args[2:]).code == 0
    outputs = {}
    for name, process in watchers.items():
        process.read_until(b'"type":1')  # the delete
        process.read_until(b"Mw==")  # and b1's value 3 (the watches print side by side)
        out, err = process.popen.communicate(timeout=COMMAND_TIMEOUT)  # ends the input
        replies = [json.loads(line) for line in (process.output + out).splitlines()]
        # The events, whatever replies carried them: a watch created after the writes gets
        # them replayed, in one reply from etcd (etcdctl prints it so), one per revision here.
        events = sorted(repr(event) for reply in replies for event in reply["Events"])
        outputs[name] = (process.popen.returncode, events, err)
    assert outputs["ours"][:2] == outputs["theirs"][:2]
    if not etcd_3_4():  # 3.4 words its messages a little differently
        assert outputs["ours"][2] == outputs["theirs"][2]
    assert len(outputs["ours"][1]) == 4  # a put and a delete of a, two puts of b1
    code, _, err = outputs["ours"]
    assert code == 3
    assert err.decode().splitlines() == [
        "Invalid command bogus line (only support watch)",
        "Invalid command watch (command type or key is not provided)",
        f"Invalid command watch --prefix {prefix}b {prefix}c"
        " (`range_end` and `--prefix` are mutually exclusive)",
        "Error: error reading watch request line: EOF",
    ]


def test_watch_runs_a_command_for_each_event(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    """etcdctl's variables, quoted as Go quotes them, and a failing command ends the watch
    with 1 and etcdctl's line; run for both tools on the same events."""
    script = (
        'printf "%s %s=%s %s\\n" "$ETCD_WATCH_EVENT_TYPE" "$ETCD_WATCH_KEY" '
        '"$ETCD_WATCH_VALUE" "$ETCD_WATCH_REVISION"'
    )
    start = json.loads(cli("get", "-w", "json", "x").out)["header"]["revision"] + 1
    watchers = {}
    for name, argv in (("ours", ours), ("theirs", theirs)):
        args = ["watch", prefix + "k", f"--rev={start}", "--", "sh", "-c", script]
        watchers[name] = Process(argv(server, *args))
        processes.append(watchers[name])
        failing = Process(
            argv(server, "watch", prefix + "k", f"--rev={start}", "--", "sh", "-c", "exit 3")
        )
        processes.append(failing)
        watchers[name, "failing"] = failing
    value = 'tab\there "q" é \x01'
    assert cli("put", prefix + "k", value).code == 0
    for name in ("ours", "theirs"):
        watchers[name].read_until(f"{start}\n".encode())
    assert cli("del", prefix + "k").code == 0
    outputs = {}
    for name in ("ours", "theirs"):
        outputs[name] = watchers[name].read_until(f"{start + 1}\n".encode())
        code = watchers[name].interrupt()[0]
        assert code == 0 or name == "theirs"  # etcdctl's watch may die of the signal
        failed = watchers[name, "failing"].popen
        outputs[name, "failing"] = (failed.wait(timeout=COMMAND_TIMEOUT), failed.stderr.read())  # type: ignore[union-attr]
    assert outputs["ours"] == outputs["theirs"]
    key = f'"{prefix}k"'
    assert f'"PUT" {key}="tab\\there \\"q\\" é \\x01" {start}\n'.encode() in outputs["ours"]
    assert f'"DELETE" {key}="" {start + 1}\n'.encode() in outputs["ours"]
    assert outputs["ours", "failing"] == outputs["theirs", "failing"]
    assert outputs["ours", "failing"] == (
        1,
        b'command ["sh" "-c" "exit 3"] error (exit status 3)\n',
    )


def test_lock_runs_a_command_holding_the_lock(cli: Runner, server: EtcdServer, prefix: str) -> None:
    script = 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"; exit 3'
    done = subprocess.run(
        ours(server, "lock", prefix + "L", "--", "sh", "-c", script),
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr == b"Error: exit status 3\n"
    key, revision = done.stdout.decode().split()
    assert key.startswith(prefix + "L/")
    created = json.loads(cli.etcdctl("get", "-w", "json", "x").out)["header"]["revision"]
    assert 0 < int(revision) < created
    assert cli("get", "--prefix", prefix + "L/").out == b""  # released


def wait_for_keys(cli: Runner, key_prefix: str, count: int) -> None:
    """Wait until ``count`` keys exist under a lock's or election's prefix: all are queued."""
    deadline = time.monotonic() + WAIT
    while len(cli("get", "--prefix", key_prefix, "--keys-only").out.split()) < count:
        assert time.monotonic() < deadline, f"fewer than {count} keys under {key_prefix}"
        time.sleep(0.05)


def test_lock_excludes_etcdctl_lock(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    holder = Process(theirs(server, "lock", prefix + "L"))
    processes.append(holder)
    holder.read_until(b"\n\n")  # etcdctl prints the key and its (empty) value once it holds it
    waiter = Process(ours(server, "lock", prefix + "L", "--", "echo", "acquired"))
    processes.append(waiter)
    wait_for_keys(cli, prefix + "L/", 2)
    assert waiter.popen.poll() is None
    assert waiter.output == b""
    code, _, _ = holder.interrupt()
    assert code == 0
    waiter.read_until(b"acquired\n")
    assert waiter.popen.wait(timeout=COMMAND_TIMEOUT) == 0
    ours_holder = Process(ours(server, "lock", prefix + "M"))
    processes.append(ours_holder)
    printed = ours_holder.read_until(b"\n\n")
    assert printed.startswith(f"{prefix}M/".encode())
    other = Process(theirs(server, "lock", prefix + "M", "--", "echo", "theirs now"))
    processes.append(other)
    wait_for_keys(cli, prefix + "M/", 2)
    assert ours_holder.interrupt()[0] == 0
    other.read_until(b"theirs now\n")


def test_elect_campaigns_and_observes_with_etcdctl(
    cli: Runner, server: EtcdServer, prefix: str, processes: list[Process]
) -> None:
    name = prefix + "E"
    observer = Process(theirs(server, "elect", "-l", name))
    processes.append(observer)
    leader = Process(ours(server, "elect", name, "first"))
    processes.append(leader)
    printed = leader.read_until(b"first\n")
    assert printed.startswith(f"{name}/".encode())
    observer.read_until(b"first\n")
    our_observer = Process(ours(server, "elect", "-l", name))
    processes.append(our_observer)
    our_observer.read_until(b"first\n")
    second = Process(theirs(server, "elect", name, "second"))
    processes.append(second)
    wait_for_keys(cli, name + "/", 2)
    assert second.output == b""
    assert leader.interrupt()[:2] == (0, printed)  # resigned on Ctrl-C
    second.read_until(b"second\n")
    our_observer.read_until(b"second\n")
    assert our_observer.interrupt()[0] == 0
