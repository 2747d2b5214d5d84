"""member, endpoint, alarm, defrag, move-leader and snapshot save against a real etcd."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

from cli_support import COMMAND_TIMEOUT, Runner, command

from puregrpc_etcd.testing import EtcdServer


def test_member_list_matches_etcdctl_in_every_format(cli: Runner) -> None:
    for output in ("simple", "json", "table"):
        ours, theirs = (
            cli("member", "list", "-w", output),
            cli.etcdctl("member", "list", "-w", output),
        )
        assert ours.code == theirs.code == 0
        assert ours.out == theirs.out, output


def test_endpoint_status_and_hashkv_match_etcdctl(cli: Runner) -> None:
    for args in (
        ["endpoint", "status"],
        ["endpoint", "hashkv"],
        ["endpoint", "status", "--cluster"],
    ):
        for output in ("simple", "json", "table"):
            ours, theirs = cli(*args, "-w", output), cli.etcdctl(*args, "-w", output)
            assert ours.code == theirs.code == 0, (args, ours.error)
            assert ours.out == theirs.out, (args, output)


def test_endpoint_health(cli: Runner) -> None:
    healthy = cli("endpoint", "health")
    pattern = rf"{re.escape(cli.endpoint)} is healthy: successfully committed proposal: took = "
    assert re.match(pattern + r"[0-9.]+(µs|ms|s)\n$", healthy.text)
    as_json = json.loads(cli("endpoint", "health", "-w", "json").out)
    assert [(item["endpoint"], item["health"]) for item in as_json] == [(cli.endpoint, True)]
    real = json.loads(cli.etcdctl("endpoint", "health", "-w", "json").out)
    assert [sorted(item) for item in as_json] == [sorted(item) for item in real]
    # Only the titles: the width of the "took" column depends on the durations measured.
    titles = [
        cli(*args).text.splitlines()[1].split() for args in (["endpoint", "health", "-w", "table"],)
    ] + [cli.etcdctl("endpoint", "health", "-w", "table").text.splitlines()[1].split()]
    assert (
        titles[0] == titles[1] == ["|", "ENDPOINT", "|", "HEALTH", "|", "TOOK", "|", "ERROR", "|"]
    )


def test_member_add_promote_and_remove_a_learner(cli: Runner) -> None:
    added = cli("member", "add", "newbie", "--learner", "--peer-urls=http://127.0.0.1:1")
    assert added.code == 0, added.error
    lines = added.text.splitlines()
    match = re.match(r"Member ([0-9a-f ]{16}) added to cluster ([0-9a-f ]{16})$", lines[0])
    assert match is not None
    member_id = match.group(1).strip()
    assert lines[2] == 'ETCD_NAME="newbie"'
    initial = lines[3].removeprefix('ETCD_INITIAL_CLUSTER="').rstrip('"').split(",")
    assert sorted(initial)[1] == "newbie=http://127.0.0.1:1"
    assert sorted(initial)[0].startswith("default=http://127.0.0.1:")
    assert lines[4:] == [
        'ETCD_INITIAL_ADVERTISE_PEER_URLS="http://127.0.0.1:1"',
        'ETCD_INITIAL_CLUSTER_STATE="existing"',
    ]
    assert cli("member", "list").out == cli.etcdctl("member", "list").out
    assert f"{member_id}, unstarted, , http://127.0.0.1:1, , true" in cli("member", "list").text
    promoted = cli("member", "promote", member_id)
    assert promoted.code == 1
    assert promoted.error == (
        "Error: etcdserver: can only promote a learner member which is in sync with leader\n"
    )
    removed = cli("member", "remove", member_id)
    assert removed.text == f"Member {member_id:>16} removed from cluster {match.group(2)}\n"
    assert len(cli("member", "list").text.splitlines()) == 1
    missing_urls = cli("member", "add", "x")
    assert (missing_urls.code, missing_urls.error) == (
        128,
        "Error: member peer urls not provided\n",
    )


def test_alarm_defrag_and_move_leader(cli: Runner) -> None:
    assert (cli("alarm", "list").code, cli("alarm", "list").out) == (0, b"")
    assert cli("alarm", "disarm").code == 0
    ours, theirs = cli("defrag"), cli.etcdctl("defrag")
    assert (
        ours.out == theirs.out == f"Finished defragmenting etcd member[{cli.endpoint}]\n".encode()
    )
    moved = cli("move-leader", "1")
    assert moved.code == 1
    assert moved.error.count("\n") == 1


def test_snapshot_save(cli: Runner, tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    saved = cli("snapshot", "save", str(target))
    assert (saved.code, saved.text, saved.err) == (0, f"Snapshot saved at {target}\n", b"")
    assert target.stat().st_size > 0
    assert not (tmp_path / "backup.db.part").exists()
    unwritable = cli("snapshot", "save", str(tmp_path / "no" / "such" / "dir.db"))
    assert unwritable.code == 1
    assert unwritable.error.startswith("Error: ")
    assert unwritable.error.count("\n") == 1


def test_snapshot_save_draws_a_progress_bar_on_a_terminal(
    server: EtcdServer, tmp_path: Path
) -> None:
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            command(f"--endpoints={server.endpoint}", "snapshot", "save", str(tmp_path / "s.db")),
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other side is closed: all is read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert done.returncode == 0
    assert b"100%" in drawn
    assert b"bytes" in drawn
