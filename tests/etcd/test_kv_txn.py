"""Transactions against a real etcd 3.5: both branches, every compare target, ranges, nesting,
and the server's txn limits."""

from __future__ import annotations

import itertools

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd import Compare, Op
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._proto import rpc_pb2

_prefixes = itertools.count()


@pytest.fixture
def p() -> str:
    return f"txn-test/{next(_prefixes)}/"


async def test_create_if_absent_runs_each_branch(client: etcd.Client, p: str) -> None:
    key = p + "lock"
    attempt = [Compare.create_revision(key) == 0]
    first = await client.txn(attempt, [Op.put(key, "me")], [Op.get(key)])
    assert first.succeeded is True
    [put] = first.responses
    assert isinstance(put, etcd.PutResponse)
    assert put.prev_kv is None
    second = await client.txn(attempt, [Op.put(key, "other")], [Op.get(key)])
    assert second.succeeded is False
    [got] = second.responses
    assert isinstance(got, etcd.GetResponse)
    assert got.kvs[0].value == b"me"
    assert second.header.revision == first.header.revision


async def test_every_compare_target_and_operator(client: etcd.Client, p: str) -> None:
    key = p + "k"
    created = (await client.put(key, "b")).header.revision
    await client.put(key, "b")  # version 2
    lease = (await client._unary(rpcs.LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=60))).ID
    modified = (await client.put(key, "b", lease=lease)).header.revision  # version 3
    true_compares = [
        Compare.value(key) == "b",
        Compare.value(key) != "a",
        Compare.value(key) > "a",
        Compare.value(key) < "c",
        Compare.version(key) == 3,
        Compare.version(key) > 2,
        Compare.version(key) < 4,
        Compare.version(key) != 1,
        Compare.create_revision(key) == created,
        Compare.mod_revision(key) == modified,
        Compare.mod_revision(key) > created,
        Compare.lease(key) == lease,
        Compare.lease(key) != 0,
    ]
    for compare in true_compares:
        assert (await client.txn([compare])).succeeded, compare
    assert (await client.txn(true_compares)).succeeded
    false_compares = [
        Compare.value(key) == "a",
        Compare.version(key) < 3,
        Compare.create_revision(key) == 0,
        Compare.mod_revision(key) < created,
        Compare.lease(key) == lease + 1,
    ]
    for compare in false_compares:
        assert not (await client.txn([compare])).succeeded, compare
    assert not (await client.txn([*true_compares, false_compares[0]])).succeeded


async def test_range_compares(client: etcd.Client, p: str) -> None:
    for name in ("a", "b", "c"):
        await client.put(p + name, "same")
    assert (await client.txn([Compare.value(p, prefix=True) == "same"])).succeeded
    await client.put(p + "b", "different")
    assert not (await client.txn([Compare.value(p, prefix=True) == "same"])).succeeded
    assert (await client.txn([Compare.value(p + "a", range_end=p + "b") == "same"])).succeeded
    assert (await client.txn([Compare.version(p, prefix=True) > 0])).succeeded


async def test_every_op_kind_and_its_response(client: etcd.Client, p: str) -> None:
    await client.put(p + "old", "1")
    await client.put(p + "gone", "x")
    reply = await client.txn(
        [],
        [
            Op.put(p + "old", "2", prev_kv=True),
            Op.get(p, prefix=True, keys_only=True),
            Op.delete(p + "gone", prev_kv=True),
            Op.get(p + "old", count_only=True),
        ],
    )
    assert reply.succeeded
    put, got, deleted, counted = reply.responses
    assert isinstance(put, etcd.PutResponse)
    assert put.prev_kv is not None
    assert put.prev_kv.value == b"1"
    assert isinstance(got, etcd.GetResponse)
    assert [kv.key for kv in got.kvs] == [(p + "gone").encode(), (p + "old").encode()]
    assert [kv.value for kv in got.kvs] == [b"", b""]
    assert isinstance(deleted, etcd.DeleteResponse)
    assert deleted.deleted == 1
    assert deleted.prev_kvs[0].value == b"x"
    assert isinstance(counted, etcd.GetResponse)
    assert counted.count == 1
    assert await client.get_value(p + "old") == b"2"


async def test_nested_txn(client: etcd.Client, p: str) -> None:
    await client.put(p + "flag", "on")
    inner = Op.txn(
        [Compare.value(p + "flag") == "on"],
        [Op.put(p + "inner", "yes"), Op.get(p + "flag")],
        [Op.put(p + "inner", "no")],
    )
    reply = await client.txn([Compare.version(p + "flag") > 0], [inner], [])
    assert reply.succeeded
    [nested] = reply.responses
    assert isinstance(nested, etcd.TxnResponse)
    assert nested.succeeded
    put, got = nested.responses
    assert isinstance(put, etcd.PutResponse)
    assert isinstance(got, etcd.GetResponse)
    assert got.kvs[0].value == b"on"
    assert await client.get_value(p + "inner") == b"yes"
    await client.put(p + "flag", "off")
    reply = await client.txn([], [inner])
    [nested] = reply.responses
    assert isinstance(nested, etcd.TxnResponse)
    assert not nested.succeeded
    assert await client.get_value(p + "inner") == b"no"


async def test_empty_txn_and_reads_only(client: etcd.Client, p: str) -> None:
    empty = await client.txn()
    assert empty.succeeded
    assert empty.responses == []
    await client.put(p + "k", "v")
    reads = await client.txn([], [Op.get(p + "k")], [Op.get(p + "k")])
    [got] = reads.responses
    assert isinstance(got, etcd.GetResponse)
    assert got.kvs[0].value == b"v"


async def test_txn_limits(client: etcd.Client, p: str) -> None:
    with pytest.raises(etcd.TooManyOpsError):
        await client.txn([], [Op.put(p + str(index), "v") for index in range(129)])
    with pytest.raises(etcd.DuplicateKeyError):
        await client.txn([], [Op.put(p + "dup", "1"), Op.put(p + "dup", "2")])
    reply = await client.txn([], [Op.put(p + str(index), "v") for index in range(128)])
    assert len(reply.responses) == 128
    assert (await client.get(p, prefix=True, count_only=True)).count == 128
