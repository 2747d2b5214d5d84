"""Maintenance against a real etcd: status, alarms, defragment, hashes and snapshots that
``etcdutl`` accepts and restores into a server serving the same keys."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.maintenance import Alarm, HashKVResponse, StatusResponse
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool


def etcdutl(*args: str) -> str:
    result = subprocess.run(
        [find_etcd_tool("etcdutl"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


async def put_many(client: etcd.Client, prefix: str, count: int) -> None:
    batch = 100  # below the server's 128 operations per txn
    for start in range(0, count, batch):
        ops = [
            etcd.Op.put(f"{prefix}{index:05d}", f"value-{index}")
            for index in range(start, min(start + batch, count))
        ]
        await client.txn(success=ops)


async def test_status_describes_the_member(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        status = await client.maintenance.status()
        assert isinstance(status, StatusResponse)
        assert status.version.startswith("3.")
        assert status.leader == status.header.member_id == status.member_id
        assert status.is_leader
        assert not status.is_learner
        assert status.raft_term >= 2
        assert status.raft_index >= status.raft_applied_index > 0
        assert status.db_size >= status.db_size_in_use > 0
        assert status.errors == ()
        aimed = await client.maintenance.status(server.endpoint)
        assert aimed.header.member_id == status.header.member_id
        assert (await client.maintenance.status(server.client_url)).leader == status.leader


async def test_status_of_an_endpoint_nobody_serves_fails_clearly(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        with socket_closed_port() as port, pytest.raises(etcd.UnavailableError):
            await client.maintenance.status(f"127.0.0.1:{port}", timeout=5)
        # The client's own connection is not disturbed by the failed side trip.
        assert (await client.maintenance.status()).is_leader


async def test_argument_errors_come_before_any_io(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        with pytest.raises(TypeError):
            await client.maintenance.hash_kv("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            await client.maintenance.hash_kv(-1)
        with pytest.raises(TypeError):
            await client.maintenance.status(2379)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.maintenance.disarm("nospace")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.maintenance.snapshot(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.maintenance.move_leader("abc")  # type: ignore[arg-type]


async def test_hash_kv_agrees_at_one_revision_and_changes_after_writes(
    server: EtcdServer,
) -> None:
    async with etcd.connect(server.endpoints) as client:
        put = await client.put("hash/a", "1")
        first = await client.maintenance.hash_kv(put.header.revision)
        again = await client.maintenance.hash_kv(put.header.revision, server.endpoint)
        assert isinstance(first, HashKVResponse)
        assert first.hash == again.hash
        assert first.header.revision >= put.header.revision
        await client.put("hash/a", "2")
        latest = await client.maintenance.hash_kv()
        assert latest.hash != first.hash


async def test_defragment_gives_back_the_space_of_deleted_keys(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        value = "x" * 10_000
        for index in range(40):
            await client.put(f"defrag/{index}", value)
        deleted = await client.delete("defrag/", prefix=True)
        assert deleted.deleted == 40
        await client.compact(deleted.header.revision, physical=True)
        before = await client.maintenance.status()
        await client.maintenance.defragment(server.endpoint, timeout=30)
        after = await client.maintenance.status()
        assert after.db_size < before.db_size
        assert after.db_size_in_use <= after.db_size


async def test_alarms_on_a_healthy_server(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        assert await client.maintenance.alarms() == []
        assert await client.maintenance.disarm() == []


async def test_a_full_store_raises_nospace_which_disarm_clears() -> None:
    small_quota = ["--quota-backend-bytes", str(256 * 1024)]
    async with EtcdServer(args=small_quota) as server, etcd.connect(server.endpoints) as client:
        value = "v" * 16_000
        # etcd checks the quota against its database file, which grows when a batch commits
        # (every 100 ms): on a busy machine 200 puts (3.2 MB) once all went through.
        with trio.fail_after(60), pytest.raises(etcd.NoSpaceError):  # noqa: PT012
            for index in range(2_000):
                await client.put(f"fill/{index}", value)
        member_id = (await client.maintenance.status()).member_id
        alarm = Alarm(member_id=member_id, alarm="nospace")
        assert await client.maintenance.alarms() == [alarm]
        assert any("NOSPACE" in error for error in (await client.maintenance.status()).errors)
        # Make room first, as an operator must, or the alarm comes straight back.
        deleted = await client.delete("fill/", prefix=True)
        await client.compact(deleted.header.revision, physical=True)
        await client.maintenance.defragment(timeout=30)
        assert await client.maintenance.disarm(alarm) == [alarm]
        assert await client.maintenance.alarms() == []
        await client.put("fill/again", "fits")


async def test_snapshot_of_10000_keys_restores_into_a_server_serving_them(
    server: EtcdServer, tmp_path: Path
) -> None:
    path = tmp_path / "backup.db"
    reports: list[tuple[int, int | None]] = []
    async with etcd.connect(server.endpoints) as client:
        await put_many(client, "snap/", 10_000)
        last = await client.put("snap/last", "written before the snapshot")
        size = await client.maintenance.snapshot(path, progress=lambda *r: reports.append(r))
    assert path.stat().st_size == size
    assert listing(tmp_path) == ["backup.db"]
    assert reports
    assert [done for done, _ in reports] == sorted({done for done, _ in reports})
    assert reports[-1] == (size, size)
    status = json.loads(etcdutl("snapshot", "status", "-w", "json", str(path)))
    assert status["revision"] >= last.header.revision
    assert status["totalKey"] >= 10_001

    restored = EtcdServer(name="restored")
    try:
        etcdutl(
            "snapshot", "restore", str(path),
            "--data-dir", restored.data_dir,
            "--name", restored.name,
            "--initial-cluster", f"{restored.name}={restored.peer_url}",
            "--initial-advertise-peer-urls", restored.peer_url,
        )  # fmt: skip
        await trio.to_thread.run_sync(restored.start)
        async with etcd.connect(restored.endpoints) as client:
            got = await client.get("snap/", prefix=True, count_only=True)
            assert got.count == 10_001
            assert await client.get_value("snap/04321") == b"value-4321"
            assert await client.get_value("snap/last") == b"written before the snapshot"
            pages = [kv async for kv in client.scan("snap/0", page_size=2_000)]
            assert [kv.key for kv in pages] == [f"snap/{i:05d}".encode() for i in range(10_000)]
    finally:
        await trio.to_thread.run_sync(restored.close)


async def test_snapshot_to_file_objects_sync_and_async(server: EtcdServer, tmp_path: Path) -> None:
    async with etcd.connect(server.endpoints) as client:
        buffer = io.BytesIO()
        size = await client.maintenance.snapshot(buffer)
        assert len(buffer.getvalue()) == size
        path = tmp_path / "async.db"
        async with await trio.open_file(path, "wb") as output:
            assert await client.maintenance.snapshot(output) > 0
    etcdutl("snapshot", "status", str(path))


async def test_a_failed_snapshot_leaves_no_file(server: EtcdServer, tmp_path: Path) -> None:
    path = tmp_path / "failed.db"

    def stop_after_first_chunk(done: int, total: int | None) -> None:
        raise RuntimeError("disk full, say")

    async with etcd.connect(server.endpoints) as client:
        with pytest.raises(RuntimeError, match="disk full"):
            await client.maintenance.snapshot(path, progress=stop_after_first_chunk)
        assert listing(tmp_path) == []
        with trio.move_on_after(0) as scope:
            await client.maintenance.snapshot(path)
        assert scope.cancelled_caught
        assert listing(tmp_path) == []
        # The connection survived both, and the next snapshot is whole.
        assert await client.maintenance.snapshot(path) == path.stat().st_size


async def test_a_snapshot_file_is_for_its_owner_only(server: EtcdServer, tmp_path: Path) -> None:
    # It holds every key and value: 0600, as etcdctl writes it, even over a leftover .part.
    path = tmp_path / "private.db"
    leftover = tmp_path / "private.db.part"
    leftover.write_bytes(b"from an earlier attempt")
    leftover.chmod(0o644)
    async with etcd.connect(server.endpoints) as client:
        await client.maintenance.snapshot(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert listing(tmp_path) == ["private.db"]


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A loopback port that nothing listens on, for as long as the block runs."""
    # Bound but not listening: connections are refused, and no one else gets the port.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])
