"""Locks against a real etcd: the Go Mutex recipe, mutual exclusion with ``etcdctl lock``, the
lower-level form with a caller's lease and owner, and the server-side v3lock service."""

from __future__ import annotations

import os

import pytest
import trio

from puregrpc_etcd.client import connect
from puregrpc_etcd.errors import DeadlineExceededError, LockLostError
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool
from puregrpc_etcd.txn import Compare, Op


def etcdctl(server: EtcdServer, *args: str) -> list[str]:
    return [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", *args]


async def test_lock_key_layout_and_fencing_token(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        async with client.lock("layout", ttl=10) as lock:
            assert lock.name == b"layout"
            assert lock.key == b"layout/%x" % lock.lease_id
            kv = (await client.get(lock.key)).kvs[0]
            assert kv.create_revision == lock.revision
            assert kv.lease == lock.lease_id
            assert f"{lock.lease_id:x}" in repr(lock)
            guarded = await client.txn(
                [Compare.create_revision(lock.key) == lock.revision],
                [Op.put("layout-guarded", "by the holder")],
            )
            assert guarded.succeeded
        assert await client.get_value(lock.key) is None
        stale = await client.txn(
            [Compare.create_revision(lock.key) == lock.revision],
            [Op.put("layout-guarded", "by a former holder")],
        )
        assert not stale.succeeded
        assert (await client.time_to_live(lock.lease_id)).ttl == -1


async def test_try_lock_never_waits(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        async with client.try_lock("try", ttl=10) as first:
            assert first is not None
            async with client.try_lock("try", ttl=10) as second:
                assert second is None
            # It left no key behind.
            assert len((await client.get("try/", prefix=True)).kvs) == 1
        async with client.try_lock("try", ttl=10) as third:
            assert third is not None


async def test_try_lock_awaited_holds_until_released(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        lock = await client.try_lock("try-await", ttl=10, timeout=5)
        assert lock is not None
        assert await client.try_lock("try-await", ttl=10) is None
        async with client.try_lock("try-await", ttl=10) as blocked:
            assert blocked is None
        # Only the holder's key is there, on a lease kept alive for it.
        keys = [kv.key for kv in (await client.get("try-await/", prefix=True)).kvs]
        assert keys == [lock.key]
        assert (await client.time_to_live(lock.lease_id)).ttl > 0
        assert await lock.release()
        assert (await client.get("try-await/", prefix=True)).kvs == []
        assert (await client.time_to_live(lock.lease_id)).ttl == -1
        assert not await lock.release()  # releasing again does nothing
        again = await client.try_lock("try-await", ttl=10)
        assert again is not None
        with pytest.raises(TypeError, match="await"):
            bool(client.try_lock("try-await"))
    # The client closed with the lock still held: its session lease went with it.
    async with connect(server.endpoints) as client:
        assert (await client.get("try-await/", prefix=True)).kvs == []
        assert (await client.time_to_live(again.lease_id)).ttl == -1


async def test_release_inside_the_block_ends_the_lock_early(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        async with client.lock("early", ttl=10) as lock:
            assert await lock.release()
            async with client.try_lock("early", ttl=10) as other:
                assert other is not None
        assert (await client.time_to_live(lock.lease_id)).ttl == -1


async def test_waiter_cancelled_or_timed_out_leaves_the_queue(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, client.lock("cancel", ttl=10):
        with trio.move_on_after(0.5):
            async with client.lock("cancel", ttl=10):
                pytest.fail("acquired a held lock")
        with pytest.raises(DeadlineExceededError):
            async with client.lock("cancel", ttl=10, timeout=0.5):
                pytest.fail("acquired a held lock")
        assert len((await client.get("cancel/", prefix=True)).kvs) == 1


async def test_losing_the_session_cancels_the_body(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, connect(server.endpoints) as other:
        reached_end = False

        async def hold() -> None:
            nonlocal reached_end
            async with client.lock("lost", ttl=3) as lock:
                await other.revoke(lock.lease_id)
                with trio.fail_after(10):
                    await lock.lost.wait()
                    await trio.sleep_forever()
                reached_end = True

        with pytest.raises(LockLostError):
            await hold()
        assert not reached_end


async def test_waiters_are_served_in_order(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        order: list[int] = []

        async def wait(index: int) -> None:
            async with client.lock("fifo", ttl=10):
                order.append(index)

        async with trio.open_nursery() as nursery, client.lock("fifo", ttl=10) as held:
            start = held.revision + 1
            async with client.watch("fifo/", prefix=True, start_revision=start) as queue:
                # Queue them one after the other: each puts its key before the next starts.
                for index in range(5):
                    nursery.start_soon(wait, index)
                    with trio.fail_after(10):
                        async for event in queue:
                            assert event.type == "put"
                            break
        assert order == [0, 1, 2, 3, 4]


async def test_lower_level_form_with_a_caller_lease_and_owner(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, client.lease(10) as lease:
        lock = await client.acquire_lock("owned", lease, owner="worker-7")
        assert lock is not None
        assert lock.key == b"owned/worker-7"
        assert lock.lost is lease.lost
        # The same owner again: the same lock, not a second waiter.
        again = await client.acquire_lock("owned", lease, owner="worker-7")
        assert again is not None
        assert again.revision == lock.revision
        assert await client.acquire_lock("owned", lease.id, owner="worker-8", wait=False) is None
        assert await client.release_lock("owned", owner="worker-7")
        assert not await client.release_lock("owned", owner="worker-7")
        by_lease = await client.acquire_lock("owned", lease.id)
        assert by_lease is not None
        assert by_lease.key == b"owned/%x" % lease.id
        assert await client.release_lock("owned", lease=lease.id)
        with pytest.raises(ValueError, match="lease or the owner"):
            await client.release_lock("owned")


async def test_lock_rpc_on_a_lease_we_keep_alive(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, client.lease(10) as lease:
        key = await client.lock_rpc("rpc", lease)
        assert key == b"rpc/%x" % lease.id
        # The server's lock is the same recipe: ours waits behind it.
        with pytest.raises(DeadlineExceededError):
            async with client.lock("rpc", ttl=10, timeout=0.5):
                pass
        await client.unlock_rpc(key)
        async with client.try_lock("rpc", ttl=10) as ours:
            assert ours is not None
        with pytest.raises(ValueError, match="lease"):
            await client.lock_rpc("rpc", 0)


async def test_bad_names_fail_before_io(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        with pytest.raises(ValueError, match="empty"):
            async with client.lock(""):
                pass
        with pytest.raises(TypeError):
            async with client.lock(42):
                pass


async def test_bad_ttls_and_timeouts_fail_before_io(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        for ttl in (0, -5):
            with pytest.raises(ValueError, match="ttl"):
                async with client.lock("bad-ttl", ttl=ttl):
                    pass
            with pytest.raises(ValueError, match="ttl"):
                await client.try_lock("bad-ttl", ttl=ttl)
            with pytest.raises(ValueError, match="ttl"):
                client.election("bad-ttl", ttl=ttl)
        for timeout, error in ((0, ValueError), (-1, ValueError), ("1", TypeError)):
            with pytest.raises(error, match="timeout"):
                await client.try_lock("bad-ttl", timeout=timeout)  # type: ignore[arg-type]
            with pytest.raises(error, match="timeout"):
                await client.release_lock("bad-ttl", lease=1, timeout=timeout)  # type: ignore[arg-type]
            with pytest.raises(error, match="timeout"):
                async with client.lock("bad-ttl", timeout=timeout):  # type: ignore[arg-type]
                    pass
        # Nothing was granted or written on the way.
        assert (await client.get("bad-ttl", prefix=True)).kvs == []


async def test_no_overlap_among_tasks_and_etcdctl_processes(
    server: EtcdServer, tmp_path: os.PathLike[str]
) -> None:
    """20 trio tasks and 2 ``etcdctl lock`` processes take turns; each holder writes start and
    end marks to one file, and no two holders' marks ever interleave."""
    marks = os.path.join(os.fspath(tmp_path), "marks")
    open(marks, "w").close()  # noqa: ASYNC230 - a local file created before any task runs
    rounds_per_process = 3
    critical = f'echo "start ctl$$" >> {marks}; sleep 0.05; echo "end ctl$$" >> {marks}'

    def mark(line: str) -> None:
        with open(marks, "a") as file:
            file.write(line + "\n")

    async with connect(server.endpoints) as client:

        async def task(index: int) -> None:
            async with client.lock("contended", ttl=10):
                mark(f"start task{index}")
                await trio.sleep(0.02)
                mark(f"end task{index}")

        async def process() -> None:
            for _ in range(rounds_per_process):
                result = await trio.run_process(
                    etcdctl(server, "lock", "contended", "--", "sh", "-c", critical),
                    capture_stdout=True,
                    capture_stderr=True,
                )
                assert result.returncode == 0, result.stderr

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for _ in range(2):
                    nursery.start_soon(process)
                for index in range(20):
                    nursery.start_soon(task, index)

    with open(marks) as file:  # noqa: ASYNC230 - every writer has finished
        lines = file.read().splitlines()
    assert len(lines) == 2 * (20 + 2 * rounds_per_process)
    holders = []
    for start, end in zip(lines[0::2], lines[1::2]):
        assert start.split()[0] == "start", lines
        assert end.split()[0] == "end", lines
        assert start.split()[1] == end.split()[1], lines
        holders.append(start.split()[1])
    assert sum(h.startswith("task") for h in holders) == 20
    assert sum(h.startswith("ctl") for h in holders) == 2 * rounds_per_process


async def test_locks_and_elections_in_a_namespace(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        app = client.namespace("app/")
        async with app.lock("ns-lock", ttl=10) as lock:
            assert lock.key == b"ns-lock/%x" % lock.lease_id
            assert await client.get_value(b"app/" + lock.key) == b""
            # The same name outside the namespace is another lock.
            async with client.try_lock("ns-lock", ttl=10) as outside:
                assert outside is not None
            async with app.try_lock("ns-lock", ttl=10) as inside:
                assert inside is None
        election = app.election("ns-election", ttl=10)
        async with election.campaign("v") as leader:
            assert leader.key == b"ns-election/%x" % leader.lease
            current = await election.leader()
            assert current is not None
            assert current.key == leader.key
            assert (await client.get(b"app/" + leader.key)).kvs[0].value == b"v"
