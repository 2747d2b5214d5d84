"""A read-only reader of bbolt files (etcd's backend and its snapshots), sans-IO: it works on
any buffer (bytes, an mmap) and gives the meta page, the buckets' entries in key order and the
consistency checks of bbolt's ``Tx.Check`` (v1.3, the version etcd 3.5 builds with).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from typing import Iterator, Optional, Union

__all__ = ["BUCKET_HEADER", "Bucket", "CorruptDatabase", "Database", "Meta"]

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]

_MAGIC = 0xED0CDAED
_VERSION = 2
_DEFAULT_PAGE_SIZE = 4096
_NO_FREELIST = 0xFFFFFFFFFFFFFFFF
# The page types of a page header's flags, and the leaf element flag of a nested bucket.
_BRANCH, _LEAF, _FREELIST = 0x01, 0x02, 0x10
_BUCKET_LEAF_FLAG = 0x01
# A freelist page whose count field holds this has the real count in its first element.
_COUNT_OVERFLOW = 0xFFFF
# No real tree is this deep (4 KiB pages hold dozens of keys each); deeper means a loop.
_MAX_DEPTH = 64

_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQQ")  # magic, version, page size, flags, root bucket
# (root page, sequence), freelist page, high water mark, txid, checksum: the checksum is the
# FNV-1a 64 of the bytes before it.
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, key position, key size, value size
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # key position, key size, child page
_PGID = struct.Struct("<Q")
#: A bucket's value starts with (root page, sequence); root 0 means the bucket's own page
#: follows inline in the value.
BUCKET_HEADER = struct.Struct("<QQ")


class CorruptDatabase(ValueError):
    """The buffer is not a bbolt database, or not a whole or consistent one."""


@dataclass(frozen=True)
class Meta:
    page_size: int
    root: int
    freelist: int
    #: The high water mark: pages at and above it are unused.
    pages: int
    txid: int


@dataclass(frozen=True)
class Bucket:
    """A bucket's tree: its root page, or (root 0) an inline page inside its parent's value."""

    root: int
    inline: Optional[memoryview] = None


@dataclass(frozen=True)
class _Page:
    id: int
    flags: int
    count: int
    overflow: int
    data: memoryview

    def elements(self) -> Iterator[tuple[bytes, int, Optional[bytes], int]]:
        """(key, flags, value, child page) per element: leaves have values, branches children."""
        branch = self.flags & _BRANCH
        layout = _BRANCH_ELEMENT if branch else _LEAF_ELEMENT
        data = self.data
        if _PAGE_HEADER.size + self.count * layout.size > len(data):
            raise CorruptDatabase(f"page {self.id}: {self.count} elements do not fit in it")
        for index in range(self.count):
            at = _PAGE_HEADER.size + index * layout.size
            if branch:
                pos, ksize, child = _BRANCH_ELEMENT.unpack_from(data, at)
                flags, vsize = 0, 0
            else:
                flags, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(data, at)
                child = 0
            start = at + pos
            end = start + ksize + vsize
            if end > len(data):
                raise CorruptDatabase(f"page {self.id}: element {index} lies outside the page")
            key = bytes(data[start : start + ksize])
            value = None if branch else bytes(data[start + ksize : end])
            yield key, flags, value, child


def _fnv64a(data: Buffer) -> int:
    value = 0xCBF29CE484222325
    for byte in bytes(data):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _meta_at(buffer: memoryview, offset: int) -> Meta | CorruptDatabase:
    """The meta page at ``offset``, or the error bbolt gives for it."""
    if offset + _PAGE_HEADER.size + _META.size > len(buffer):
        return CorruptDatabase("invalid database")
    at = offset + _PAGE_HEADER.size
    magic, version, page_size, _, root, _, freelist, pages, txid, checksum = _META.unpack_from(
        buffer, at
    )
    if magic != _MAGIC:
        return CorruptDatabase("invalid database")
    if version != _VERSION:
        return CorruptDatabase("version mismatch")
    if checksum != _fnv64a(buffer[at : at + _META.size - 8]):
        return CorruptDatabase("checksum error")
    return Meta(page_size, root, freelist, pages, txid)


class Database:
    """A bbolt file in a buffer, read as bbolt opens it read-only."""

    def __init__(self, buffer: Buffer) -> None:
        self._buffer = memoryview(buffer).cast("B")
        size = len(self._buffer)
        if size == 0:
            raise CorruptDatabase("the file is empty")
        self.page_size = self._page_size()
        if size < 2 * self.page_size:
            raise CorruptDatabase(f"file size too small {size}")
        found = [_meta_at(self._buffer, offset) for offset in (0, self.page_size)]
        metas = [meta for meta in found if isinstance(meta, Meta)]
        if not metas:
            raise next(error for error in found if isinstance(error, CorruptDatabase))
        # The valid meta of the highest transaction, as bbolt's DB.meta() picks it.
        self.meta = max(metas, key=lambda meta: meta.txid)

    def _page_size(self) -> int:
        # bbolt reads it from the first meta page, else looks for the second one at each
        # possible page size; with both unreadable it assumes the OS's page size.
        size = len(self._buffer)
        candidates = [0] + [1024 << shift for shift in range(15) if (1024 << shift) < size - 1024]
        for offset in candidates:
            meta = _meta_at(self._buffer, offset)
            if isinstance(meta, Meta):
                return meta.page_size
        if size < _DEFAULT_PAGE_SIZE and len(candidates) == 1:
            raise CorruptDatabase("invalid database")
        return _DEFAULT_PAGE_SIZE

    @property
    def size(self) -> int:
        """The database's size as bbolt's ``Tx.Size`` gives it: up to the high water mark."""
        return self.meta.pages * self.page_size

    @property
    def root(self) -> Bucket:
        return Bucket(self.meta.root)

    def _page(self, pgid: int) -> _Page:
        offset = pgid * self.page_size
        buffer = self._buffer
        if offset + _PAGE_HEADER.size > len(buffer):
            raise CorruptDatabase(f"page {pgid} lies beyond the end of the file (truncated?)")
        header = _PAGE_HEADER.unpack_from(buffer, offset)
        end = offset + (header[3] + 1) * self.page_size
        if end > len(buffer):
            raise CorruptDatabase(f"page {pgid} lies beyond the end of the file (truncated?)")
        return _Page(header[0], header[1], header[2], header[3], buffer[offset:end])

    def _tree_root(self, bucket: Bucket) -> _Page:
        if bucket.root:
            return self._page(bucket.root)
        inline = bucket.inline
        if inline is None or len(inline) < _PAGE_HEADER.size:
            raise CorruptDatabase("an inline bucket is too short to hold its page")
        pgid, flags, count, overflow = _PAGE_HEADER.unpack_from(inline)
        return _Page(pgid, flags, count, overflow, inline)

    def items(self, bucket: Bucket) -> Iterator[tuple[bytes, Optional[bytes], Optional[Bucket]]]:
        """(key, value, nested bucket) in key order; a nested bucket's value is None."""
        yield from self._items(self._tree_root(bucket), bucket.root, set(), 0)

    def _items(
        self, page: _Page, pgid: int, seen: set[int], depth: int
    ) -> Iterator[tuple[bytes, Optional[bytes], Optional[Bucket]]]:
        # A page met twice means a loop, which only a file that fails check() has.
        if depth > _MAX_DEPTH or pgid in seen:
            raise CorruptDatabase(f"page {pgid}: the tree loops back on itself")
        if pgid:
            seen.add(pgid)
        for key, flags, value, child in page.elements():
            if page.flags & _BRANCH:
                yield from self._items(self._page(child), child, seen, depth + 1)
            elif not page.flags & _LEAF:
                raise CorruptDatabase(f"page {page.id}: not a branch or leaf page")
            elif flags & _BUCKET_LEAF_FLAG:
                yield key, None, _bucket_of(value or b"")
            else:
                yield key, value, None

    def check(self) -> list[str]:
        """The inconsistencies bbolt's ``Tx.Check`` reports, in its words; empty if none."""
        return _Checker(self).run()


