"""Leases and locks when things die: a SIGKILLed client process, an etcd restart, and leaving
blocks (or the client) while etcd is dead.

The client process is a small script using our client, killed by its pid; what it held must go
away within the TTL (plus the server's expiry granularity).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from puregrpc_etcd.client import connect
from puregrpc_etcd.lease import REVOKE_TIMEOUT
from puregrpc_etcd.testing import EtcdCluster, EtcdServer

HOLDER = """
import sys
import trio
from puregrpc_etcd.client import connect

async def main(endpoint, mode, name, ttl):
    async with connect(endpoint) as client:
        if mode == "lease":
            async with client.lease(int(ttl)) as lease:
                await client.put(name, "held", lease=lease.id)
                print("ready %x" % lease.id, flush=True)
                await trio.sleep_forever()
        else:
            async with client.lock(name, ttl=int(ttl)) as lock:
                print("ready %x" % lock.lease_id, flush=True)
                await trio.sleep_forever()

trio.run(main, *sys.argv[1:])
"""


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Holder:
    def __init__(self, process: trio.Process, lease_id: int) -> None:
        self.process = process
        self.lease_id = lease_id

    def kill(self) -> None:
        self.process.kill()


@asynccontextmanager
async def holder_process(endpoint: str, mode: str, name: str, ttl: int) -> AsyncIterator[Holder]:
    """Run the holder script until it says it holds; SIGKILL it by pid on ``kill()`` or exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", HOLDER, endpoint, mode, name, str(ttl)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(60):
            while b"\n" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, f"holder exited early with {await process.wait()}"
                output += chunk
        word, lease_hex = output.decode().split()
        assert word == "ready"
        yield Holder(process, int(lease_hex, 16))
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def test_keys_of_a_killed_process_vanish_within_ttl(server: EtcdServer) -> None:
    ttl = 2
    async with connect(server.endpoints) as client:
        async with holder_process(server.endpoint, "lease", "killed/key", ttl) as holder:
            kv = (await client.get("killed/key")).kvs[0]
            assert kv.lease == holder.lease_id
            # Alive for a while: the child keeps it up.
            await trio.sleep(ttl * 2)
            assert await client.get_value("killed/key") == b"held"
            # SIGKILLed, nothing revokes the lease: its TTL must end it.
            holder.kill()
            with trio.fail_after(ttl + 1):
                async with client.watch("killed/key", start_revision=kv.mod_revision + 1) as w:
                    async for event in w:
                        assert event.type == "delete"
                        break
        assert (await client.time_to_live(holder.lease_id)).ttl == -1


async def test_next_waiter_acquires_after_the_holder_is_killed(server: EtcdServer) -> None:
    ttl = 2
    async with (
        connect(server.endpoints) as client,
        holder_process(server.endpoint, "lock", "killed/lock", ttl) as holder,
    ):
        acquired = trio.Event()
        held = await client.get("killed/lock/", prefix=True)
        assert [kv.lease for kv in held.kvs] == [holder.lease_id]

        async def wait_for_lock() -> None:
            async with client.lock("killed/lock", ttl=5) as lock:
                assert lock.key == b"killed/lock/%x" % lock.lease_id
                acquired.set()

        async with (
            trio.open_nursery() as nursery,
            client.watch(
                "killed/lock/", prefix=True, start_revision=held.header.revision + 1
            ) as queue,
        ):
            nursery.start_soon(wait_for_lock)
            with trio.fail_after(10):
                async for event in queue:
                    assert event.type == "put"  # our waiter's key
                    break
            await trio.sleep(ttl)
            assert not acquired.is_set()
            holder.kill()
            with trio.fail_after(ttl + 2):
                await acquired.wait()


@pytest.mark.slow
async def test_keepalive_survives_an_etcd_restart() -> None:
    with EtcdServer() as restarting:
        async with connect(restarting.endpoints) as client, client.lease(5) as lease:
            await client.put("restart/key", "v", lease=lease.id)
            await trio.to_thread.run_sync(restarting.restart)
            # Renewals resume on a new stream; the lease outlives several TTLs.
            await trio.sleep(12)
            assert not lease.lost.is_set()
            assert await client.get_value("restart/key") == b"v"
            assert (await client.time_to_live(lease.id)).ttl > 0


@pytest.mark.slow
async def test_keepalive_moves_to_another_member_when_its_member_dies() -> None:
    with EtcdCluster(3) as cluster:
        async with connect(cluster.endpoints) as client, client.lease(3) as lease:
            await client.put("failover/key", "v", lease=lease.id)
            current = client._caller.channel.current_endpoint
            assert current is not None
            victim = next(member for member in cluster if member.endpoint in current)
            await trio.to_thread.run_sync(victim.kill)
            await trio.sleep(9)
            assert not lease.lost.is_set()
            assert await client.get_value("failover/key") == b"v"
            assert (await client.time_to_live(lease.id)).ttl > 0


def _mentions(caplog: pytest.LogCaptureFixture, lease_id: int) -> int:
    return sum(f"{lease_id:x}" in record.getMessage() for record in caplog.records)


async def test_leaving_nested_blocks_with_etcd_dead_tries_each_clean_up_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="puregrpc_etcd")
    # Set once etcd is dead: one retried revoke alone used to take REVOKE_TIMEOUT.
    leaving = trio.CancelScope()
    with EtcdServer() as dying, leaving:
        async with connect(dying.endpoints) as client:  # noqa: SIM117 - nested on purpose
            async with client.lease(30) as revoked, client.lock("dead/lock", ttl=30) as lock:
                async with client.lease(30) as inner:
                    await client.revoke(revoked.id)
                    assert revoked.lost.is_set()
                    await trio.to_thread.run_sync(dying.kill)
                    leaving.deadline = trio.current_time() + REVOKE_TIMEOUT
    assert not leaving.cancelled_caught
    # One word each about the clean-ups that could not be done; none about the lost lease.
    assert _mentions(caplog, inner.id) == 1
    assert _mentions(caplog, lock.lease_id) == 2  # its key, then its session lease
    assert _mentions(caplog, revoked.id) == 0


async def test_closing_with_etcd_dead_tries_every_owned_lease_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="puregrpc_etcd")
    closing = trio.CancelScope()
    with EtcdServer() as dying, closing:
        async with connect(dying.endpoints) as client:
            held = [await client.try_lock(f"dead/held-{index}", ttl=30) for index in range(3)]
            await trio.to_thread.run_sync(dying.kill)
            closing.deadline = trio.current_time() + REVOKE_TIMEOUT
    assert not closing.cancelled_caught
    for lock in held:
        assert lock is not None
        assert _mentions(caplog, lock.lease_id) == 1
