"""Immutable results of the KV calls: KeyValue, ResponseHeader and the per-call responses.

A ``KeyValue`` reads its fields from the protobuf message it wraps, and ``GetResponse.kvs`` wraps
the repeated field lazily, so a Range of 10,000 keys costs little more than protobuf's own parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union, overload

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

    from puregrpc_etcd._proto import kv_pb2, rpc_pb2

__all__ = [
    "CompactResponse",
    "DeleteResponse",
    "GetResponse",
    "KeyValue",
    "KeyValues",
    "PutResponse",
    "ResponseHeader",
    "TxnResponse",
    "key_value",
    "key_values",
    "response_header",
]


_new = object.__new__
_set = object.__setattr__


class KeyValue:
    """One key as stored: ``key, value, create_revision, mod_revision, version, lease``.

    ``create_revision`` is the revision that created the key (since its last deletion),
    ``mod_revision`` the revision of its last change, ``version`` the number of changes since it
    was created, and ``lease`` the id of the attached lease (0 for none).
    """

    __slots__ = ("_pb",)
    _pb: kv_pb2.KeyValue

    def __init__(  # noqa: PLR0917 - the fields in etcd's order, as a record's constructor
        self,
        key: bytes,
        value: bytes,
        create_revision: int = 0,
        mod_revision: int = 0,
        version: int = 0,
        lease: int = 0,
    ) -> None:
        from puregrpc_etcd._proto import kv_pb2

        _set(
            self,
            "_pb",
            kv_pb2.KeyValue(
                key=key,
                value=value,
                create_revision=create_revision,
                mod_revision=mod_revision,
                version=version,
                lease=lease,
            ),
        )

    @property
    def key(self) -> bytes:
        return self._pb.key

    @property
    def value(self) -> bytes:
        return self._pb.value

    @property
    def create_revision(self) -> int:
        return self._pb.create_revision

    @property
    def mod_revision(self) -> int:
        return self._pb.mod_revision

    @property
    def version(self) -> int:
        return self._pb.version

    @property
    def lease(self) -> int:
        return self._pb.lease

    def _fields(self) -> tuple[bytes, bytes, int, int, int, int]:
        return (
            self.key,
            self.value,
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyValue):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyValue, self._fields())

    def __repr__(self) -> str:
        return (
            f"KeyValue(key={self.key!r}, value={_short(self.value)}, "
            f"create_revision={self.create_revision}, mod_revision={self.mod_revision}, "
            f"version={self.version}, lease={self.lease})"
        )


class _NamespacedKeyValue(KeyValue):
    """A KeyValue read through a namespaced client: the namespace is cut from the key."""

    __slots__ = ("_strip",)
    _strip: int

    @property
    def key(self) -> bytes:
        return self._pb.key[self._strip :]


def key_value(pb: kv_pb2.KeyValue, namespace: bytes = b"") -> KeyValue:
    """Wrap a protobuf ``mvccpb.KeyValue`` (which must not be changed afterwards)."""
    if not namespace:
        kv = _new(KeyValue)
        _set(kv, "_pb", pb)
        return kv
    namespaced = _new(_NamespacedKeyValue)
    _set(namespaced, "_pb", pb)
    _set(namespaced, "_strip", len(namespace) if pb.key.startswith(namespace) else 0)
    return namespaced


class KeyValues(Sequence[KeyValue]):
    """A read-only list of ``KeyValue`` over a response's repeated field, wrapped on access.

    It compares equal to any sequence with equal items, lists included.
    """

    __slots__ = ("_items", "_namespace")

    def __init__(
        self,
        items: RepeatedCompositeFieldContainer[kv_pb2.KeyValue] | Sequence[kv_pb2.KeyValue],
        namespace: bytes = b"",
    ) -> None:
        self._items = items
        self._namespace = namespace

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> KeyValue: ...

    @overload
    def __getitem__(self, index: slice) -> list[KeyValue]: ...

    def __getitem__(self, index: int | slice) -> KeyValue | list[KeyValue]:
        if isinstance(index, slice):
            return [key_value(pb, self._namespace) for pb in self._items[index]]
        return key_value(self._items[index], self._namespace)

    def __iter__(self) -> Iterator[KeyValue]:
        namespace = self._namespace
        if not namespace:
            for pb in self._items:
                kv = _new(KeyValue)
                _set(kv, "_pb", pb)
                yield kv
        else:
            for pb in self._items:
                yield key_value(pb, namespace)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # a list-like is not hashable

    def __repr__(self) -> str:
        return repr(list(self))


@dataclass(frozen=True)
class ResponseHeader:
    """Where and when a reply was made: the cluster, the member, the store revision, the term."""

    __slots__ = ("cluster_id", "member_id", "raft_term", "revision")
    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


def response_header(pb: rpc_pb2.ResponseHeader) -> ResponseHeader:
    """Convert a protobuf ``etcdserverpb.ResponseHeader``."""
    return ResponseHeader(pb.cluster_id, pb.member_id, pb.revision, pb.raft_term)


def key_values(items: Sequence[kv_pb2.KeyValue], namespace: bytes = b"") -> KeyValues:
    """A lazy ``KeyValues`` view of a repeated ``mvccpb.KeyValue`` field."""
    return KeyValues(items, namespace)


@dataclass(frozen=True)
class GetResponse:
    """A Range reply: ``kvs`` (empty with ``count_only``), ``more`` (``limit`` cut the result)
    and ``count`` (the number of keys in the range, regardless of ``limit``)."""

    __slots__ = ("count", "header", "kvs", "more")
    header: ResponseHeader
    kvs: KeyValues
    more: bool
    count: int


@dataclass(frozen=True)
class PutResponse:
    """A Put reply; ``prev_kv`` is the previous key-value when asked for and it existed."""

    __slots__ = ("header", "prev_kv")
    header: ResponseHeader
    prev_kv: KeyValue | None


@dataclass(frozen=True)
class DeleteResponse:
    """A DeleteRange reply: how many keys were deleted, and their last values if asked for."""

    __slots__ = ("deleted", "header", "prev_kvs")
    header: ResponseHeader
    deleted: int
    prev_kvs: KeyValues


@dataclass(frozen=True)
class CompactResponse:
    """A Compaction reply."""

    __slots__ = ("header",)
    header: ResponseHeader


@dataclass(frozen=True)
class TxnResponse:
    """A Txn reply: which branch ran, and the reply of each of its operations in order."""

    __slots__ = ("header", "responses", "succeeded")
    header: ResponseHeader
    succeeded: bool
    responses: list[OpResponse]


OpResponse = Union[GetResponse, PutResponse, DeleteResponse, TxnResponse]


def _short(value: bytes, limit: int = 60) -> str:
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} bytes)"
