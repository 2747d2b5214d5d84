"""The keys etcd's benchmark writes: ``binary.PutVarint`` into a reused zeroed buffer.

Go writes each key's zig-zag varint over the start of one ``--key-size`` buffer, so the bytes
past a short varint are those of the last longer one. With sequential keys that last longer one
is the previous cycle's final key, so a key follows from its index alone and worker processes
need not share the buffer.
"""

from __future__ import annotations

import os
import random

__all__ = ["KeyBuffer", "random_bytes", "sequential_key", "varint", "varint_size"]


def varint(value: int) -> bytes:
    """``binary.PutVarint``: zig-zag, then 7 bits a byte, least significant first."""
    zigzag = (value << 1) ^ (value >> 63)
    zigzag &= (1 << 64) - 1
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def varint_size(largest: int) -> int:
    """How many bytes the varints of ``0..largest`` need at most."""
    return len(varint(largest))


def sequential_key(index: int, key_space_size: int, key_size: int) -> bytes:
    """The key of request ``index`` with ``--sequential-keys`` (``index % key_space_size``)."""
    head = varint(index % key_space_size)
    tail = varint(key_space_size - 1)[len(head) :] if index >= key_space_size else b""
    key = head + tail
    return key + bytes(key_size - len(key))


class KeyBuffer:
    """Go's reused buffer, for keys drawn at random (``rand.Intn(key_space_size)``)."""

    def __init__(self, key_size: int, seed: int | None = None) -> None:
        self._buffer = bytearray(key_size)
        self._random = random.Random(seed)

    def random_key(self, key_space_size: int) -> bytes:
        return self.put(self._random.randrange(key_space_size))

    def put(self, value: int) -> bytes:
        head = varint(value)
        self._buffer[: len(head)] = head
        return bytes(self._buffer)


def random_bytes(size: int) -> bytes:
    """``mustRandBytes``: the value every request of a run writes."""
    return os.urandom(size)
