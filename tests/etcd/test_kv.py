"""KV against a real etcd 3.5: every get/put/delete option, binary safety, history and errors."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool

_prefixes = itertools.count()


@pytest.fixture
def p() -> str:
    """A key prefix no other test of the module writes to."""
    return f"kv-test/{next(_prefixes)}/"


async def grant(client: etcd.Client, ttl: int = 60) -> int:
    reply = await client._unary(rpcs.LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=ttl))
    return reply.ID


async def test_put_then_get(client: etcd.Client, p: str) -> None:
    put = await client.put(p + "a", "1")
    assert put.prev_kv is None
    assert put.header.revision > 0
    assert put.header.cluster_id != 0
    assert put.header.member_id != 0
    got = await client.get(p + "a")
    assert got.count == 1
    assert got.more is False
    assert got.header.revision == put.header.revision
    [kv] = got.kvs
    assert (kv.key, kv.value, kv.version, kv.lease) == (p.encode() + b"a", b"1", 1, 0)
    assert kv.create_revision == kv.mod_revision == put.header.revision
    assert await client.get_value(p + "a") == b"1"
    assert await client.get_value(p + "missing") is None
    assert await client.get_value(p + "missing", b"dflt") == b"dflt"
    assert await client.exists(p + "a")
    assert not await client.exists(p + "missing")
    assert (await client.get(p + "missing")).kvs == []


async def test_get_ranges(client: etcd.Client, p: str) -> None:
    for name in ("a", "b", "c", "d"):
        await client.put(p + name, name)
    keys = lambda reply: [kv.key[len(p) :] for kv in reply.kvs]  # noqa: E731
    assert keys(await client.get(p, prefix=True)) == [b"a", b"b", b"c", b"d"]
    assert keys(await client.get(p + "b", range_end=p + "d")) == [b"b", b"c"]
    assert keys(await client.get(p + "c", from_key=True, limit=2)) == [b"c", b"d"]
    limited = await client.get(p, prefix=True, limit=3)
    assert keys(limited) == [b"a", b"b", b"c"]
    assert limited.more is True
    assert limited.count == 4
    counted = await client.get(p, prefix=True, count_only=True)
    assert counted.count == 4
    assert counted.kvs == []
    only_keys = await client.get(p, prefix=True, keys_only=True)
    assert [kv.value for kv in only_keys.kvs] == [b""] * 4
    assert keys(only_keys) == [b"a", b"b", b"c", b"d"]
    serial = await client.get(p, prefix=True, serializable=True)
    assert keys(serial) == [b"a", b"b", b"c", b"d"]


async def test_get_sorting(client: etcd.Client, p: str) -> None:
    await client.put(p + "a", "3")
    await client.put(p + "b", "1")
    await client.put(p + "c", "2")
    await client.put(p + "b", "1 again")
    keys = lambda reply: [kv.key[len(p) :] for kv in reply.kvs]  # noqa: E731
    assert keys(await client.get(p, prefix=True, sort_order="descend")) == [b"c", b"b", b"a"]
    assert keys(await client.get(p, prefix=True, sort_target="value")) == [b"b", b"c", b"a"]
    by_value_desc = await client.get(p, prefix=True, sort_target="value", sort_order="descend")
    assert keys(by_value_desc) == [b"a", b"c", b"b"]
    assert keys(await client.get(p, prefix=True, sort_target="mod")) == [b"a", b"c", b"b"]
    assert keys(await client.get(p, prefix=True, sort_target="create", sort_order="descend")) == [
        b"c",
        b"b",
        b"a",
    ]
    by_version = await client.get(p, prefix=True, sort_target="version", sort_order="descend")
    assert keys(by_version)[0] == b"b"


async def etcdctl_keys(server: EtcdServer, *args: str) -> list[bytes]:
    """The keys ``etcdctl get -w json ARGS`` prints, in its order."""
    done = await trio.run_process(
        [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", "get", "-w", "json", *args],
        capture_stdout=True,
    )
    return [base64.b64decode(kv["key"]) for kv in json.loads(done.stdout).get("kvs", [])]


async def test_sorting_with_a_limit_is_what_etcdctl_gets(
    client: etcd.Client, server: EtcdServer, p: str
) -> None:
    # Created in the reverse of key order, so that create and key order disagree.
    for name in ("k5", "k4", "k3", "k2", "k1"):
        await client.put(p + name, "v")
    await client.put(p + "k3", "v again")
    keys = lambda reply: [kv.key[len(p) :] for kv in reply.kvs]  # noqa: E731
    # No order with another target: etcd reads limit + 1 keys in key order, then sorts them.
    first = await client.get(p, prefix=True, sort_target="create", limit=3)
    assert keys(first) == [b"k4", b"k3", b"k2"]
    assert first.more
    oldest = await client.get(p, prefix=True, sort_target="create", sort_order="ascend", limit=3)
    assert keys(oldest) == [b"k5", b"k4", b"k3"]
    for target, flag in (("create", "CREATE"), ("mod", "MODIFY"), ("version", "VERSION")):
        for order in ("none", "ascend", "descend"):
            for limit in (0, 1, 3):
                args = ["--prefix", p, f"--sort-by={flag}", f"--limit={limit}"]
                if order != "none":
                    args.append(f"--order={order.upper()}")
                ours = await client.get(
                    p, prefix=True, sort_target=target, sort_order=order, limit=limit
                )
                theirs = await etcdctl_keys(server, *args)
                assert [kv.key for kv in ours.kvs] == theirs, args
    for order in ("none", "ascend", "descend"):
        args = ["--prefix", p, "--limit=2"] + ([] if order == "none" else [f"--order={order}"])
        ours = await client.get(p, prefix=True, sort_order=order, limit=2)
        assert [kv.key for kv in ours.kvs] == await etcdctl_keys(server, *args), args


async def test_get_revision_filters(client: etcd.Client, p: str) -> None:
    first = (await client.put(p + "a", "1")).header.revision
    second = (await client.put(p + "b", "1")).header.revision
    third = (await client.put(p + "a", "2")).header.revision
    keys = lambda reply: [kv.key[len(p) :] for kv in reply.kvs]  # noqa: E731
    assert keys(await client.get(p, prefix=True, min_mod_revision=third)) == [b"a"]
    assert keys(await client.get(p, prefix=True, max_mod_revision=second)) == [b"b"]
    assert keys(await client.get(p, prefix=True, min_create_revision=second)) == [b"b"]
    assert keys(await client.get(p, prefix=True, max_create_revision=first)) == [b"a"]


async def test_history_reads(client: etcd.Client, p: str) -> None:
    revisions = [(await client.put(p + "k", f"v{i}")).header.revision for i in range(3)]
    await client.delete(p + "k")
    assert await client.get_value(p + "k") is None
    for index, revision in enumerate(revisions):
        [kv] = (await client.get(p + "k", revision=revision)).kvs
        assert kv.value == f"v{index}".encode()
        assert kv.version == index + 1
        assert kv.mod_revision == revision
        assert kv.create_revision == revisions[0]


async def test_put_options(client: etcd.Client, p: str) -> None:
    lease = await grant(client)
    await client.put(p + "k", "v1", lease=lease)
    [kv] = (await client.get(p + "k")).kvs
    assert kv.lease == lease
    replaced = await client.put(p + "k", "v2", prev_kv=True, ignore_lease=True)
    assert replaced.prev_kv is not None
    assert replaced.prev_kv.value == b"v1"
    assert replaced.prev_kv.key == (p + "k").encode()
    [kv] = (await client.get(p + "k")).kvs
    assert (kv.value, kv.lease, kv.version) == (b"v2", lease, 2)
    await client.put(p + "k", None, ignore_value=True, lease=0)
    [kv] = (await client.get(p + "k")).kvs
    assert (kv.value, kv.lease, kv.version) == (b"v2", 0, 3)
    fresh = await client.put(p + "new", "x", prev_kv=True)
    assert fresh.prev_kv is None
    with pytest.raises(etcd.LeaseNotFoundError):
        await client.put(p + "k", "v", lease=0x1234567)
    with pytest.raises(etcd.RpcError, match="key not found"):
        await client.put(p + "absent", None, ignore_value=True)


async def test_delete_options(client: etcd.Client, p: str) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await client.put(p + name, name)
    one = await client.delete(p + "a", prev_kv=True)
    assert one.deleted == 1
    assert [(kv.key, kv.value) for kv in one.prev_kvs] == [((p + "a").encode(), b"a")]
    ranged = await client.delete(p + "b", range_end=p + "d")
    assert ranged.deleted == 2
    assert ranged.prev_kvs == []
    assert (await client.delete(p + "missing")).deleted == 0
    rest = await client.delete(p, prefix=True, prev_kv=True)
    assert rest.deleted == 2
    assert sorted(kv.value for kv in rest.prev_kvs) == [b"d", b"e"]
    assert (await client.get(p, prefix=True)).count == 0


async def test_delete_from_key(client: etcd.Client) -> None:
    # Keys above every other test's prefix, so from_key deletes only these.
    base = b"\xfe\xfefrom-key/"
    for index in range(3):
        await client.put(base + bytes([index]), "x")
    deleted = await client.delete(base + b"\x01", from_key=True)
    assert deleted.deleted == 2
    assert [kv.key for kv in (await client.get(base, prefix=True)).kvs] == [base + b"\x00"]


async def test_all_byte_values_round_trip(client: etcd.Client, p: str) -> None:
    value = bytes(range(256))
    base = p.encode()
    for byte in range(256):
        await client.put(base + bytes([byte]), value[byte:] + value[:byte])
    reply = await client.get(base, prefix=True)
    assert reply.count == 256
    for byte, kv in enumerate(reply.kvs):
        assert kv.key == base + bytes([byte])
        assert kv.value == value[byte:] + value[:byte]
    assert await client.get_value(bytearray(base + b"\xff")) == value[255:] + value[:255]
    assert await client.get_value(memoryview(base + b"\x00")) == value
    assert (await client.get(base + b"\xff", prefix=True)).count == 1


async def test_unicode_keys_and_values(client: etcd.Client, p: str) -> None:
    await client.put(p + "ключ/🔑", "значение ✓")
    assert await client.get_value(p + "ключ/🔑") == "значение ✓".encode()


async def test_json_and_prefix_helpers(client: etcd.Client, p: str) -> None:
    document = {"name": "app", "replicas": 3, "tags": ["a", "é"], "nested": {"on": True}}
    await client.put_json(p + "cfg", document)
    assert await client.get_json(p + "cfg") == document
    assert await client.get_json(p + "none", {"d": 1}) == {"d": 1}
    await client.put_json(p + "list", [1, 2], prev_kv=True)
    everything = await client.get_prefix(p)
    assert set(everything) == {(p + "cfg").encode(), (p + "list").encode()}
    assert everything[(p + "list").encode()].value == b"[1,2]"


async def test_compaction(client: etcd.Client, p: str) -> None:
    old = (await client.put(p + "k", "old")).header.revision
    new = (await client.put(p + "k", "new")).header.revision
    compacted = await client.compact(new, physical=True)
    assert compacted.header.revision >= new
    with pytest.raises(etcd.CompactedError) as caught:
        await client.get(p + "k", revision=old)
    assert caught.value.code.name == "OUT_OF_RANGE"
    assert "compacted" in caught.value.details
    assert caught.value.compact_revision == new
    [kv] = (await client.get(p + "k", revision=new)).kvs
    assert kv.value == b"new"
    with pytest.raises(etcd.CompactedError):
        await client.compact(old)


async def test_future_revision(client: etcd.Client, p: str) -> None:
    current = (await client.put(p + "k", "v")).header.revision
    with pytest.raises(etcd.FutureRevisionError):
        await client.get(p + "k", revision=current + 1000)


async def test_request_too_large_keeps_the_connection(client: etcd.Client, p: str) -> None:
    big = b"x" * (1536 * 1024 + 1)  # above etcd's 1.5 MiB, below our 2 MiB send limit
    with pytest.raises(etcd.RequestTooLargeError):
        await client.put(p + "big", big)
    with pytest.raises(etcd.RequestTooLargeError):
        await client.put(p + "bigger", b"y" * (3 * 1024 * 1024))  # above our own send limit
    await client.put(p + "small", "ok")
    assert await client.get_value(p + "small") == b"ok"
    fits = b"z" * (1024 * 1024)
    await client.put(p + "fits", fits)
    assert await client.get_value(p + "fits") == fits


async def test_bad_input_fails_before_io(p: str) -> None:
    # Nothing listens on port 1: any I/O would fail with ConnectionFailedError instead.
    async with etcd.connect("127.0.0.1:1", connect_timeout=0.5, retries=0) as offline:
        for call in (
            lambda: offline.get(5),
            lambda: offline.get(p, limit="3"),
            lambda: offline.put(p + "k", 1.5),
            lambda: offline.put(None, "v"),
            lambda: offline.delete(object()),
            lambda: offline.txn([etcd.Op.get("k")]),
            lambda: offline.compact("7"),
        ):
            with pytest.raises(TypeError):
                await call()
        for call in (
            lambda: offline.get(""),
            lambda: offline.put("", "v"),
            lambda: offline.delete(b""),
            lambda: offline.get(p, prefix=True, from_key=True),
            lambda: offline.get(p, sort_order="sideways"),
            lambda: offline.get(p, revision=-1),
        ):
            with pytest.raises(ValueError):
                await call()
        with pytest.raises(etcd.ConnectionFailedError):
            await offline.get(p)


async def test_deadline_and_cancellation_leave_the_client_usable(
    client: etcd.Client, p: str
) -> None:
    await client.put(p + "k", "v")
    with pytest.raises(etcd.DeadlineExceededError):
        await client.get(p + "k", timeout=1e-9)
    assert await client.get_value(p + "k") == b"v"
    with trio.move_on_after(0) as scope:
        await client.get(p + "k")
    assert scope.cancelled_caught
    async with trio.open_nursery() as nursery:
        cancel_scope = trio.CancelScope()

        async def get_cancelled() -> None:
            with cancel_scope:
                await client.put(p + "k2", "v")
                await client.get(p, prefix=True)

        nursery.start_soon(get_cancelled)
        await trio.lowlevel.checkpoint()
        cancel_scope.cancel()
    with trio.fail_after(10):
        assert await client.get_value(p + "k") == b"v"
        results = []

        async def one(index: int) -> None:
            results.append(await client.get_value(p + "k"))

        async with trio.open_nursery() as nursery:
            for index in range(50):
                nursery.start_soon(one, index)
    assert results == [b"v"] * 50


async def test_client_default_timeout(server: EtcdServer, p: str) -> None:
    async with etcd.connect(server.endpoints, timeout=1e-9) as hurried:
        with pytest.raises(etcd.DeadlineExceededError):
            await hurried.get(p + "k")
        await hurried.put(p + "k", "v", timeout=10)
        assert await hurried.get_value(p + "k", timeout=10) == b"v"


async def test_concurrent_large_replies_keep_their_own_values(client: etcd.Client, p: str) -> None:
    # Replies over 256 KiB arrive in many frames, interleaved on one connection; replies of
    # three sizes, twelve at a time, must never mix.
    sizes = {"a": 1_200, "b": 2_500, "c": 4_000}  # keys of 300 B values: 0.4 to 1.3 MB
    for name, count in sizes.items():
        for start in range(0, count, 100):
            ops = [
                etcd.Op.put(f"{p}{name}/{index:05d}", name * 300)
                for index in range(start, min(start + 100, count))
            ]
            await client.txn(success=ops)
    seen: list[tuple[str, int, set[bytes]]] = []

    async def read(name: str) -> None:
        reply = await client.get(f"{p}{name}/", prefix=True)
        seen.append((name, len(reply.kvs), {kv.value for kv in reply.kvs}))

    with trio.fail_after(60):
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for name in "abcabcabcabc":
                    nursery.start_soon(read, name)
    assert len(seen) == 36
    for name, count, values in seen:
        assert (count, values) == (sizes[name], {name.encode() * 300})
