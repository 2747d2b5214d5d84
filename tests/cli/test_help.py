"""``--help`` of every command that etcdctl also has shows every flag etcdctl's help lists for
it (its own options and the global ones)."""

from __future__ import annotations

import re
import subprocess

import pytest
from cli_support import (
    COMMAND_TIMEOUT,
    Runner,
    etcd_3_4,
    etcdctl_commands,
    leaf_commands,
    name_of,
)

from puregrpc_etcd.testing import find_etcd_tool

SHARED = [leaf for leaf in leaf_commands() if name_of(leaf) in etcdctl_commands()]
_FLAG = re.compile(r"(?m)^\s+(?:-\w, )?(--[\w-]+)")


def etcdctl_flags(leaf: list[str]) -> set[str]:
    done = subprocess.run(
        [find_etcd_tool("etcdctl"), *leaf, "--help"],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=True,
    )
    text = done.stdout.decode()
    return set(_FLAG.findall(text[text.index("OPTIONS:") :]))


def test_every_etcdctl_command_is_there() -> None:
    ours = {name_of(leaf) for leaf in leaf_commands()}
    # Not ours: shell completion, etcdctl's help command (ours is --help), snapshot restore
    # (etcdutl's), and check perf until the benchmark commands land.
    missing = etcdctl_commands() - ours
    assert missing <= {
        "completion bash", "completion fish", "completion powershell", "completion zsh",
        "help", "snapshot restore", "check perf",
        "migrate",  # etcdctl 3.4's v2-to-v3 data migration (gone in 3.5)
    }, missing  # fmt: skip


@pytest.mark.parametrize("leaf", SHARED, ids=name_of)
def test_help_lists_etcdctl_flags(cli: Runner, leaf: list[str]) -> None:
    theirs = etcdctl_flags(leaf)
    assert "--endpoints" in theirs  # the global ones are read too
    result = cli(*leaf, "--help", endpoint=False)
    assert (result.code, result.err) == (0, b"")
    shown = set(re.findall(r"--[\w-]+", result.text))
    assert theirs - shown == set()


def test_etcdctl_flags_without_a_feature_behind_them(cli: Runner, prefix: str) -> None:
    """Flags that etcdctl has and we parse: some work as etcdctl's, the features we lack are
    refused as unsupported (4), never ignored silently."""
    deleted = []
    for tool in (cli,) if etcd_3_4() else (cli, cli.etcdctl):  # --range is etcdctl 3.5's
        # --range changes nothing: the key alone goes
        cli("put", prefix + "k", "v")
        cli("put", prefix + "k2", "v")
        deleted.append(tool("del", prefix + "k", "--range"))
    assert [(d.code, d.out) for d in deleted] == [(0, b"1\n")] * len(deleted)
    alive = cli("--keepalive-time=3s", "--keepalive-timeout=2s", "--debug", "get", prefix + "k2")
    assert (alive.code, alive.error) == (0, ""), alive.error
    assert cli("--insecure-transport=false", "--insecure-discovery", "get", prefix + "k2").code == 0
    for args in (
        ["--discovery-srv=example.com", "get", "k"],
        ["-d", "example.com", "get", "k"],
        ["defrag", "--data-dir=/nonexistent"],
    ):
        refused = cli(*args, stdin=None)
        assert refused.code == 4, (args, refused.error)
        assert refused.error.startswith("Error: ")
        assert refused.error.count("\n") == 1
