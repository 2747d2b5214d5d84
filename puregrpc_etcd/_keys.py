"""Key and value coercion shared by every etcd call: the input rules in one place
(README.md, "Keys and values").

Keys and values accept ``str`` (UTF-8) or bytes-like objects and always come back as ``bytes``;
anything else is a ``TypeError`` before any I/O.
"""

from __future__ import annotations

from typing import Union

#: What the public calls take for a key, value, name or prefix (what ``to_bytes`` accepts), so a
#: user's type checker refuses the rest before the run-time ``TypeError`` does.
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


class KeySpace:
    """The keys a client sees: ``prefix`` added to every key going out and removed from every
    key coming back (``client.namespace()``; ``b""`` for a plain client), as Go's
    ``client/v3/namespace``. A value: request builders take one, views of a client differ only
    in theirs.
    """

    __slots__ = ("prefix",)

    prefix: bytes

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"KeySpace({self.prefix!r})"

    def under(self, prefix: object) -> KeySpace:
        """The key space of ``prefix`` inside this one (a nested namespace)."""
        added = to_bytes(prefix, "namespace prefix")
        if not added:
            raise ValueError("a namespace prefix must not be empty")
        return KeySpace(self.prefix + added)

    def key(self, key: object, *, what: str = "key") -> bytes:
        """A single key, validated (non-empty) and prefixed."""
        return self.prefix + to_key(key, what=what)

    def range(
        self,
        key: object,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: object = None,
    ) -> tuple[bytes, bytes]:
        """The prefixed (key, range_end) of a range request (see ``key_range``): a range to
        the end of the keyspace ends at the end of this one instead."""
        start, end = key_range(key, prefix=prefix, from_key=from_key, range_end=range_end)
        namespace = self.prefix
        if not namespace:
            return start, end
        if start == ALL_KEYS and end == ALL_KEYS:
            return namespace, prefix_range_end(namespace)
        if end == ALL_KEYS:
            return namespace + start, prefix_range_end(namespace)
        return namespace + start, (namespace + end if end else b"")

    def unkey(self, key: bytes) -> bytes:
        """A key as the caller sees it: the prefix removed."""
        namespace = self.prefix
        if namespace and key.startswith(namespace):
            return key[len(namespace) :]
        return key


#: The key space of a client without namespace.
ROOT = KeySpace()