def _bucket_of(value: bytes) -> Bucket:
    if len(value) < BUCKET_HEADER.size:
        raise CorruptDatabase("a nested bucket's value is too short for its header")
    root, _ = BUCKET_HEADER.unpack_from(value)
    return Bucket(root, None if root else memoryview(value)[BUCKET_HEADER.size :])


class _Checker:
    """bbolt's ``Tx.check``: every page below the high water mark used once or free, page
    types, and keys in order within pages and between a branch and its children."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.errors: list[str] = []
        self.freed: set[int] = set()
        self.reachable: set[int] = {0, 1}

    def run(self) -> list[str]:
        db, meta = self.db, self.db.meta
        synced = meta.freelist != _NO_FREELIST
        if synced:
            freelist = db._page(meta.freelist)
            for pgid in self._free_ids(freelist):
                if pgid in self.freed:
                    self.errors.append(f"page {pgid}: already freed")
                self.freed.add(pgid)
            self.reachable.update(range(meta.freelist, meta.freelist + freelist.overflow + 1))
        self._check_bucket(db.root, 0)
        # Without a stored freelist, bbolt takes the unreachable pages as the free ones.
        if synced:
            for pgid in range(meta.pages):
                if pgid not in self.reachable and pgid not in self.freed:
                    self.errors.append(f"page {pgid}: unreachable unfreed")
        return self.errors

    def _free_ids(self, page: _Page) -> list[int]:
        if not page.flags & _FREELIST:
            raise CorruptDatabase(f"invalid freelist page: {page.id}")
        start, count = _PAGE_HEADER.size, page.count
        if count == _COUNT_OVERFLOW:
            count = _PGID.unpack_from(page.data, start)[0]
            start += _PGID.size
        if start + count * _PGID.size > len(page.data):
            raise CorruptDatabase(f"freelist page {page.id}: {count} ids do not fit in it")
        return [_PGID.unpack_from(page.data, start + i * _PGID.size)[0] for i in range(count)]

    def _check_bucket(self, bucket: Bucket, depth: int) -> None:
        if not bucket.root:
            return  # bbolt checks no inline bucket, nor what it holds
        if depth > _MAX_DEPTH:
            raise CorruptDatabase("buckets nested too deep: the file loops back on itself")
        nested: list[Bucket] = []
        self._check_page(bucket.root, None, None, [], nested)
        for child in nested:
            self._check_bucket(child, depth + 1)

    def _check_page(
        self,
        pgid: int,
        low: bytes | None,
        high: bytes | None,
        stack: list[int],
        nested: list[Bucket],
    ) -> bytes | None:
        """Check one page and its subtree (keys ``>= low`` and ``< high``); returns its
        greatest key, as bbolt's ``recursivelyCheckPagesInternal``."""
        stack = [*stack, pgid]
        if len(stack) > _MAX_DEPTH:
            raise CorruptDatabase(f"page {pgid}: the tree is too deep (stack: {stack[:8]}...)")
        if pgid >= self.db.meta.pages:
            self.errors.append(f"page {pgid}: out of bounds: {self.db.meta.pages} (stack: {stack})")
            return None
        page = self.db._page(pgid)
        if any(pgid + i in self.reachable for i in range(page.overflow + 1)):
            # bbolt walks on and would loop forever on a cycle; one report is enough.
            self.errors.append(f"page {pgid}: multiple references (stack: {stack})")
            return None
        self.reachable.update(range(pgid, pgid + page.overflow + 1))
        if pgid in self.freed:
            self.errors.append(f"page {pgid}: reachable freed")
        if not page.flags & (_BRANCH | _LEAF):
            self.errors.append(f"page {pgid}: invalid type: {page.flags:#x} (stack: {stack})")
            return None
        kind = "branch" if page.flags & _BRANCH else "leaf"
        elements = list(page.elements())
        running = low
        greatest: bytes | None = None
        for index, (key, flags, value, child) in enumerate(elements):
            self._check_order(
                pgid=pgid, kind=kind, index=index, key=key, previous=running, high=high, stack=stack
            )
            if kind == "leaf":
                running = greatest = key
                if flags & _BUCKET_LEAF_FLAG:
                    nested.append(_bucket_of(value or b""))
                continue
            upper = elements[index + 1][0] if index + 1 < len(elements) else high
            greatest = self._check_page(child, key, upper, stack, nested)
            running = greatest
        return greatest

    def _check_order(
        self,
        *,
        pgid: int,
        kind: str,
        index: int,
        key: bytes,
        previous: bytes | None,
        high: bytes | None,
        stack: list[int],
    ) -> None:
        where = f"key[{index}]=(hex){key.hex()} on {kind} page({pgid})"
        if index == 0 and previous is not None and previous > key:
            self.errors.append(
                f"the first {where} needs to be >= the key in the ancestor "
                f"({previous.hex()}). Stack: {stack}"
            )
        if index > 0 and (previous or b"") >= key:
            found = "=" if previous == key else "<"
            self.errors.append(
                f"{where} needs to be > (found {found}) than previous element "
                f"(hex){(previous or b'').hex()}. Stack: {stack}"
            )
        if high is not None and key >= high:
            self.errors.append(
                f"{where} needs to be < than key of the next element in ancestor "
                f"(hex){high.hex()}. Pages stack: {stack}"
            )
