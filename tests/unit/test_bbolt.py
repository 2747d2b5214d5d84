"""The bbolt reader and ``snapshot status`` on small files built byte by byte: meta selection,
iteration order, inline and nested buckets, bbolt's checks, and damaged files."""

from __future__ import annotations

import os
import struct

import pytest
from bbolt_files import (
    BUCKET,
    PAGE_SIZE,
    branch,
    bucket_value,
    database,
    freelist,
    leaf,
    meta,
    revision,
    sample,
)

from puregrpc_etcd._bbolt import CorruptDatabase, Database
from puregrpc_etcd._snapshot_status import crc32c, snapshot_status


def test_crc32c_known_answer() -> None:
    assert crc32c([b"123456789"]) == 0xE3069283
    assert crc32c([b"1234", b"56789"]) == 0xE3069283
    assert crc32c([b"56789"], crc32c([b"1234"])) == 0xE3069283
    assert crc32c([]) == 0


def test_items_in_key_order_through_branches_and_inline_buckets() -> None:
    db = Database(sample())
    assert db.page_size == PAGE_SIZE
    assert db.size == 6 * PAGE_SIZE
    top = list(db.items(db.root))
    assert [name for name, _, _ in top] == [b"key", b"meta"]
    assert all(value is None and bucket is not None for _, value, bucket in top)
    key_bucket, meta_bucket = (bucket for _, _, bucket in top if bucket is not None)
    assert key_bucket.root == 0
    assert [(k, v) for k, v, _ in db.items(key_bucket)] == [
        (revision(2), b"kv2"),
        (revision(3), b"kv3"),
    ]
    assert [(k, v) for k, v, _ in db.items(meta_bucket)] == [
        (b"a", b"1"),
        (b"b", b"2"),
        (b"m", b"3"),
        (b"z", b"4"),
    ]
    assert db.check() == []


def test_status_is_etcdutls() -> None:
    status = snapshot_status(sample())
    hashed = [b"key", revision(2), b"kv2", revision(3), b"kv3"]
    hashed += [b"meta", b"a", b"1", b"b", b"2", b"m", b"3", b"z", b"4"]
    assert status.hash == crc32c([b"".join(hashed)])
    assert status.revision == 3  # the key bucket's last key's main revision
    assert status.total_key == 6  # every entry of every bucket, as etcdutl 3.5 counts
    assert status.total_size == 6 * PAGE_SIZE


def test_the_newer_valid_meta_is_used_and_a_bad_one_skipped() -> None:
    data = bytearray(sample())
    # meta 0 (txid 4) points at page 2; make meta 1 the newer one pointing elsewhere.
    data[PAGE_SIZE : 2 * PAGE_SIZE] = meta(1, 3, 6, 9).ljust(PAGE_SIZE, b"\0")
    assert Database(bytes(data)).meta.root == 3
    data[PAGE_SIZE + 16] ^= 0xFF  # meta 1's magic: invalid, so meta 0 again
    assert Database(bytes(data)).meta.root == 2
    assert snapshot_status(bytes(data)).revision == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"magic": 1}, "invalid database"),
        ({"version": 1}, "version mismatch"),
        ({"checksum": 1}, "checksum error"),
    ],
)
def test_both_metas_bad(bad: dict[str, int], message: str) -> None:
    pages = [meta(0, 2, 3, 1, **bad), meta(1, 2, 3, 1, **bad), leaf(2, [])]
    # Long enough for two pages of the 4 KiB bbolt assumes when no meta says otherwise.
    with pytest.raises(CorruptDatabase, match=message):
        Database(database(pages) + bytes(8192))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0" * 100,
        os.urandom(3 * PAGE_SIZE),
        sample()[: PAGE_SIZE + 100],  # a meta page, then too little for a second one
        sample()[: 4 * PAGE_SIZE],  # the tree's pages cut off
    ],
    ids=["empty", "zeros", "random", "one-meta", "truncated"],
)
def test_damaged_files_raise_corrupt_database(data: bytes) -> None:
    with pytest.raises(CorruptDatabase):
        snapshot_status(data)


