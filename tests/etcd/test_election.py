"""Elections against a real etcd: the Go Election recipe taking turns with ``etcdctl elect``
candidates and observers, and the server-side v3election service."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from puregrpc_etcd.client import connect
from puregrpc_etcd.election import LeaderObserver
from puregrpc_etcd.errors import DeadlineExceededError, LockLostError
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool


class Etcdctl:
    """An ``etcdctl elect`` process whose output lines we read as they come."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def line(self) -> str:
        assert self.process.stdout is not None
        with trio.fail_after(20):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some()
                assert chunk, f"etcdctl exited with {self.process.returncode}"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    async def key_and_value(self) -> tuple[str, str]:
        return await self.line(), await self.line()


@asynccontextmanager
async def etcdctl_elect(server: EtcdServer, *args: str) -> AsyncIterator[Etcdctl]:
    command = [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", "elect", *args]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        yield Etcdctl(process)
    finally:
        # SIGTERM lets a candidate resign; SIGKILL only if it does not exit.
        process.send_signal(signal.SIGTERM)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(10):
                await process.wait()
            process.kill()
            await process.wait()


async def next_value(leaders: LeaderObserver) -> bytes:
    with trio.fail_after(20):
        return (await leaders.__anext__()).value


async def test_campaign_proclaim_leader_and_resign(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        election = client.election("basic", ttl=10)
        assert await election.leader() is None
        async with election.campaign("first") as leader:
            assert leader.name == b"basic"
            assert leader.key == b"basic/%x" % leader.lease
            assert election.leader_key == leader
            current = await election.leader()
            assert current is not None
            assert current.key == leader.key
            assert current.value == b"first"
            assert current.create_revision == leader.rev
            await election.proclaim("second")
            with pytest.raises(RuntimeError, match="one Election per candidate"):
                async with election.campaign("again"):
                    pytest.fail("one Election campaigned twice at once")
            current = await election.leader()
            assert current is not None
            assert current.value == b"second"
        assert await election.leader() is None
        assert election.leader_key is None
        with pytest.raises(LockLostError):
            await election.proclaim("not leading")


async def test_second_candidate_waits_for_the_first(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        first = client.election("queue", ttl=10)
        second = client.election("queue", ttl=10)
        async with first.campaign("a"):
            with pytest.raises(DeadlineExceededError):
                async with second.campaign("b", timeout=0.5):
                    pytest.fail("elected while another leads")
            # The timed-out candidate left no key behind.
            assert len((await client.get("queue/", prefix=True)).kvs) == 1
            elected = trio.Event()

            async def campaign_second() -> None:
                async with second.campaign("b"):
                    elected.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(campaign_second)
                await trio.sleep(0.5)
                assert not elected.is_set()
                await first.resign()
                with trio.fail_after(10):
                    await elected.wait()


async def test_losing_the_session_ends_the_leadership(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, connect(server.endpoints) as other:
        election = client.election("lost", ttl=3)

        async def lead() -> None:
            async with election.campaign("me") as leader:
                await other.revoke(leader.lease)
                with trio.fail_after(10):
                    await trio.sleep_forever()

        with pytest.raises(LockLostError):
            await lead()


async def test_turns_with_etcdctl_elect_and_every_leader_observed(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        election = client.election("mixed", ttl=10)
        async with election.observe() as leaders, etcdctl_elect(server, "mixed", "ctl-a") as ctl_a:
            key, value = await ctl_a.key_and_value()
            assert key.startswith("mixed/")
            assert value == "ctl-a"
            assert await next_value(leaders) == b"ctl-a"
            elected = trio.Event()
            resigned = trio.Event()

            async def ours() -> None:
                async with election.campaign("ours-1"):
                    elected.set()
                    await resigned.wait()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ours)
                await trio.sleep(0.5)
                assert not elected.is_set()
                ctl_a.process.send_signal(signal.SIGTERM)  # it resigns
                with trio.fail_after(20):
                    await elected.wait()
                assert await next_value(leaders) == b"ours-1"
                async with etcdctl_elect(server, "-l", "mixed") as listener:
                    key, value = await listener.key_and_value()
                    assert value == "ours-1"
                    await election.proclaim("ours-2")
                    assert await next_value(leaders) == b"ours-2"
                    key, value = await listener.key_and_value()
                    assert value == "ours-2"
                async with etcdctl_elect(server, "mixed", "ctl-b") as ctl_b:
                    await trio.sleep(0.5)
                    current = await election.leader()
                    assert current is not None
                    assert current.value == b"ours-2"
                    resigned.set()
                    key, value = await ctl_b.key_and_value()
                    assert value == "ctl-b"
                    assert await next_value(leaders) == b"ctl-b"


async def test_observe_waits_for_a_first_leader(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        election = client.election("empty", ttl=10)
        async with election.observe() as leaders:
            with trio.move_on_after(0.3):
                await leaders.__anext__()
                pytest.fail("observed a leader of an empty election")
            async with election.campaign("arrived"):
                assert await next_value(leaders) == b"arrived"


async def test_v3election_service(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, client.lease(10) as lease:
        assert await client.leader_rpc("rpc-election") is None
        async with client.observe_rpc("rpc-election") as leaders:
            leader = await client.campaign_rpc("rpc-election", "one", lease)
            assert leader.name == b"rpc-election"
            assert leader.key == b"rpc-election/%x" % lease.id
            assert leader.lease == lease.id
            assert await next_value(leaders) == b"one"
            current = await client.leader_rpc("rpc-election")
            assert current is not None
            assert current.value == b"one"
            # The recipe and the service are the same: our Election sees the service's leader.
            ours = await client.election("rpc-election").leader()
            assert ours is not None
            assert ours.key == leader.key
            await client.proclaim_rpc(leader, "two")
            assert await next_value(leaders) == b"two"
            await client.resign_rpc(leader)
        assert await client.leader_rpc("rpc-election") is None
