"""Cluster membership and per-member maintenance against a real 3-member etcd cluster: members,
status of each endpoint, leader transfer, a learner added, started, promoted and removed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.cluster import Member, MemberAddResponse, serving_endpoints
from puregrpc_etcd.errors import EtcdError, FutureRevisionError, RpcError
from puregrpc_etcd.testing import EtcdCluster, EtcdServer


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as started:
        yield started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def by_name(members: list[Member]) -> dict[str, Member]:
    return {member.name: member for member in members}


async def test_members_lists_every_member(cluster: EtcdCluster) -> None:
    async with etcd.connect(cluster.endpoints) as client:
        members = by_name(await client.cluster.members())
        linearizable = by_name(await client.cluster.members(linearizable=True))
    assert members == linearizable
    assert sorted(members) == ["m0", "m1", "m2"]
    for server in cluster:
        member = members[server.name]
        assert member.client_urls == (server.client_url,)
        assert member.peer_urls == (server.peer_url,)
        assert member.started
        assert not member.is_learner
        assert member.id > 0
    assert sorted(serving_endpoints(members.values())) == sorted(s.client_url for s in cluster)


async def test_status_of_each_endpoint(cluster: EtcdCluster) -> None:
    leader = await trio.to_thread.run_sync(cluster.leader)
    # Connected to one member only: status(endpoint) must still reach each of the others.
    async with etcd.connect(cluster[0].endpoints) as client:
        ids = {member.name: member.id for member in await client.cluster.members()}
        statuses = {
            server.name: await client.maintenance.status(server.endpoint) for server in cluster
        }
    assert {name: status.member_id for name, status in statuses.items()} == ids
    assert len({status.header.cluster_id for status in statuses.values()}) == 1
    assert {status.leader for status in statuses.values()} == {ids[leader.name]}
    assert [name for name, status in statuses.items() if status.is_leader] == [leader.name]


async def test_hash_kv_agrees_across_members(cluster: EtcdCluster) -> None:
    async with etcd.connect(cluster.endpoints) as client:
        revision = (await client.put("cluster/hash", "same everywhere")).header.revision
        with trio.fail_after(20):
            hashes = {
                server.name: await hash_once_applied(client, revision, server.endpoint)
                for server in cluster
            }
    assert len(set(hashes.values())) == 1


async def hash_once_applied(client: etcd.Client, revision: int, endpoint: str) -> int:
    for _ in range(200):
        try:
            return (await client.maintenance.hash_kv(revision, endpoint)).hash
        except FutureRevisionError:
            # A follower may not have applied the revision yet.
            await trio.sleep(0.05)
    pytest.fail(f"{endpoint} never reached revision {revision}")


async def test_move_leader_from_any_member(cluster: EtcdCluster) -> None:
    leader = await trio.to_thread.run_sync(cluster.leader)
    follower = next(server for server in cluster if server is not leader)
    # Connected to the follower: the call has to find the leader by itself.
    async with etcd.connect(follower.endpoints) as client:
        members = by_name(await client.cluster.members())
        target = members[follower.name].id
        await client.maintenance.move_leader(target, timeout=20)
        status = await client.maintenance.status(follower.endpoint)
        assert status.leader == target
        assert status.is_leader
        with pytest.raises(RpcError):
            await client.maintenance.move_leader(0xDEAD, timeout=10)
    assert (await trio.to_thread.run_sync(cluster.leader)).name == follower.name


async def test_learner_added_started_promoted_and_removed(cluster: EtcdCluster) -> None:
    async with etcd.connect(cluster.endpoints) as client:
        peer_port = free_port()
        peer_url = f"http://127.0.0.1:{peer_port}"
        added = await add_when_healthy(client, peer_url)
        assert isinstance(added, MemberAddResponse)
        new_id = added.member.id
        assert added.member.is_learner
        assert not added.member.started
        assert added.member.peer_urls == (peer_url,)
        assert len(added.members) == 4
        # etcd 3.5.1 would silently list the learner as a voter after this (etcd-io/etcd#21694).
        with pytest.raises(EtcdError, match="learner"):
            await client.cluster.update_member(new_id, f"http://127.0.0.1:{free_port()}")
        updated = await client.cluster.members()
        assert by_name(updated)[""].is_learner

        initial_cluster = ",".join(
            f"{member.name or 'm3'}={url}" for member in updated for url in member.peer_urls
        )
        learner = EtcdServer(
            name="m3",
            _cluster=(initial_cluster, "unused-for-existing", "existing"),
            _peer_port=peer_port,
        )
        try:
            learner.spawn()
            with trio.fail_after(60):
                for _ in range(600):
                    if "m3" in by_name(await client.cluster.members()):
                        break
                    await trio.sleep(0.1)
                status = await client.maintenance.status(learner.endpoint)
                assert status.is_learner
                assert learner.client_url not in serving_endpoints(await client.cluster.members())
                promoted = await promote_when_in_sync(client, new_id)
            assert not by_name(promoted)["m3"].is_learner
            assert learner.client_url in serving_endpoints(promoted)

            remaining = await client.cluster.remove_member(new_id)
            assert sorted(by_name(remaining)) == ["m0", "m1", "m2"]
            assert new_id not in {member.id for member in await client.cluster.members()}
        finally:
            await trio.to_thread.run_sync(learner.close)
        with pytest.raises(RpcError):
            await client.cluster.remove_member(new_id)


async def add_when_healthy(client: etcd.Client, peer_url: str) -> MemberAddResponse:
    for _ in range(100):
        try:
            return await client.cluster.add_member(peer_url, learner=True)
        except etcd.UnavailableError as exc:
            # etcd's strict reconfiguration check refuses changes until the leader has been in
            # touch with a quorum for 5 s, e.g. just after the leadership moved.
            if "unhealthy cluster" not in exc.details:
                raise
        await trio.sleep(0.2)
    pytest.fail("the cluster never became healthy enough to add a member")


async def promote_when_in_sync(client: etcd.Client, member_id: int) -> list[Member]:
    for _ in range(300):
        try:
            return await client.cluster.promote_member(member_id)
        except RpcError as exc:
            # Refused until the learner has caught up with the leader's log.
            if "in sync" not in exc.details:
                raise
        await trio.sleep(0.2)
    pytest.fail("the learner never caught up")


async def test_update_member_peer_urls(cluster: EtcdCluster) -> None:
    async with etcd.connect(cluster.endpoints) as client:
        member = by_name(await client.cluster.members())["m1"]
        # The same URLs again: a real update that leaves the running member reachable.
        updated = await client.cluster.update_member(member.id, list(member.peer_urls))
        assert by_name(updated)["m1"] == member
        with pytest.raises(EtcdError):
            await client.cluster.update_member(0xBAD, "http://127.0.0.1:1")


async def test_argument_errors_come_before_any_io(cluster: EtcdCluster) -> None:
    async with etcd.connect(cluster.endpoints) as client:
        with pytest.raises(TypeError):
            await client.cluster.add_member([b"http://127.0.0.1:1"])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="at least one"):
            await client.cluster.add_member([])
        with pytest.raises(TypeError):
            await client.cluster.remove_member("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="invalid member id"):
            await client.cluster.promote_member(0)
        with pytest.raises(TypeError):
            await client.cluster.update_member(True, "http://127.0.0.1:1")


async def test_auto_sync_learns_every_member_from_one(cluster: EtcdCluster) -> None:
    first = cluster[0]
    async with etcd.connect(first.endpoints, auto_sync_interval=0.2) as client:
        assert client._caller.channel.endpoints == [first.endpoint]
        with trio.fail_after(20):
            for _ in range(200):
                if len(client._caller.channel.endpoints) == len(cluster):
                    break
                await trio.sleep(0.1)
        assert sorted(client._caller.channel.endpoints) == sorted(s.client_url for s in cluster)
        await client.put("cluster/synced", "yes")
