"""A member that hangs (SIGSTOP) or a connection that goes silent (black hole: no FIN, no RST)
is found within the bound the client states, with default settings: reads move to another
member, writes fail saying they may have been applied, watches and lease keepalives carry on
through the other members, and connect failures say which step timed out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import trio
from etcd_faults import stopped
from fault_proxy import RESET, SILENT, FaultProxy, unanswered_port

import puregrpc_etcd as etcd
from puregrpc_etcd.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE_INTERVAL,
    DEFAULT_KEEPALIVE_TIMEOUT,
)
from puregrpc_etcd.grpc.liveness import KeepalivePolicy
from puregrpc_etcd.testing import EtcdCluster, EtcdServer

POLICY = KeepalivePolicy(DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT)
#: A call waiting on a silent member fails within this (13 s by default).
CALL_BOUND = POLICY.worst_case()
#: An idle stream (a watch) on a silent member is left within this (16 s by default).
IDLE_BOUND = POLICY.idle_worst_case()
#: Room for a loaded machine (two cores shared by several test runs) and for reconnecting.
SLACK = 5.0
UNANSWERED = "keepalive ping unanswered"
NO_SETTINGS = "connection accepted but the server sent no HTTP/2 settings"


@asynccontextmanager
async def proxies(targets: list[EtcdServer]) -> AsyncIterator[list[FaultProxy]]:
    """One fault proxy in front of each member."""
    async with trio.open_nursery() as nursery:
        started = [FaultProxy(member.client_port) for member in targets]
        for proxy in started:
            await nursery.start(proxy.serve)
        yield started
        nursery.cancel_scope.cancel()


def in_use(client: etcd.Client, members: list[str]) -> int:
    """The index of the endpoint the client's connection goes to."""
    current = client._caller.channel.current_endpoint
    assert current is not None
    [index] = [n for n, endpoint in enumerate(members) if current.endswith(endpoint)]
    return index


@pytest.mark.slow
async def test_stopped_single_member_fails_a_read_clearly_within_the_bound() -> None:
    with EtcdServer() as server:
        async with etcd.connect(server.endpoints) as client:
            await client.put("dead/read", "v")
            with stopped(server):
                start = trio.current_time()
                with trio.fail_after(CALL_BOUND + DEFAULT_CONNECT_TIMEOUT + SLACK):
                    with pytest.raises(etcd.UnavailableError) as caught:
                        await client.get("dead/read")
                waited = trio.current_time() - start
    message = str(caught.value)
    # What happened, in order: the connection went silent, then a reconnect got no HTTP/2.
    assert UNANSWERED in message
    assert NO_SETTINGS in message
    assert server.endpoint in message
    # One reconnect round, not one per retry.
    assert waited < CALL_BOUND + 2 * DEFAULT_CONNECT_TIMEOUT


@pytest.mark.slow
async def test_stopped_single_member_fails_a_write_as_maybe_applied() -> None:
    with EtcdServer() as server:
        async with etcd.connect(server.endpoints) as client:
            await client.put("dead/write", "v")
            with stopped(server):
                with trio.fail_after(CALL_BOUND + SLACK):
                    with pytest.raises(etcd.UnavailableError) as caught:
                        await client.put("dead/write", "w")
    error = caught.value
    assert not isinstance(error, etcd.ConnectionFailedError)
    assert error.not_processed is False  # sent, so never repeated behind the caller's back
    assert UNANSWERED in str(error)
    assert "the Put may have been applied" in str(error)


@pytest.mark.slow
async def test_stopped_member_in_use_reads_move_to_another() -> None:
    with EtcdCluster(size=3) as cluster:
        members = [m.endpoint for m in cluster]
        async with etcd.connect(members) as client:
            await client.put("dead/cluster", "v")
            victim = cluster[in_use(client, members)]
            with stopped(victim):
                with trio.fail_after(CALL_BOUND + SLACK):
                    assert await client.get_value("dead/cluster") == b"v"
                assert client._caller.channel.current_endpoint != victim.endpoint


@contextmanager
def healed_after(proxy: FaultProxy) -> Iterator[None]:
    """The proxy black-holed (a partition between the client and that member) for the block."""
    proxy.blackhole()
    try:
        yield
    finally:
        proxy.heal()


