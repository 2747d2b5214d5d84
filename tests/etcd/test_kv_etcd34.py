"""The basic KV calls against Debian's etcd 3.4, where it is installed (.ci/run installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd import Compare, Op
from puregrpc_etcd.testing import EtcdServer, etcd_version

ETCD_34 = "/usr/bin/etcd"

pytestmark = pytest.mark.skipif(
    not os.access(ETCD_34, os.X_OK), reason="Debian's etcd 3.4 (apt-get install etcd-server)"
)


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    assert etcd_version(ETCD_34)[:2] == (3, 4)
    with EtcdServer(binary=ETCD_34) as started:
        yield started


async def test_put_get_delete(client: etcd.Client) -> None:
    put = await client.put("v34/a", b"\x00\xff", prev_kv=True)
    assert put.prev_kv is None
    await client.put("v34/b", "2")
    reply = await client.get("v34/", prefix=True, sort_order="descend")
    assert [kv.key for kv in reply.kvs] == [b"v34/b", b"v34/a"]
    assert reply.kvs[1].value == b"\x00\xff"
    assert (await client.get("v34/", prefix=True, count_only=True)).count == 2
    [old] = (await client.get("v34/a", revision=put.header.revision)).kvs
    assert old.value == b"\x00\xff"
    assert (await client.delete("v34/", prefix=True, prev_kv=True)).deleted == 2


async def test_txn_and_scan(client: etcd.Client) -> None:
    reply = await client.txn(
        [Compare.create_revision("v34/t") == 0],
        [Op.put("v34/t", "created"), Op.txn([], [Op.get("v34/t")])],
        [Op.get("v34/t")],
    )
    assert reply.succeeded
    nested = reply.responses[1]
    assert isinstance(nested, etcd.TxnResponse)
    for index in range(25):
        await client.put(f"v34/s/{index:02d}", str(index))
    keys = [kv.key async for kv in client.scan("v34/s/", page_size=4)]
    assert keys == [f"v34/s/{index:02d}".encode() for index in range(25)]


async def test_errors(client: etcd.Client) -> None:
    revision = (await client.put("v34/e", "1")).header.revision
    with pytest.raises(etcd.FutureRevisionError):
        await client.get("v34/e", revision=revision + 100)
    await client.put("v34/e", "2")
    await client.compact(revision + 1)
    with pytest.raises(etcd.CompactedError):
        await client.get("v34/e", revision=revision)
    with pytest.raises(etcd.RequestTooLargeError):
        await client.put("v34/big", b"x" * (1536 * 1024 + 1))
    assert await client.get_value("v34/e") == b"2"
