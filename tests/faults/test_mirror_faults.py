"""Mirrors through crashes: a SIGKILL and restart mid-burst (the mirror resumes and skips nothing),
and compaction past the mirror's watch while its member is down in a 3-member cluster (the
mirror lists again, says so with a "resync" change, and ends equal to the server)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import EtcdError, PermissionDeniedError
from puregrpc_etcd.mirror import Mirror, MirrorChange, MirrorChanges
from puregrpc_etcd.testing import EtcdCluster, EtcdServer

BURST = 150
KEYS = 9


async def retrying(call: Callable[..., Awaitable[Any]], *args: object) -> int:
    """Run a write until it succeeds through the outage; its revision."""
    for _ in range(300):
        try:
            reply = await call(*args, timeout=2)
            return int(reply.header.revision)
        except EtcdError:
            await trio.sleep(0.05)
    raise AssertionError("the write never succeeded")


async def server_state(client: etcd.Client, prefix: str) -> dict[bytes, tuple[bytes, int]]:
    held = await client.get_prefix(prefix)
    return {key: (kv.value, kv.mod_revision) for key, kv in held.items()}


def state(mirror: Mirror) -> dict[bytes, tuple[bytes, int]]:
    return {key: (kv.value, kv.mod_revision) for key, kv in mirror.items()}


async def collect(changes: MirrorChanges, into: list[MirrorChange]) -> None:
    async for change in changes:
        into.append(change)


async def test_sigkill_and_restart_mid_burst() -> None:
    prefix = "/faults/mirror/"
    with EtcdServer() as server:
        async with etcd.connect(server.endpoints, connect_timeout=1) as client:
            await client.put(prefix + "seed", "s")
            seen: list[MirrorChange] = []
            async with client.mirror(prefix) as mirror, trio.open_nursery() as nursery:
                nursery.start_soon(collect, mirror.changes(), seen)
                halfway = trio.Event()
                last = 0

                async def writer() -> None:
                    nonlocal last
                    for index in range(BURST):
                        if index == BURST // 2:
                            halfway.set()
                        key = f"{prefix}{index % KEYS}"
                        if index % 4 == 3:
                            last = await retrying(client.delete, key)
                        else:
                            last = await retrying(client.put, key, str(index))

                with trio.fail_after(90):
                    async with trio.open_nursery() as writers:
                        writers.start_soon(writer)
                        await halfway.wait()
                        await trio.to_thread.run_sync(server.kill)
                        await trio.sleep(0.3)
                        await trio.to_thread.run_sync(server.restart)
                    await mirror.wait_for(last)
                assert state(mirror) == await server_state(client, prefix)
                assert mirror.resyncs == 0
                hub = client._caller.watch_hub
                assert hub is not None
                assert hub.streams_opened >= 2  # the watch really was cut and resumed
                nursery.cancel_scope.cancel()
    assert all(change.kind != "resync" for change in seen)
    # In order, and no change twice (a repeated put would show the same revision again).
    revisions = [(change.revision, change.key) for change in seen]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == len(revisions)


async def test_compaction_during_outage_resyncs() -> None:
    prefix = "/faults/mirror-compacted/"
    with EtcdCluster(3) as cluster:
        # The mirror's client knows one member only, so its watch cannot resume until it returns.
        member = cluster[0]
        others = [m.endpoint for m in cluster if m is not member]
        async with etcd.connect(member.endpoints, connect_timeout=1) as client:
            await client.put(prefix + "kept", "1")
            await client.put(prefix + "deleted-while-away", "1")
            async with client.mirror(prefix) as mirror:
                changes = mirror.changes()
                seen = await client.put(prefix + "seen", "1")
                with trio.fail_after(10):
                    await mirror.wait_for(seen.header.revision)
                await trio.to_thread.run_sync(member.kill)
                async with etcd.connect(others) as other:
                    missed = await retrying(other.put, prefix + "missed", "x")
                    await retrying(other.delete, prefix + "deleted-while-away")
                    latest = await retrying(other.put, prefix + "kept", "2")
                    await other.compact(latest)
                    truth = await server_state(other, prefix)
                # Cut off, the mirror stays at the state it had: it never claims a later one.
                assert mirror.revision < missed
                assert prefix.encode() + b"missed" not in mirror
                await trio.to_thread.run_sync(member.restart)
                with trio.fail_after(30):
                    got: list[MirrorChange] = []
                    async for change in changes:
                        got.append(change)
                        if change.kind == "resync":
                            break
                    await mirror.wait_for(latest)
                assert [change.key for change in got] == [(prefix + "seen").encode(), b""]
                assert got[-1].revision >= latest
                assert mirror.resyncs == 1
                assert state(mirror) == truth
                # It follows on from the new listing.
                after = await retrying(client.put, prefix + "after", "y")
                with trio.fail_after(10):
                    await mirror.wait_for(after)
                assert state(mirror) == await server_state(client, prefix)


async def test_a_watch_refused_after_a_restart_fails_the_mirror() -> None:
    """The mirror's user loses its permission; once a restart makes the watch be created again,
    the server refuses it: reads, change iterators and the end of the block raise that error."""
    prefix = "/faults/mirror-denied/"
    with EtcdServer() as server:
        async with etcd.connect(server.endpoints) as admin:
            auth = admin.auth
            await auth.user_add("root", "root-pw")
            await auth.user_grant_role("root", "root")
            await auth.role_add("reader")
            await auth.role_grant_permission("reader", "readwrite", prefix, prefix=True)
            await auth.user_add("alice", "alice-pw")
            await auth.user_grant_role("alice", "reader")
            await auth.enable()
        async with etcd.connect(
            server.endpoints, username="alice", password="alice-pw", connect_timeout=1
        ) as alice:
            # Without permission on a prefix, the first listing fails, from the `async with`.
            with pytest.raises(PermissionDeniedError):
                async with alice.mirror("/elsewhere/"):
                    pytest.fail("mirrored a prefix alice may not read")
            await alice.put(prefix + "a", "1")
            following = alice.mirror(prefix)
            mirror = await following.__aenter__()
            changes = mirror.changes()
            assert mirror.get(prefix + "a") is not None
            async with etcd.connect(server.endpoints, username="root", password="root-pw") as root:
                await root.auth.role_revoke_permission("reader", prefix, prefix=True)
            await trio.to_thread.run_sync(server.kill)
            await trio.to_thread.run_sync(server.restart)
            with trio.fail_after(30), pytest.raises(PermissionDeniedError):
                await first_change(changes)
            with pytest.raises(PermissionDeniedError):
                mirror.get(prefix + "a")
            with pytest.raises(PermissionDeniedError):
                await mirror.wait_for(1)
            assert "failed" in repr(mirror)
            # Leaving the block, even without an error of its own, says the mirror failed.
            with pytest.raises(PermissionDeniedError):
                await following.__aexit__(None, None, None)


async def first_change(changes: MirrorChanges) -> MirrorChange:
    async for change in changes:
        return change
    raise AssertionError("the changes ended without an error")
