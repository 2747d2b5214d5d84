"""Leases against a real etcd: the Lease calls, and leases kept alive by the client's nursery.

A few tests wait out real TTLs (the server's shortest is about 2 s); they keep TTLs small.
"""

from __future__ import annotations

import pytest
import trio

from puregrpc_etcd.client import connect
from puregrpc_etcd.errors import LeaseExpiredError, LeaseNotFoundError
from puregrpc_etcd.lease import Lease, LeaseGrantResponse
from puregrpc_etcd.testing import EtcdServer


async def test_grant_time_to_live_leases_and_revoke(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        granted = await client.grant(30)
        assert isinstance(granted, LeaseGrantResponse)
        assert granted.id > 0
        assert granted.ttl == 30
        assert f"{granted.id:x}" in repr(granted)
        await client.put("lease/a", "1", lease=granted.id)
        await client.put("lease/b", "2", lease=granted.id)
        status = await client.time_to_live(granted.id, keys=True)
        assert status.id == granted.id
        assert status.granted_ttl == 30
        assert 0 < status.ttl <= 30
        assert sorted(status.keys) == [b"lease/a", b"lease/b"]
        assert granted.id in await client.leases()
        await client.revoke(granted.id)
        assert await client.get_value("lease/a") is None
        assert await client.get_value("lease/b") is None
        assert (await client.time_to_live(granted.id)).ttl == -1
        assert granted.id not in await client.leases()
        with pytest.raises(LeaseNotFoundError):
            await client.revoke(granted.id)


async def test_grant_with_chosen_id(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        granted = await client.grant(10, id=0x1234ABCD)
        assert granted.id == 0x1234ABCD
        await client.revoke(granted.id)


async def test_keepalive_once(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        granted = await client.grant(20)
        renewed = await client.keepalive_once(granted.id)
        assert renewed.id == granted.id
        assert renewed.ttl == 20
        await client.revoke(granted.id)
        with pytest.raises(LeaseNotFoundError) as from_server:
            await client.revoke(granted.id)
        with pytest.raises(LeaseNotFoundError) as renewing:
            await client.keepalive_once(granted.id)
        # Worded as the server words it.
        assert renewing.value.details == from_server.value.details
        assert renewing.value.details == "etcdserver: requested lease not found"
        assert renewing.value.code == from_server.value.code


async def test_bad_arguments_fail_before_io(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        with pytest.raises(TypeError):
            await client.grant("10")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.revoke(1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="lease id"):
            await client.time_to_live(0)
        leases_before = await client.leases()
        for ttl in (0, -1, 9_000_000_001):
            with pytest.raises(ValueError, match="ttl"):
                await client.grant(ttl)
            with pytest.raises(ValueError, match="ttl"):
                async with client.lease(ttl):
                    pass
        for timeout, error in ((0, ValueError), (-1.5, ValueError), (float("nan"), ValueError)):
            with pytest.raises(error, match="timeout"):
                await client.grant(10, timeout=timeout)
        for timeout in ("1", True, b"1"):
            with pytest.raises(TypeError, match="timeout"):
                await client.leases(timeout=timeout)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="timeout"):
                await client.keepalive_once(1, timeout=timeout)  # type: ignore[arg-type]
        assert await client.leases() == leases_before


@pytest.mark.slow
async def test_short_lease_held_for_ten_seconds_stays_alive(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        async with client.lease(2) as lease:
            assert isinstance(lease, Lease)
            await client.put("held/key", "v", lease=lease.id)
            await trio.sleep(10)
            assert not lease.lost.is_set()
            assert await client.get_value("held/key") == b"v"
            assert (await client.time_to_live(lease.id)).ttl > 0
        # Leaving the block revoked it.
        assert await client.get_value("held/key") is None
        assert (await client.time_to_live(lease.id)).ttl == -1


async def test_revoke_on_exit_when_the_body_raises_or_is_cancelled(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        ids = []

        async def failing_body() -> None:
            async with client.lease(30) as lease:
                ids.append(lease.id)
                raise KeyError("boom")

        with pytest.raises(KeyError):
            await failing_body()
        with trio.move_on_after(0.2):
            async with client.lease(30) as lease:
                ids.append(lease.id)
                await trio.sleep_forever()
        for lease_id in ids:
            assert (await client.time_to_live(lease_id)).ttl == -1


async def test_revoked_elsewhere_sets_lost_and_cancels_the_body(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client, connect(server.endpoints) as other:
        leases: list[Lease] = []

        async def body_until_lost() -> None:
            async with client.lease(3, cancel_on_loss=True) as lease:
                leases.append(lease)
                await other.revoke(lease.id)
                with trio.fail_after(10):
                    await trio.sleep_forever()

        with pytest.raises(LeaseExpiredError) as caught:
            await body_until_lost()
        assert caught.value.lease_id == leases[0].id
        assert leases[0].lost.is_set()
        assert "lost" in repr(leases[0])

        async with client.lease(3) as quiet:
            await other.revoke(quiet.id)
            with trio.fail_after(10):
                await quiet.lost.wait()


async def test_keep_alive_an_existing_lease(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        granted = await client.grant(2)
        async with client.keep_alive(granted.id) as lease:
            assert lease.id == granted.id
            await trio.sleep(4)
            assert not lease.lost.is_set()
        # keep_alive does not revoke: the lease lives on until its TTL runs out.
        assert (await client.time_to_live(granted.id)).ttl > 0
        await client.revoke(granted.id)
        with pytest.raises(LeaseNotFoundError):
            async with client.keep_alive(granted.id):
                pass


async def test_many_leases_one_client(server: EtcdServer) -> None:
    async with connect(server.endpoints) as client:
        async with trio.open_nursery() as nursery:
            seen: list[int] = []

            async def hold() -> None:
                async with client.lease(2) as lease:
                    await trio.sleep(5)
                    assert not lease.lost.is_set()
                    assert (await client.time_to_live(lease.id)).ttl > 0
                    seen.append(lease.id)

            for _ in range(10):
                nursery.start_soon(hold)
        assert len(set(seen)) == 10


async def test_client_close_revokes_its_leases(server: EtcdServer) -> None:
    async with connect(server.endpoints) as other:
        ids: list[int] = []
        async with connect(server.endpoints) as client:
            ready = trio.Event()

            async def hold_forever() -> None:
                async with client.lease(60) as lease:
                    ids.append(lease.id)
                    ready.set()
                    await trio.sleep_forever()

            client._caller.nursery.start_soon(hold_forever)
            with trio.fail_after(10):
                await ready.wait()
        assert (await other.time_to_live(ids[0])).ttl == -1
