"""Namespaced views against a real etcd: every key in and out prefixed and unprefixed as Go's
``client/v3/namespace`` does it (KV, ranges to the end of the namespace, txn compares and nested
ops, watches, locks, elections, lease keys), nested views, and what views share with the client."""

from __future__ import annotations

import itertools

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.txn import Compare, Op
from puregrpc_etcd.watch import Event, Watcher

_prefixes = itertools.count()


@pytest.fixture
def ns() -> bytes:
    """A namespace no other test of the module writes to."""
    return f"ns-test/{next(_prefixes)}/".encode()


async def keys(client: etcd.Client, prefix: bytes) -> dict[bytes, bytes]:
    return {kv.key: kv.value for kv in (await client.get(prefix, prefix=True)).kvs}


async def take(watcher: Watcher, count: int) -> list[Event]:
    events: list[Event] = []
    with trio.fail_after(10):
        async for event in watcher:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_put_get_delete_are_prefixed_and_unprefixed(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    assert isinstance(view, etcd.Client)
    await view.put("a", "1")
    assert await client.get_value(ns + b"a") == b"1"
    assert await client.get_value("a") is None
    got = await view.get("a")
    assert [kv.key for kv in got.kvs] == [b"a"]
    assert got.kvs[0].value == b"1"
    assert await view.get_value("a") == b"1"
    assert await view.exists("a")
    assert not await view.exists(ns + b"a")  # no double prefix
    put = await view.put("a", "2", prev_kv=True)
    assert put.prev_kv is not None
    assert (put.prev_kv.key, put.prev_kv.value) == (b"a", b"1")
    deleted = await view.delete("a", prev_kv=True)
    assert deleted.deleted == 1
    assert [(kv.key, kv.value) for kv in deleted.prev_kvs] == [(b"a", b"2")]
    assert await client.get_value(ns + b"a") is None
    await view.put_json("j", {"x": 1})
    assert await view.get_json("j") == {"x": 1}
    assert await client.get_json(ns + b"j") == {"x": 1}
    with pytest.raises(ValueError):
        await view.put("", "x")
    with pytest.raises(TypeError):
        await view.get(1)


async def test_ranges_end_at_the_end_of_the_namespace(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    for key in ("a", "b/1", "b/2", "c"):
        await client.put(ns + key.encode(), key)
    # Neighbours on both sides of the namespace that a leaking range would pick up.
    before, after = ns[:-1] + b".", ns[:-1] + b"0"
    await client.put(before, "before")
    await client.put(after, "after")
    try:
        every = await view.get("", prefix=True)
        assert [kv.key for kv in every.kvs] == [b"a", b"b/1", b"b/2", b"c"]
        assert every.count == 4
        assert [kv.key for kv in (await view.get("b/", prefix=True)).kvs] == [b"b/1", b"b/2"]
        assert [kv.key for kv in (await view.get("b/2", from_key=True)).kvs] == [b"b/2", b"c"]
        assert [kv.key for kv in (await view.get("", from_key=True)).kvs] == [
            b"a",
            b"b/1",
            b"b/2",
            b"c",
        ]
        assert [kv.key for kv in (await view.get("a", range_end="b/2")).kvs] == [b"a", b"b/1"]
        # Go's rule: a range end of "\0" means the end of the namespace, not of the keyspace.
        assert [kv.key for kv in (await view.get("b", range_end=b"\0")).kvs] == [
            b"b/1",
            b"b/2",
            b"c",
        ]
        assert (await view.get("", prefix=True, count_only=True)).count == 4
        assert [kv.key async for kv in view.scan("", page_size=1)] == [b"a", b"b/1", b"b/2", b"c"]
        assert set(await view.get_prefix("b/")) == {b"b/1", b"b/2"}
        assert (await view.delete("c", from_key=True)).deleted == 1
        assert (await view.delete("", prefix=True)).deleted == 3
        assert await keys(client, ns) == {}
        assert await client.get_value(before) == b"before"
        assert await client.get_value(after) == b"after"
    finally:
        await client.delete(before)
        await client.delete(after)


async def test_txn_compares_nested_ops_and_responses(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    await view.put("k", "v")
    await view.put("p/1", "x")
    reply = await view.txn(
        [Compare.value("k") == b"v", Compare.version("p/", prefix=True) > 0],
        [
            Op.put("k", "w", prev_kv=True),
            Op.get("p/", prefix=True),
            Op.txn(
                [Compare.create_revision("missing") == 0],
                [Op.put("nested", "n"), Op.get("k")],
            ),
            Op.delete("p/1", prev_kv=True),
        ],
        [Op.put("failed", "1")],
    )
    assert reply.succeeded
    put, got, nested, deleted = reply.responses
    assert isinstance(put, etcd.PutResponse)
    assert put.prev_kv is not None
    assert put.prev_kv.key == b"k"
    assert isinstance(got, etcd.GetResponse)
    assert [kv.key for kv in got.kvs] == [b"p/1"]
    assert isinstance(nested, etcd.TxnResponse)
    assert nested.succeeded
    inner_get = nested.responses[1]
    assert isinstance(inner_get, etcd.GetResponse)
    assert [(kv.key, kv.value) for kv in inner_get.kvs] == [(b"k", b"w")]
    assert isinstance(deleted, etcd.DeleteResponse)
    assert [kv.key for kv in deleted.prev_kvs] == [b"p/1"]
    assert await keys(client, ns) == {ns + b"k": b"w", ns + b"nested": b"n"}
    # The compare sees the view's key, not the same name outside the namespace.
    await client.put(b"k-outside-" + ns, "v")
    failed = await view.txn([Compare.value("k") == b"v"], [], [Op.put("failed", "1")])
    assert not failed.succeeded
    assert await client.get_value(ns + b"failed") == b"1"
    # A compare over a range that runs to the end of the namespace.
    everything = await view.txn([Compare.version("a", range_end=b"\0") > 0], [Op.get("k")])
    assert everything.succeeded
    await client.delete(b"k-outside-" + ns)


async def test_watch_events_are_unprefixed_and_limited(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    sibling = client.namespace(ns + b"sibling/")
    async with (
        view.watch("", prefix=True, prev_kv=True) as everything,
        view.watch("k") as one,
        view.watch("m", from_key=True) as tail,
        client.watch(ns, prefix=True) as plain,
    ):
        await view.put("k", "1")
        await view.put("k", "2")
        await client.put(ns[:-1] + b"0", "outside after the namespace")
        await view.put("z", "3")
        await sibling.put("s", "4")
        await view.delete("k")
        first = await take(everything, 5)
        assert [(e.type, e.kv.key) for e in first] == [
            ("put", b"k"),
            ("put", b"k"),
            ("put", b"z"),
            ("put", b"sibling/s"),
            ("delete", b"k"),
        ]
        assert first[1].prev_kv is not None
        assert first[1].prev_kv.key == b"k"
        assert first[4].prev_kv is not None
        assert (first[4].prev_kv.key, first[4].prev_kv.value) == (b"k", b"2")
        assert [(e.type, e.kv.key) for e in await take(one, 3)] == [
            ("put", b"k"),
            ("put", b"k"),
            ("delete", b"k"),
        ]
        # from_key stops at the end of the namespace: the key after it never shows up.
        assert [e.kv.key for e in await take(tail, 2)] == [b"z", b"sibling/s"]
        assert [e.kv.key for e in await take(plain, 5)] == [
            ns + b"k",
            ns + b"k",
            ns + b"z",
            ns + b"sibling/s",
            ns + b"k",
        ]
    async with sibling.watch("", prefix=True, start_revision=1) as replay:
        [only] = await take(replay, 1)
        assert (only.kv.key, only.kv.value) == (b"s", b"4")
    await client.delete(ns[:-1] + b"0")


async def test_views_share_the_client(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    nested = view.namespace("inner/")
    assert nested._keyspace.prefix == ns + b"inner/"
    assert nested._caller is client._caller
    assert type(nested) is type(client)
    assert ns in repr(nested).encode()
    await nested.put("k", "v")
    assert await client.get_value(ns + b"inner/k") == b"v"
    assert await view.get_value("inner/k") == b"v"
    assert [kv.key for kv in (await nested.get("", prefix=True)).kvs] == [b"k"]
    # One watch stream and one lease keeper for the client and all its views.
    async with nested.watch("k") as watcher, view.watch("inner/k") as outer:
        await client.put(ns + b"inner/k", "w")
        [event] = await take(watcher, 1)
        assert event.kv.key == b"k"
        [outer_event] = await take(outer, 1)
        assert outer_event.kv.key == b"inner/k"
        hub = client._caller.watch_hub
        assert view._caller.watch_hub is hub
        assert nested._caller.watch_hub is hub
        assert hub is not None
        assert hub.streams_opened == 1
    async with view.lease(30) as lease:
        await view.put("leased", "x", lease=lease.id)
        assert client._caller.lease_keeper is view._caller.lease_keeper is not None
        assert (await client.get(ns + b"leased")).kvs[0].lease == lease.id
    assert await client.get_value(ns + b"leased") is None
    assert client.namespace(ns + b"inner/")._keyspace.prefix == nested._keyspace.prefix
    with pytest.raises(ValueError):
        client.namespace("")
    with pytest.raises(TypeError):
        client.namespace(3)


async def test_lease_keys_are_unprefixed(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    granted = await client.grant(30)
    try:
        await view.put("mine", "1", lease=granted.id)
        await client.put(b"other-" + ns, "2", lease=granted.id)
        status = await view.time_to_live(granted.id, keys=True)
        # As Go's namespace.NewLease: keys outside the namespace are left out.
        assert status.keys == [b"mine"]
    finally:
        await client.revoke(granted.id)


async def test_lock_through_a_view_is_the_prefixed_lock(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    async with view.lock("job", ttl=10) as lock:
        assert lock.key == b"job/%x" % lock.lease_id
        held = await client.get(ns + b"job/", prefix=True)
        assert [kv.key for kv in held.kvs] == [ns + lock.key]
        assert held.kvs[0].create_revision == lock.revision
        # The same lock for a plain client that names it with the prefix.
        async with client.try_lock(ns + b"job", ttl=10) as other:
            assert other is None
        # A fencing compare through the view.
        guarded = await view.txn(
            [Compare.create_revision(lock.key) == lock.revision], [Op.put("fenced", "1")]
        )
        assert guarded.succeeded
    assert await keys(client, ns + b"job/") == {}
    async with client.lock(ns + b"job", ttl=10), view.try_lock("job", ttl=10) as other:
        assert other is None
    lease = await client.grant(30)
    try:
        key = await view.lock_rpc("rpc-lock", lease.id)
        assert key.startswith(b"rpc-lock/")
        assert await client.exists(ns + key)
        await view.unlock_rpc(key)
        assert not await client.exists(ns + key)
    finally:
        await client.revoke(lease.id)


async def test_election_through_a_view(client: etcd.Client, ns: bytes) -> None:
    view = client.namespace(ns)
    election = view.election("leader", ttl=10)
    async with election.campaign("me") as leader:
        assert leader.key.startswith(b"leader/")
        assert await client.get_value(ns + leader.key) == b"me"
        current = await election.leader()
        assert current is not None
        assert (current.key, current.value) == (leader.key, b"me")
        plain = await client.election(ns + b"leader").leader()
        assert plain is not None
        assert plain.key == ns + leader.key
    assert await keys(client, ns + b"leader/") == {}