def test_elements_outside_their_page() -> None:
    bad_leaf = bytearray(leaf(2, [(b"k", b"v", 0)]))
    struct.pack_into("<I", bad_leaf, 16 + 12, 10**6)  # the value's size
    pages = [meta(0, 2, 3, 1), meta(1, 2, 3, 1), bytes(bad_leaf)]
    with pytest.raises(CorruptDatabase, match="outside the page"):
        snapshot_status(database(pages))
    many = bytearray(leaf(2, []))
    struct.pack_into("<H", many, 10, 5000)  # the element count
    with pytest.raises(CorruptDatabase, match="do not fit"):
        snapshot_status(database([meta(0, 2, 3, 1), meta(1, 2, 3, 1), bytes(many)]))


def test_check_with_a_freelist() -> None:
    # Page 7 is free: listed in the freelist, used by nobody.
    assert Database(sample([7], [leaf(7, [])])).check() == []
    assert Database(sample([], [leaf(7, [])])).check() == ["page 7: unreachable unfreed"]
    errors = Database(sample([7, 7], [leaf(7, [])])).check()
    assert errors == ["page 7: already freed"]
    assert Database(sample([4, 7], [leaf(7, [])])).check() == ["page 4: reachable freed"]
    with pytest.raises(CorruptDatabase, match=r"integrity check failed\. 1 errors found"):
        snapshot_status(sample([], [leaf(7, [])]))


def test_check_without_a_freelist_takes_unreachable_pages_as_free() -> None:
    assert Database(sample(None, [leaf(6, [])])).check() == []


def _with_pages(*pages: bytes) -> Database:
    count = 2 + len(pages)
    return Database(database([meta(0, 2, count, 1), meta(1, 2, count, 1), *pages]))


def test_check_reports_loops_without_looping() -> None:
    root = leaf(2, [(b"b", bucket_value(3), BUCKET)])
    looping = branch(3, [(b"a", 3)])
    errors = _with_pages(root, looping).check()
    assert errors == ["page 3: multiple references (stack: [3, 3])"]
    with pytest.raises(CorruptDatabase):
        snapshot_status(database([meta(0, 2, 4, 1), meta(1, 2, 4, 1), root, looping]))


def test_check_reports_keys_out_of_order() -> None:
    root = leaf(2, [(b"b", bucket_value(3), BUCKET)])
    unsorted = leaf(3, [(b"b", b"", 0), (b"a", b"", 0)])
    [error] = _with_pages(root, unsorted).check()
    assert error.startswith("key[1]=(hex)61 on leaf page(3) needs to be > (found <)")
    # A child holding a key beyond its parent's next key.
    parent = branch(3, [(b"a", 4), (b"m", 5)])
    errors = _with_pages(root, parent, leaf(4, [(b"z", b"", 0)]), leaf(5, [(b"m", b"", 0)])).check()
    assert len(errors) == 2
    assert "needs to be < than key of the next element in ancestor (hex)6d" in errors[0]


def test_check_reports_pages_beyond_the_high_water_mark_and_bad_types() -> None:
    root = leaf(2, [(b"b", bucket_value(9), BUCKET), (b"c", bucket_value(3), BUCKET)])
    errors = _with_pages(root, freelist(3, [])).check()
    assert errors == [
        "page 9: out of bounds: 4 (stack: [9])",
        "page 3: invalid type: 0x10 (stack: [3])",
    ]


def test_a_root_entry_that_is_no_bucket() -> None:
    pages = [meta(0, 2, 3, 1), meta(1, 2, 3, 1), leaf(2, [(b"key", b"value", 0)])]
    with pytest.raises(CorruptDatabase, match="cannot get hash of bucket key"):
        snapshot_status(database(pages))


def test_an_overflowing_page_is_read_whole() -> None:
    big = b"v" * (3 * PAGE_SIZE)
    root = leaf(2, [(b"b", bucket_value(3), BUCKET)])
    pages = [meta(0, 2, 7, 1), meta(1, 2, 7, 1), root, leaf(3, [(b"k", big, 0)], overflow=3)]
    db = Database(database(pages))
    assert db.check() == []
    [(_, _, bucket)] = db.items(db.root)
    assert bucket is not None
    assert [value for _, value, _ in db.items(bucket)] == [big]
