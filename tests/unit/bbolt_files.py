"""Small bbolt files built byte by byte for the reader's tests, following bbolt's layout
(page header, meta, leaf/branch elements, freelist), independently of ``_bbolt``'s code."""

from __future__ import annotations

import struct
from typing import Sequence

PAGE_SIZE = 1024
NO_FREELIST = 0xFFFFFFFFFFFFFFFF
BRANCH, LEAF, META, FREELIST = 0x01, 0x02, 0x04, 0x10
BUCKET = 0x01


def fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    return value


def header(pgid: int, flags: int, count: int, overflow: int = 0) -> bytes:
    return struct.pack("<QHHI", pgid, flags, count, overflow)


def meta(
    pgid: int, root: int, pages: int, txid: int, freelist: int = NO_FREELIST, **bad: int
) -> bytes:
    fields = struct.pack(
        "<IIIIQQQQQ",
        bad.get("magic", 0xED0CDAED),
        bad.get("version", 2),
        PAGE_SIZE,
        0,
        root,
        0,
        freelist,
        pages,
        txid,
    )
    checksum = bad.get("checksum", fnv64a(fields))
    return header(pgid, META, 0) + fields + struct.pack("<Q", checksum)


def leaf(pgid: int, entries: Sequence[tuple[bytes, bytes, int]], overflow: int = 0) -> bytes:
    """A leaf page: (key, value, flags) entries; keys and values after the elements."""
    elements, data = b"", b""
    base = 16 + 16 * len(entries)
    for index, (key, value, flags) in enumerate(entries):
        position = base + len(data) - (16 + 16 * index)
        elements += struct.pack("<IIII", flags, position, len(key), len(value))
        data += key + value
    return header(pgid, LEAF, len(entries), overflow) + elements + data


def branch(pgid: int, children: Sequence[tuple[bytes, int]]) -> bytes:
    elements, data = b"", b""
    base = 16 + 16 * len(children)
    for index, (key, child) in enumerate(children):
        position = base + len(data) - (16 + 16 * index)
        elements += struct.pack("<IIQ", position, len(key), child)
        data += key
    return header(pgid, BRANCH, len(children)) + elements + data


def freelist(pgid: int, ids: Sequence[int]) -> bytes:
    return header(pgid, FREELIST, len(ids)) + b"".join(struct.pack("<Q", i) for i in ids)


def bucket_value(root: int, inline_page: bytes = b"") -> bytes:
    """A nested bucket's value: its header, then (root 0) its inline page."""
    return struct.pack("<QQ", root, 0) + inline_page


def database(pages: Sequence[bytes]) -> bytes:
    """Pages in order, each padded to its page (overflowing pages must span theirs)."""
    out = b""
    for page in pages:
        length = -(-len(page) // PAGE_SIZE) * PAGE_SIZE
        out += page.ljust(length, b"\0")
    return out


def revision(main: int, sub: int = 0, tombstone: bool = False) -> bytes:
    return struct.pack(">Q", main) + b"_" + struct.pack(">Q", sub) + (b"t" if tombstone else b"")


def sample(freelist_ids: Sequence[int] | None = None, extra: Sequence[bytes] = ()) -> bytes:
    """Root leaf (page 2) with an inline bucket ``key`` (two revisions) and a bucket ``meta``
    whose tree is a branch (page 3) over two leaves (4, 5); page 6 the freelist if given."""
    key_bucket = leaf(0, [(revision(2), b"kv2", 0), (revision(3), b"kv3", 0)])
    root = leaf(
        2, [(b"key", bucket_value(0, key_bucket), BUCKET), (b"meta", bucket_value(3), BUCKET)]
    )
    pages = [
        root,
        branch(3, [(b"a", 4), (b"m", 5)]),
        leaf(4, [(b"a", b"1", 0), (b"b", b"2", 0)]),
        leaf(5, [(b"m", b"3", 0), (b"z", b"4", 0)]),
    ]
    free = NO_FREELIST
    if freelist_ids is not None:
        free = 6
        pages.append(freelist(6, freelist_ids))
    pages.extend(extra)
    count = 2 + len(pages)
    return database([meta(0, 2, count, 4, free), meta(1, 2, count, 3, free), *pages])
