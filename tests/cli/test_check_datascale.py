"""``check datascale`` against etcdctl's on the same server: what it prints, its refusals, and
that it leaves no key behind (compacted and defragmented when asked)."""

from __future__ import annotations

import json
import re

from cli_support import Runner

from puregrpc_etcd._cli.check_datascale import datascale_key, resident_memory

_NUMBERS = re.compile(r"\d+(\.\d+)?")


def shape(text: str) -> list[str]:
    """The lines printed, numbers blanked (etcdctl's progress bar, on its stdout, dropped)."""
    lines = [line for line in text.split("\n") if line and not re.match(r"^\s*\d+ / \d+", line)]
    return [_NUMBERS.sub("N", line) for line in lines]


def test_datascale_writes_measures_and_cleans_up(cli: Runner, prefix: str) -> None:
    flags = [f"--prefix={prefix}", "--auto-compact", "--auto-defrag"]
    ours = cli("check", "datascale", *flags, "--limit=300")
    assert (ours.code, ours.error) == (0, ""), ours.error
    lines = ours.text.splitlines()
    assert lines[0] == (
        "Start data scale check for work load [300 key-value pairs, 1024 bytes per key-value, "
        "50 concurrent clients]."
    )
    assert re.fullmatch(r"PASS: Approximate system memory used : -?\d+\.\d\d MB\.", lines[-1])
    revision = int(lines[1].split()[-1])
    assert lines[1:5] == [
        f"Compacting with revision {revision}",
        f"Compacted with revision {revision}",
        f'Defragmenting "{cli.endpoint}"',
        f'Defragmented "{cli.endpoint}"',
    ]
    assert (
        json.loads(cli("get", prefix, "--prefix", "--count-only", "-w", "json").out).get("count", 0)
        == 0
    )
    old = cli("get", prefix, "--prefix", f"--rev={revision - 1}")
    assert (old.code, old.error) == (
        1,
        "Error: etcdserver: mvcc: required revision has been compacted\n",
    )
    theirs = cli.etcdctl("check", "datascale", *flags)  # the smallest load: 10000 pairs
    assert (theirs.code, theirs.err) == (0, b"")
    assert shape(ours.text) == shape(theirs.text)


def test_datascale_refusals(cli: Runner, prefix: str) -> None:
    cli("put", prefix + "taken", "v")
    for args, code in (
        ([f"--prefix={prefix}"], 3),  # the prefix has keys: nothing is written or deleted
        ([f"--prefix={prefix}x/", "--load=huge"], 4),
    ):
        ours = cli("check", "datascale", *args, "--limit=10")
        theirs = cli.etcdctl("check", "datascale", *args)
        assert ours.code == theirs.code == code, ours.error
        assert ours.error == theirs.error.replace("etcdctl", "puregrpc-etcd")
        assert ours.out == theirs.out == b""
    assert cli("get", prefix, "--prefix", "--keys-only").text == f"{prefix}taken\n\n"


def test_keys_and_metrics_as_etcdctl_makes_and_reads_them() -> None:
    key = datascale_key(b"p/", __import__("random").Random(1))
    assert key.startswith(b"p/")
    assert len(key) == 2 + 512
    page = "# HELP process_resident_memory_bytes x\nprocess_resident_memory_bytes 3.5e+07\n"
    assert resident_memory(page) == 3.5e07
    assert resident_memory("nothing\n") is None
