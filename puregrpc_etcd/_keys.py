"""Key and value coercion shared by every etcd call: the input rules of API.md in one place.

Keys and values accept ``str`` (UTF-8) or bytes-like objects and always come back as ``bytes``;
anything else is a ``TypeError`` before any I/O.
"""

from __future__ import annotations

from typing import Union

KeyLike = Union[str, bytes, bytearray, memoryview]

#: The range end that, paired with the key ``b"\0"``, means "every key" (etcd's convention).
ALL_KEYS = b"\0"


def to_bytes(value: object, what: str = "key") -> bytes:
    """Return ``value`` as bytes: ``str`` is encoded UTF-8, bytes-likes are copied to ``bytes``."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes-like, not {type(value).__name__}")


def to_key(value: object, *, allow_empty: bool = False, what: str = "key") -> bytes:
    """Return a key as bytes; an empty key is a ``ValueError`` unless it means "every key"."""
    key = to_bytes(value, what)
    if not key and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    return key


def prefix_range_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``.

    Increment the last byte below 0xff and drop what follows it; a prefix of only 0xff bytes, or
    the empty prefix, has no upper bound, which etcd spells ``b"\\0"``.
    """
    end = bytearray(prefix)
    for index in range(len(end) - 1, -1, -1):
        if end[index] < 0xFF:
            end[index] += 1
            return bytes(end[: index + 1])
    return ALL_KEYS


def key_range(
    key: object,
    *,
    prefix: bool = False,
    from_key: bool = False,
    range_end: object = None,
) -> tuple[bytes, bytes]:
    """Resolve the (key, range_end) pair of a Range, DeleteRange, Watch or Compare request.

    ``prefix`` selects keys starting with ``key``; ``from_key`` selects every key >= ``key``;
    ``range_end`` gives the end explicitly. An empty key is allowed only with ``prefix`` or
    ``from_key`` (where it means every key); at most one of the three options may be given.
    """
    chosen = int(bool(prefix)) + int(bool(from_key)) + int(range_end is not None)
    if chosen > 1:
        raise ValueError("give at most one of prefix=True, from_key=True and range_end=")
    if prefix:
        start = to_key(key, allow_empty=True)
        if not start:
            return ALL_KEYS, ALL_KEYS
        return start, prefix_range_end(start)
    if from_key:
        start = to_key(key, allow_empty=True)
        return (start or ALL_KEYS), ALL_KEYS
    start = to_key(key)
    if range_end is not None:
        return start, to_bytes(range_end, "range_end")
    return start, b""
