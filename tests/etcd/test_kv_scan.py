"""``scan`` against a real etcd 3.5: many pages at one revision while another task writes."""

from __future__ import annotations

import itertools

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import Op

_prefixes = itertools.count()


@pytest.fixture
def p() -> str:
    return f"scan-test/{next(_prefixes)}/"


async def fill(client: etcd.Client, prefix: str, count: int, value: str = "v0") -> int:
    """Write ``count`` keys in txns of 128 puts; return the last revision."""
    revision = 0
    for start in range(0, count, 128):
        end = min(count, start + 128)
        ops = [Op.put(f"{prefix}{index:06d}", value) for index in range(start, end)]
        revision = (await client.txn([], ops)).header.revision
    return revision


async def test_scan_20000_keys_is_a_snapshot_while_others_write(
    client: etcd.Client, p: str
) -> None:
    total = 20_000
    await fill(client, p, total)
    scanned: list[etcd.KeyValue] = []
    writes = 0
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:

            async def writer() -> None:
                nonlocal writes
                for index in range(10_000):
                    # Change old keys, add new ones, delete some: none may show in the scan.
                    await client.put(f"{p}{index * 2:06d}", "changed")
                    await client.put(f"{p}new-{index:06d}", "new")
                    await client.delete(f"{p}{index * 2 + 1:06d}")
                    writes += 1

            async for kv in client.scan(p, page_size=500):
                scanned.append(kv)
                if len(scanned) == 1:
                    # The first page fixed the revision; every later page is read while this
                    # writer changes, adds and deletes keys in the range.
                    nursery.start_soon(writer)
                if len(scanned) % 500 == 0:
                    await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    assert writes > 0, "the writer never ran during the scan"
    assert len(scanned) == total
    assert [kv.key for kv in scanned] == [f"{p}{index:06d}".encode() for index in range(total)]
    assert {kv.value for kv in scanned} == {b"v0"}
    added = await client.get(f"{p}new-", prefix=True, count_only=True)
    assert added.count >= writes
    assert await client.get_value(f"{p}000000") == b"changed"


async def test_scan_at_a_revision_and_keys_only(client: etcd.Client, p: str) -> None:
    revision = await fill(client, p, 300)
    await client.delete(p, prefix=True)
    old = [kv async for kv in client.scan(p, page_size=7, revision=revision, keys_only=True)]
    assert [kv.key for kv in old] == [f"{p}{index:06d}".encode() for index in range(300)]
    assert {kv.value for kv in old} == {b""}
    assert [kv async for kv in client.scan(p)] == []


async def test_scan_from_a_key_and_to_a_range_end(client: etcd.Client, p: str) -> None:
    await fill(client, p, 50)
    ranged = [kv.key async for kv in client.scan(f"{p}000010", range_end=f"{p}000020", page_size=3)]
    assert ranged == [f"{p}{index:06d}".encode() for index in range(10, 20)]
    tail = [kv.key async for kv in client.scan(f"{p}000045", prefix=False, page_size=2)]
    assert tail[:5] == [f"{p}{index:06d}".encode() for index in range(45, 50)]


async def test_scan_fails_when_its_revision_is_compacted(client: etcd.Client, p: str) -> None:
    await fill(client, p, 30)
    pages = client.scan(p, page_size=10)
    first = [await pages.__anext__() for _ in range(10)]
    assert len(first) == 10
    await client.put(p + "later", "x")
    current = (await client.put(p + "later", "y")).header.revision
    await client.compact(current)
    with pytest.raises(etcd.CompactedError) as caught:
        async for _ in pages:
            pass
    assert caught.value.compact_revision == current


async def test_get_prefix_reads_every_page(client: etcd.Client, p: str) -> None:
    await fill(client, p, 1200, value="x")
    everything = await client.get_prefix(p, page_size=100)
    assert len(everything) == 1200
    assert everything[f"{p}001199".encode()].value == b"x"


async def test_bad_scan_arguments(client: etcd.Client) -> None:
    with pytest.raises(TypeError):
        [kv async for kv in client.scan(7)]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        [kv async for kv in client.scan("x", page_size=-1)]
