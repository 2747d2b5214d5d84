"""What ``etcdutl snapshot status`` (3.5) says of a snapshot file: its hash, revision, total keys
and total size, computed the same way from the bbolt file after bbolt's consistency checks.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Iterable

from puregrpc_etcd._bbolt import CorruptDatabase, Database

__all__ = [
    "CorruptDatabase",
    "SnapshotStatus",
    "check_snapshot_file",
    "crc32c",
    "read_snapshot_status",
    "snapshot_status",
]

# The bucket of etcd's MVCC store: keys are revisions (8-byte big-endian main revision, "_",
# sub revision, and a trailing "t" for tombstones), in revision order.
_KEY_BUCKET = b"key"
# How many of bbolt's check errors one line of error shows.
_ERRORS_SHOWN = 3


def _crc32c_tables() -> list[list[int]]:
    """Slicing-by-8 tables: ``tables[k][b]`` is the CRC of byte ``b`` followed by ``k`` zeros,
    so that eight bytes cost one loop turn (twice the speed of a byte at a time)."""
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(7):
        previous = tables[-1]
        tables.append([(crc >> 8) ^ first[crc & 0xFF] for crc in previous])
    return tables


_CRC32C_TABLES = _crc32c_tables()
_WORD = struct.Struct("<Q")


def crc32c(chunks: Iterable[bytes], crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of the chunks in turn, as Go's ``hash/crc32`` computes it."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _CRC32C_TABLES
    crc ^= 0xFFFFFFFF
    for chunk in chunks:
        whole = len(chunk) - len(chunk) % 8
        for (word,) in _WORD.iter_unpack(memoryview(chunk)[:whole]):
            x = crc ^ word
            crc = (
                t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF] ^ t4[(x >> 24) & 0xFF]
                ^ t3[(x >> 32) & 0xFF] ^ t2[(x >> 40) & 0xFF] ^ t1[(x >> 48) & 0xFF] ^ t0[x >> 56]
            )  # fmt: skip
        for byte in chunk[whole:]:
            crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_key: int
    total_size: int


def snapshot_status(buffer: bytes | memoryview | mmap.mmap) -> SnapshotStatus:
    """etcdutl's ``Status()``: raises ``CorruptDatabase`` for a file that is not a whole,
    consistent bbolt database."""
    db = _checked(buffer)
    hashed: list[bytes] = []
    revision = total_key = 0
    crc = 0
    for name, _, bucket in db.items(db.root):
        if bucket is None:
            raise CorruptDatabase(f"cannot get hash of bucket {name.decode(errors='replace')}")
        hashed.append(name)
        is_key_bucket = name == _KEY_BUCKET
        for key, value, _ in db.items(bucket):
            hashed.append(key)
            if value is not None:  # a nested bucket's "value" is nil: nothing hashed
                hashed.append(value)
            if is_key_bucket:
                if len(key) < 8:
                    raise CorruptDatabase(
                        f"the key bucket holds a key that is no revision: {key!r}"
                    )
                revision = int.from_bytes(key[:8], "big", signed=True)
            total_key += 1
            if len(hashed) > 1024:  # hashed in joined runs: one long chunk hashes fastest
                crc = crc32c([b"".join(hashed)], crc)
                hashed.clear()
    crc = crc32c([b"".join(hashed)], crc)
    return SnapshotStatus(crc, revision, total_key, db.size)


def _checked(buffer: bytes | memoryview | mmap.mmap) -> Database:
    db = Database(buffer)
    errors = db.check()
    if errors:
        shown = "; ".join(errors[:_ERRORS_SHOWN]) + ("; ..." if len(errors) > _ERRORS_SHOWN else "")
        raise CorruptDatabase(
            f"snapshot file integrity check failed. {len(errors)} errors found: {shown}"
        )
    return db


def read_snapshot_status(path: str | os.PathLike[str]) -> SnapshotStatus:
    """The status of the snapshot file at ``path``; ``OSError`` if it cannot be read."""
    return snapshot_status(_mapped(path))


def check_snapshot_file(path: str | os.PathLike[str]) -> None:
    """Raise ``CorruptDatabase`` unless the file passes bbolt's checks (no hashing: fast)."""
    _checked(_mapped(path))


def _mapped(path: str | os.PathLike[str]) -> mmap.mmap:
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise CorruptDatabase("the file is empty, not a snapshot")
        # Mapped, not read: a snapshot may be gigabytes. The map is left to the garbage
        # collector, as views of it may outlive this call in an exception's traceback.
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
