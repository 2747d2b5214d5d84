"""Iterators left early give back what they hold: an election observer left with ``break`` (no
``async with``) ends its task and its watch on the server, as do ``aclose()`` and a mirror's
change iterator dropped the same way."""

from __future__ import annotations

import gc
import http.client
import platform
from typing import Callable

import pytest
import trio

from puregrpc_etcd.client import Client, connect
from puregrpc_etcd.election import LeaderObserver
from puregrpc_etcd.testing import EtcdServer

#: How long a dropped iterator may take to give its watch back (a round trip to etcd).
RELEASE_BOUND = 5.0


def server_watchers(server: EtcdServer) -> int:
    """etcd's gauge of the watchers it serves, from ``/metrics`` on the client port."""
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("etcd_debugging_mvcc_watcher_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no etcd_debugging_mvcc_watcher_total in /metrics")


def collect_garbage() -> None:
    # CPython frees a dropped iterator at once (reference counting); PyPy at its next GC.
    if platform.python_implementation() != "CPython":
        gc.collect()


async def released(server: EtcdServer, client: Client, watchers: int, tasks: int) -> bool:
    """Whether etcd's watchers and the client's tasks come back to these counts in time (or
    below: what the usual way started may still be ending when they were taken)."""
    for _ in range(int(RELEASE_BOUND / 0.1)):
        collect_garbage()
        now = await trio.to_thread.run_sync(server_watchers, server)
        if now <= watchers and len(client._caller.nursery.child_tasks) <= tasks:
            return True
        await trio.sleep(0.1)
    return False


def observers(client: Client, name: str) -> dict[str, Callable[[], LeaderObserver]]:
    return {
        "recipe": lambda: client.election(name).observe(),
        "rpc": lambda: client.observe_rpc(name),
    }


@pytest.mark.parametrize("kind", ["recipe", "rpc"])
async def test_an_observer_left_with_break_releases_its_task_and_watch(
    server: EtcdServer, kind: str
) -> None:
    async with connect(server.endpoints) as client:
        name = f"left-{kind}"
        observe = observers(client, name)[kind]
        async with client.election(name, ttl=10).campaign("here"):
            async with observe() as leaders:  # the usual way, to settle the client's tasks
                assert (await leaders.__anext__()).value == b"here"
            watchers = await trio.to_thread.run_sync(server_watchers, server)
            tasks = len(client._caller.nursery.child_tasks)
            for _ in range(3):
                async for kv in observe():
                    assert kv.value == b"here"
                    break
            assert await released(server, client, watchers, tasks), (
                f"{await trio.to_thread.run_sync(server_watchers, server)} watchers on etcd"
                f" (from {watchers}),"
                f" {len(client._caller.nursery.child_tasks)} tasks (from {tasks})"
            )


async def test_aclose_releases_an_observer_at_once(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        election = client.election("aclosed", ttl=10)
        async with election.campaign("here"):
            watchers = await trio.to_thread.run_sync(server_watchers, server)
            tasks = len(client._caller.nursery.child_tasks)
            kept = election.observe()
            async for kv in kept:
                assert kv.value == b"here"
                break
            await kept.aclose()
            assert await released(server, client, watchers, tasks)
            with pytest.raises(StopAsyncIteration):
                await kept.__anext__()


async def test_a_dropped_mirror_iterator_leaves_the_mirror(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, client.mirror("dropped/") as mirror:
        # Made before the put: an iterator gives the changes from when it is made, and the
        # watch may apply this one before the put's reply wakes this task.
        changes = mirror.changes()
        await client.put("dropped/a", "1")
        async for change in changes:
            assert change.key == b"dropped/a"
            break
        del changes
        collect_garbage()
        assert len(mirror._feeds) == 0
        await client.put("dropped/b", "2")
        await mirror.wait_for((await client.get("dropped/b")).header.revision)
        assert mirror.get("dropped/b") is not None
