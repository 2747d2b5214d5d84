"""python-etcd3's helpers: ``prefix_range_end``, ``to_bytes``, ``lease_to_id``,
``response_to_event_iterator``."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

__all__ = [
    "increment_last_byte",
    "lease_to_id",
    "prefix_range_end",
    "response_to_event_iterator",
    "to_bytes",
]


def prefix_range_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes ``[prefix, range_end)`` every key under ``prefix``."""
    s = bytearray(prefix)
    for i in reversed(range(len(s))):
        if s[i] < 0xFF:
            s[i] = s[i] + 1
            break
    return bytes(s)


def increment_last_byte(byte_string: bytes) -> bytes:
    """python-etcd3 0.12.0's name for ``prefix_range_end`` (and its argument's name); unlike
    0.12.0's, it does not fail on a last byte of 0xff."""
    return prefix_range_end(byte_string)


def to_bytes(maybe_bytestring: str | bytes) -> bytes:
    """``str`` encoded as UTF-8; ``bytes`` as they are."""
    if isinstance(maybe_bytestring, bytes):
        return maybe_bytestring
    if isinstance(maybe_bytestring, str):
        return maybe_bytestring.encode("utf-8")
    raise TypeError(f"expected str or bytes, not {type(maybe_bytestring).__name__}")


def lease_to_id(lease: Any) -> int:
    """The lease id of a ``Lease`` (anything with ``.id``) or of an int-like; 0 for None."""
    if hasattr(lease, "id"):
        return int(lease.id)
    try:
        return int(lease)
    except TypeError:
        return 0


def response_to_event_iterator(response_iterator: Iterable[Any]) -> Iterator[Any]:
    """The events of an iterator of watch responses, one by one."""
    for response in response_iterator:
        yield from response.events
