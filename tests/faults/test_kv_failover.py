"""KV through a 3-member cluster while members die: reads fail over, writes fail over when
safe, and a write that might have been applied fails with a clear error instead of repeating."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdCluster, EtcdServer


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(size=3) as started:
        yield started


def member_at(cluster: EtcdCluster, endpoint: str | None) -> EtcdServer:
    assert endpoint is not None
    [member] = [m for m in cluster if endpoint.endswith(m.endpoint)]
    return member


def first(member: EtcdServer, cluster: EtcdCluster) -> list[str]:
    """The cluster's endpoints with ``member`` first, so that the client starts there."""
    return [member.endpoint] + [m.endpoint for m in cluster if m is not member]


async def puts_until_ok(client: etcd.Client, key: str, rounds: int) -> list[str]:
    outcomes = []
    with trio.fail_after(60):
        for index in range(rounds):
            try:
                await client.put(key, str(index))
                outcomes.append("ok")
            except etcd.UnavailableError as error:
                # A write that may have reached a member is never repeated behind the
                # caller's back: it fails, and says it may have been applied.
                outcomes.append("never sent" if error.not_processed else "unavailable")
                await trio.sleep(0.2)
    assert "never sent" not in outcomes  # those are retried, not reported
    return outcomes


async def test_reads_fail_over_when_the_member_in_use_dies(cluster: EtcdCluster) -> None:
    async with etcd.connect(
        cluster.endpoints, connect_timeout=2, retry_backoff=(0.05, 0.5)
    ) as client:
        await client.put("failover/k", "before")
        victim = member_at(cluster, client._caller.channel.current_endpoint)
        victim.kill()
        with trio.fail_after(30):
            assert await client.get_value("failover/k") == b"before"
        assert client._caller.channel.current_endpoint != victim.endpoint


async def test_writes_move_on_when_a_follower_in_use_dies(cluster: EtcdCluster) -> None:
    follower = cluster.followers()[0]
    async with etcd.connect(
        first(follower, cluster), connect_timeout=2, retry_backoff=(0.05, 0.5)
    ) as client:
        await client.put("failover/f", "start")
        assert client._caller.channel.current_endpoint == follower.endpoint
        follower.kill()
        outcomes = await puts_until_ok(client, "failover/f", 10)
        # At most the first write, sent before the client saw the connection drop, fails.
        assert outcomes[1:] == ["ok"] * 9
        assert await client.get_value("failover/f") == b"9"


async def test_writes_recover_when_the_leader_in_use_dies(cluster: EtcdCluster) -> None:
    leader = cluster.leader()
    async with etcd.connect(
        first(leader, cluster), connect_timeout=2, retry_backoff=(0.05, 0.5)
    ) as client:
        await client.put("failover/l", "start")
        assert client._caller.channel.current_endpoint == leader.endpoint
        leader.kill()
        outcomes = await puts_until_ok(client, "failover/l", 30)
        assert outcomes[-5:] == ["ok"] * 5
        assert await client.get_value("failover/l") == b"29"


async def test_no_reachable_member_fails_clearly(cluster: EtcdCluster) -> None:
    async with etcd.connect(
        cluster.endpoints, connect_timeout=0.5, retries=3, retry_backoff=(0.05, 0.1)
    ) as client:
        await client.put("failover/gone", "v")
        cluster.kill()
        with trio.fail_after(30):
            with pytest.raises(etcd.ConnectionFailedError) as caught:
                await client.get("failover/gone")
            for member in cluster:
                assert member.endpoint in str(caught.value)
            with pytest.raises(etcd.ConnectionFailedError):
                await client.get("failover/gone", timeout=0.3)
            with pytest.raises(etcd.ConnectionFailedError):
                await client.put("failover/gone", "w")
