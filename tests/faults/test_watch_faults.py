"""Watch through crashes: SIGKILL and restart of a single etcd, and the death of the member a
client watches through in a 3-member cluster. The watcher's events must equal the keys' real
history (read afterwards with a fresh watch from the first revision): no gap, no repeat."""

from __future__ import annotations

import os
import signal

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import CompactedError, EtcdError
from puregrpc_etcd.testing import EtcdCluster, EtcdServer
from puregrpc_etcd.watch import Event, Watcher

# Writes tolerate the outage: a put whose outcome is unknown is simply written again.
BURST = 400
KEYS = 7


def summary(events: list[Event]) -> list[tuple[str, bytes, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in events]


async def writer(
    client: etcd.Client, prefix: str, count: int, progress: trio.Event, half: int
) -> None:
    """Put ``count`` values (retrying through outages), then the end marker."""
    for index in range(count):
        if index == half:
            progress.set()
        for _ in range(400):
            try:
                await client.put(f"{prefix}{index % KEYS}", str(index), timeout=2)
                break
            except EtcdError:
                await trio.sleep(0.05)
        else:
            raise AssertionError(f"put {index} never succeeded")
    for _ in range(400):
        try:
            await client.put(prefix + "end", "end", timeout=2)
            return
        except EtcdError:
            await trio.sleep(0.05)


async def until_end(watcher: Watcher, prefix: str, seconds: float = 60) -> list[Event]:
    events = []
    end = (prefix + "end").encode()
    with trio.fail_after(seconds):
        async for event in watcher:
            events.append(event)
            if event.kv.key == end:
                return events
    raise AssertionError("the watcher stopped before the end marker")


async def history(endpoints: list[str], prefix: str, start: int) -> list[Event]:
    async with etcd.connect(endpoints) as reader:
        fresh = reader.watch(prefix, prefix=True, start_revision=start)
        async with fresh as watcher:
            return await until_end(watcher, prefix, 30)


def assert_complete(events: list[Event], truth: list[Event]) -> None:
    assert summary(events) == summary(truth)
    revisions = [e.kv.mod_revision for e in events]
    # Only this test writes to its server: revisions are consecutive, so none is missing.
    assert revisions == list(range(revisions[0], revisions[0] + len(revisions)))


@pytest.mark.parametrize("how", ["kill", "stop"])
@pytest.mark.slow
async def test_crash_or_graceful_restart_mid_burst(how: str) -> None:
    prefix = "/faults/watch/"
    with EtcdServer() as server:
        async with etcd.connect(server.endpoints, connect_timeout=1) as client:
            start = (await client.put(prefix + "start", "s")).header.revision + 1
            async with client.watch(prefix, prefix=True, start_revision=start) as watcher:
                hub = client._caller.watch_hub
                assert hub is not None
                async with trio.open_nursery() as nursery:
                    halfway = trio.Event()
                    nursery.start_soon(writer, client, prefix, BURST, halfway, BURST // 2)
                    await halfway.wait()
                    # SIGKILL (a crash), or SIGTERM (GOAWAY and a clean shutdown first).
                    await trio.to_thread.run_sync(getattr(server, how))
                    await trio.sleep(0.3)
                    await trio.to_thread.run_sync(server.restart)
                    events = await until_end(watcher, prefix)
                assert hub.streams_opened >= 2  # it really was cut and resumed
        truth = await history(server.endpoints, prefix, start)
    assert_complete(events, truth)
    assert summary(events)[-1][1] == (prefix + "end").encode()


async def test_watched_member_dies_in_a_cluster() -> None:
    prefix = "/faults/watch-cluster/"
    with EtcdCluster(3) as cluster:
        async with etcd.connect(cluster.endpoints, connect_timeout=1) as client:
            reply = await client.put(prefix + "start", "s")
            start = reply.header.revision + 1
            async with client.watch(prefix, prefix=True, start_revision=start) as watcher:
                hub = client._caller.watch_hub
                assert hub is not None
                served_by = await member_serving(cluster, client)
                async with trio.open_nursery() as nursery:
                    halfway = trio.Event()
                    nursery.start_soon(writer, client, prefix, BURST, halfway, BURST // 2)
                    await halfway.wait()
                    await trio.to_thread.run_sync(served_by.kill)
                    events = await until_end(watcher, prefix)
                assert hub.streams_opened >= 2
                assert await member_serving(cluster, client) is not served_by
        alive = [m.endpoint for m in cluster if m is not served_by]
        truth = await history(alive, prefix, start)
    assert_complete(events, truth)


async def test_compaction_during_outage_raises_compacted() -> None:
    prefix = "/faults/watch-compacted/"
    with EtcdCluster(3) as cluster:
        # The watching client knows one member only, so it cannot resume until that one returns.
        member = cluster[0]
        others = [m.endpoint for m in cluster if m is not member]
        async with (
            etcd.connect(member.endpoints, connect_timeout=1) as client,
            client.watch(prefix, prefix=True) as watcher,
        ):
            await client.put(prefix + "seen", "1")
            [seen] = await take_one(watcher)
            await trio.to_thread.run_sync(member.kill)
            # While the watcher is cut off, others write and compact past its resume point.
            async with etcd.connect(others) as other:
                for index in range(5):
                    await put_retrying(other, f"{prefix}missed{index}", "x")
                latest = await put_retrying(other, prefix + "latest", "x")
                await other.compact(latest)
            await trio.to_thread.run_sync(member.restart)
            with pytest.raises(CompactedError) as caught:
                await take_one(watcher, 30)
    assert seen.kv.value == b"1"
    assert caught.value.compact_revision == latest


async def test_require_leader_moves_off_a_leaderless_member() -> None:
    prefix = "/faults/watch-leader/"
    with EtcdCluster(3) as cluster:
        leader = await trio.to_thread.run_sync(cluster.leader)
        follower = next(m for m in cluster if m is not leader)
        endpoints = [follower.endpoint] + [m.endpoint for m in cluster if m is not follower]
        async with (
            etcd.connect(endpoints, require_leader=True, connect_timeout=1) as client,
            client.watch(prefix, prefix=True) as watcher,
        ):
            hub = client._caller.watch_hub
            assert hub is not None
            assert await member_serving(cluster, client) is follower
            # The other two stop: the follower is up but has no leader; our watch must not
            # wait on it forever, it must be cut (hasleader) and move on.
            others = [m for m in cluster if m is not follower]
            for member in others:
                await trio.to_thread.run_sync(member.kill)
            for _ in range(600):
                if hub.streams_opened >= 2:
                    break
                await trio.sleep(0.05)
            assert hub.streams_opened >= 2, "the leaderless member kept the watch"
            for member in others:
                await trio.to_thread.run_sync(lambda m=member: m.restart(wait=False))
            for member in others:
                await trio.to_thread.run_sync(member.wait_ready)
            written = await put_retrying(client, prefix + "after", "v")
            [event] = await take_one(watcher, 30)
    assert event.kv.mod_revision == written


async def take_one(watcher: Watcher, seconds: float = 10) -> list[Event]:
    with trio.fail_after(seconds):
        async for event in watcher:
            return [event]
    raise AssertionError("the watcher ended")


async def put_retrying(client: etcd.Client, key: str, value: str) -> int:
    for _ in range(200):
        try:
            return (await client.put(key, value, timeout=2)).header.revision
        except EtcdError:
            await trio.sleep(0.1)
    raise AssertionError("the put never succeeded")


async def member_serving(cluster: EtcdCluster, client: etcd.Client) -> EtcdServer:
    """The member behind the client's current connection (by the member id it reports)."""
    reply = await client.get("/faults/any")
    for member in cluster:
        if member.running:
            status = await trio.to_thread.run_sync(member.status)
            if int(status["header"]["member_id"]) == reply.header.member_id:
                return member
    raise AssertionError("no running member has the id of the one that answered")


@pytest.mark.slow
async def test_frozen_member_is_left_through_keepalive() -> None:
    # SIGSTOP: the connection stays up but nothing answers, as in a network cut. Only the
    # transport's keepalive can tell; the watch must then resume on another member.
    prefix = "/faults/watch-frozen/"
    with EtcdCluster(3) as cluster:
        frozen = cluster[0]
        endpoints = [m.endpoint for m in cluster]
        others = endpoints[1:]
        async with (
            etcd.connect(
                endpoints, connect_timeout=1, keepalive_interval=5, keepalive_timeout=2
            ) as client,
            etcd.connect(others) as writer_client,
            client.watch(prefix, prefix=True) as watcher,
        ):
            assert await member_serving(cluster, client) is frozen
            assert frozen.pid is not None
            os.kill(frozen.pid, signal.SIGSTOP)
            try:
                written = [
                    await put_retrying(writer_client, f"{prefix}{i}", "v") for i in range(20)
                ]
                events = []
                with trio.fail_after(40):
                    async for event in watcher:
                        events.append(event)
                        if len(events) == len(written):
                            break
            finally:
                os.kill(frozen.pid, signal.SIGCONT)
    assert [e.kv.mod_revision for e in events] == written


async def test_many_connection_cuts_during_a_burst() -> None:
    # The client's connection is cut again and again (as a flaky network would) while another
    # client writes; the watcher resumes every time, mostly in the middle of catch-up batches.
    prefix = "/faults/watch-cuts/"
    cuts = 15
    with EtcdServer() as server:
        async with (
            etcd.connect(server.endpoints) as client,
            etcd.connect(server.endpoints) as writer_client,
        ):
            start = (await writer_client.put(prefix + "start", "s")).header.revision + 1
            async with client.watch(prefix, prefix=True, start_revision=start) as watcher:
                hub = client._caller.watch_hub
                assert hub is not None

                async def cut_repeatedly() -> None:
                    for _ in range(cuts):
                        await trio.sleep(0.05)
                        connection = client._caller.channel._connector.connection
                        if connection is not None:
                            connection.close()

                async with trio.open_nursery() as nursery:
                    halfway = trio.Event()
                    nursery.start_soon(writer, writer_client, prefix, 1000, halfway, 0)
                    nursery.start_soon(cut_repeatedly)
                    events = await until_end(watcher, prefix)
                assert hub.streams_opened >= 3
        truth = await history(server.endpoints, prefix, start)
    assert_complete(events, truth)