@pytest.mark.parametrize("fault", ["SIGSTOP", "blackhole"])
@pytest.mark.slow
async def test_member_in_use_lost_watch_and_lease_carry_on(fault: str) -> None:
    prefix = "dead/watch/"
    ttl = 24  # above a renewal period (ttl/3) plus CALL_BOUND, so that one failover fits
    with EtcdCluster(size=3) as cluster:
        # A follower, so that the writes below see no leader election (whose timed-out
        # proposals would make their outcome unknown); the leader's case is a write's test.
        victim = cluster.followers()[0]
        order = [victim, *(m for m in cluster if m is not victim)]
        others = [m.endpoint for m in order[1:]]
        async with proxies(order) as relays, etcd.connect([p.address for p in relays]) as client:
            await client.get("dead/connect")
            assert client._caller.channel.current_endpoint == relays[0].address
            async with (
                etcd.connect(others) as writer,
                client.lease(ttl) as lease,
                client.watch(prefix, prefix=True) as watcher,
            ):
                await client.put("dead/leased", "v", lease=lease.id)
                with stopped(victim) if fault == "SIGSTOP" else healed_after(relays[0]):
                    lost_at = trio.current_time()
                    written = []
                    for n in range(10):
                        reply = await writer.put(f"{prefix}{n}", "v")
                        written.append(reply.header.revision)
                        await trio.sleep(0.2)
                    events = []
                    with trio.fail_after(IDLE_BOUND + SLACK):
                        async for event in watcher:
                            events.append(event.kv.mod_revision)
                            if len(events) == len(written):
                                break
                    # Past the TTL counted from the fault: the lease was renewed elsewhere.
                    await trio.sleep_until(lost_at + ttl + 1)
                    assert not lease.lost.is_set()
                    assert (await writer.time_to_live(lease.id)).ttl > 0
                    assert await writer.get_value("dead/leased") == b"v"
    assert events == written


@pytest.mark.slow
async def test_black_holed_connection_fails_a_read_clearly() -> None:
    with EtcdServer() as server:
        async with proxies([server]) as (proxy,), etcd.connect(proxy.address) as client:
            await client.put("dead/hole", "v")
            proxy.blackhole()
            with trio.fail_after(CALL_BOUND + DEFAULT_CONNECT_TIMEOUT + SLACK):
                with pytest.raises(etcd.UnavailableError) as caught:
                    await client.get("dead/hole")
    assert UNANSWERED in str(caught.value)
    assert NO_SETTINGS in str(caught.value)


@pytest.mark.slow
async def test_black_holed_member_in_use_reads_move_to_another() -> None:
    with EtcdCluster(size=3) as cluster:
        async with proxies(list(cluster)) as relays:
            addresses = [proxy.address for proxy in relays]
            async with etcd.connect(addresses) as client:
                await client.put("dead/hole3", "v")
                hole = relays[in_use(client, addresses)]
                hole.blackhole()
                with trio.fail_after(CALL_BOUND + SLACK):
                    assert await client.get_value("dead/hole3") == b"v"
                assert client._caller.channel.current_endpoint != hole.address


async def test_reset_connection_is_retried_for_reads() -> None:
    with EtcdServer() as server:
        async with proxies([server]) as (proxy,), etcd.connect(proxy.address) as client:
            await client.put("dead/reset", "v")
            proxy.mode = RESET
            proxy.reset()
            with trio.fail_after(SLACK):
                with pytest.raises(etcd.ConnectionFailedError):
                    await client.get("dead/reset")
            proxy.heal()
            with trio.fail_after(SLACK):
                assert await client.get_value("dead/reset") == b"v"


async def test_port_that_accepts_and_never_speaks_fails_after_one_connect_timeout() -> None:
    async with trio.open_nursery() as nursery:
        proxy = FaultProxy(0, mode=SILENT)  # forwards nothing, so no target is needed
        await nursery.start(proxy.serve)
        start = trio.current_time()
        with trio.fail_after(2 + SLACK):
            async with etcd.connect(proxy.address, connect_timeout=2) as client:
                with pytest.raises(etcd.ConnectionFailedError) as caught:
                    await client.get("dead/silent")
        waited = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert f"{proxy.address}: {NO_SETTINGS} within 2 s" in str(caught.value)
    assert waited < 2 * 2  # one round, not one per retry


async def test_tls_handshake_that_never_ends_says_so() -> None:
    async with trio.open_nursery() as nursery:
        proxy = FaultProxy(0, mode=SILENT)
        await nursery.start(proxy.serve)
        with trio.fail_after(1 + SLACK):
            async with etcd.connect(f"https://{proxy.address}", connect_timeout=1) as client:
                with pytest.raises(etcd.ConnectionFailedError) as caught:
                    await client.get("dead/tls")
        nursery.cancel_scope.cancel()
    assert f"{proxy.address}: TLS handshake not finished within 1 s" in str(caught.value)


async def test_connect_that_times_out_says_so() -> None:
    with unanswered_port() as address:
        with trio.fail_after(1 + SLACK):
            async with etcd.connect(address, connect_timeout=1) as client:
                with pytest.raises(etcd.ConnectionFailedError) as caught:
                    await client.get("dead/tcp")
    assert f"{address}: TCP connect timed out after 1 s" in str(caught.value)
