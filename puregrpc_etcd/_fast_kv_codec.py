"""RangeResponse and PutResponse decoders and a PutRequest encoder for pure-Python protobuf
(PyPy), where protobuf's own parse of a 10,000-key reply costs tens of milliseconds and a
put's messages a tenth of its client time. Reads only the fields etcd sends; anything else
(an unknown field, an odd wire type, a repeated sub-message) is left to protobuf itself.

Written for PyPy's JIT: no loop inside the per-KeyValue loop (see _varint), numbers kept in
flat lists of machine integers, and a range's KeyValues made when read (KeyValueList). The
decode of a 10,000-key reply fell from 3.1 to about 0.3 ms this way, and with it most of the
garbage collector's work for that call."""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union, overload

from google.protobuf.internal import api_implementation

from puregrpc_etcd._proto import rpc_pb2

__all__ = [
    "PURE_PYTHON_PROTOBUF",
    "PutRequest",
    "PutResponse",
    "RangeResponse",
    "decode_put_response",
    "decode_range_response",
]

#: Whether protobuf parses in Python (PyPy); with upb (CPython) its own parse is faster.
PURE_PYTHON_PROTOBUF = api_implementation.Type() == "python"

_INT64_MAX = (1 << 63) - 1
_WRAP = 1 << 64


class _Unusual(Exception):
    """Input this decoder does not handle; protobuf decides."""


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    # Up to four bytes (numbers below 2**28: revisions, versions) without a loop: PyPy's JIT
    # compiles a hot inner loop on its own and calls it with a frame, allocated every time.
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    byte = data[pos + 1]
    if byte < 0x80:
        return result | byte << 7, pos + 2
    result |= (byte & 0x7F) << 7
    byte = data[pos + 2]
    if byte < 0x80:
        return result | byte << 14, pos + 3
    result |= (byte & 0x7F) << 14
    byte = data[pos + 3]
    if byte < 0x80:
        return result | byte << 21, pos + 4
    return _long_varint(data, pos)


def _long_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift > 63 or result >= _WRAP:
                raise _Unusual
            return result, pos
        shift += 7
        if shift > 63:
            raise _Unusual


def _int64(value: int) -> int:
    # Compared with 2**63 - 1, which is a machine integer on PyPy (2**63 is a long, and comparing
    # with it would allocate one for every value).
    return value - _WRAP if value > _INT64_MAX else value


def _length_delimited(data: bytes, pos: int) -> Tuple[int, int]:
    length, pos = _varint(data, pos)
    end = pos + length
    if end > len(data):
        raise _Unusual
    return pos, end


class KeyValue:
    """The fields of an ``mvccpb.KeyValue``, read-only by convention."""

    __slots__ = ("create_revision", "key", "lease", "mod_revision", "value", "version")

    def __init__(self) -> None:
        self.key = b""
        self.create_revision = 0
        self.mod_revision = 0
        self.version = 0
        self.value = b""
        self.lease = 0


class ResponseHeader:
    """The fields of an ``etcdserverpb.ResponseHeader``."""

    __slots__ = ("cluster_id", "member_id", "raft_term", "revision")

    def __init__(self) -> None:
        self.cluster_id = 0
        self.member_id = 0
        self.revision = 0
        self.raft_term = 0


def _scan_key_value(data: bytes, pos: int, end: int, out: List[int], base: int) -> None:
    """Store a KeyValue's eight numbers in ``out`` from ``base`` on: where its key and value
    lie in ``data`` (start and stop of each), then create_revision, mod_revision, version and
    lease.

    etcd writes the fields in the order of their numbers and leaves out zeros, so that order is
    read straight, without a loop (see _varint); anything else goes to _scan_fields."""
    start = pos
    key_start = key_stop = value_start = value_stop = 0
    create_revision = mod_revision = version = lease = 0
    if pos < end and data[pos] == 0x0A:
        key_start, key_stop = _length_delimited(data, pos + 1)
        pos = key_stop
    if pos < end and data[pos] == 0x10:
        create_revision, pos = _varint(data, pos + 1)
    if pos < end and data[pos] == 0x18:
        mod_revision, pos = _varint(data, pos + 1)
    if pos < end and data[pos] == 0x20:
        version, pos = _varint(data, pos + 1)
    if pos < end and data[pos] == 0x2A:
        value_start, value_stop = _length_delimited(data, pos + 1)
        pos = value_stop
    if pos < end and data[pos] == 0x30:
        lease, pos = _varint(data, pos + 1)
    if pos != end:
        out[base : base + 8] = _scan_fields(data, start, end)
        return
    # One store each: a tuple or slice stored at once would be allocated, every number boxed.
    out[base] = key_start
    out[base + 1] = key_stop
    out[base + 2] = value_start
    out[base + 3] = value_stop
    out[base + 4] = _int64(create_revision)
    out[base + 5] = _int64(mod_revision)
    out[base + 6] = _int64(version)
    out[base + 7] = _int64(lease)


def _scan_fields(data: bytes, pos: int, end: int) -> List[int]:
    """_scan_key_value's eight numbers for fields in any order, repeated (the last one counts)
    or unknown (_Unusual)."""
    key_start = key_stop = value_start = value_stop = 0
    create_revision = mod_revision = version = lease = 0
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag == 0x0A:
            key_start, key_stop = _length_delimited(data, pos)
            pos = key_stop
        elif tag == 0x2A:
            value_start, value_stop = _length_delimited(data, pos)
            pos = value_stop
        elif tag == 0x10:
            create_revision, pos = _varint(data, pos)
        elif tag == 0x18:
            mod_revision, pos = _varint(data, pos)
        elif tag == 0x20:
            version, pos = _varint(data, pos)
        elif tag == 0x30:
            lease, pos = _varint(data, pos)
        else:
            raise _Unusual
    if pos != end:
        raise _Unusual
    return [key_start, key_stop, value_start, value_stop] + [
        _int64(number) for number in (create_revision, mod_revision, version, lease)
    ]


def _make_key_value(data: bytes, numbers: List[int], base: int) -> KeyValue:
    kv = KeyValue()
    kv.key = data[numbers[base] : numbers[base + 1]]
    kv.value = data[numbers[base + 2] : numbers[base + 3]]
    kv.create_revision = numbers[base + 4]
    kv.mod_revision = numbers[base + 5]
    kv.version = numbers[base + 6]
    kv.lease = numbers[base + 7]
    return kv


def _key_value(data: bytes, pos: int, end: int) -> KeyValue:
    numbers = [0] * 8
    _scan_key_value(data, pos, end, numbers, 0)
    return _make_key_value(data, numbers, 0)


class KeyValueList(Sequence[KeyValue]):
    """A RangeResponse's ``kvs``: checked when the reply is decoded, but each ``KeyValue`` (and
    its key and value) made only when asked for. On PyPy, 10,000 KeyValues made at once outlive
    many minor collections and cost the garbage collector more than decoding them did; made on
    access, they usually die young. The list keeps the reply's bytes alive, as protobuf's
    messages keep their whole arena."""

    __slots__ = ("_data", "_numbers")

    def __init__(self, data: bytes = b"", numbers: Optional[List[int]] = None) -> None:
        self._data = data
        self._numbers: List[int] = [] if numbers is None else numbers

    def __len__(self) -> int:
        return len(self._numbers) >> 3

    @overload
    def __getitem__(self, index: int) -> KeyValue: ...

    @overload
    def __getitem__(self, index: slice) -> List[KeyValue]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[KeyValue, List[KeyValue]]:
        count = len(self._numbers) >> 3
        if isinstance(index, slice):
            data, numbers = self._data, self._numbers
            return [_make_key_value(data, numbers, i << 3) for i in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("KeyValueList index out of range")
        return _make_key_value(self._data, self._numbers, index << 3)

    def __iter__(self) -> Iterator[KeyValue]:
        data, numbers = self._data, self._numbers
        for base in range(0, len(numbers), 8):
            yield _make_key_value(data, numbers, base)


_NO_KEY_VALUES = KeyValueList()  # read-only, so every reply without KeyValues can share it


def _header(data: bytes, pos: int, end: int) -> ResponseHeader:
    header = ResponseHeader()
    while pos < end:
        tag = data[pos]
        value, pos = _varint(data, pos + 1)
        if tag == 0x08:
            header.cluster_id = value
        elif tag == 0x10:
            header.member_id = value
        elif tag == 0x18:
            header.revision = _int64(value)
        elif tag == 0x20:
            header.raft_term = value
        else:
            raise _Unusual
    if pos != end:
        raise _Unusual
    return header


class RangeResponse:
    """The fields of an ``etcdserverpb.RangeResponse``; ``FromString`` as protobuf's."""

    __slots__ = ("count", "header", "kvs", "more")

    def __init__(self) -> None:
        self.header = ResponseHeader()
        self.kvs = _NO_KEY_VALUES
        self.more = False
        self.count = 0

    @classmethod
    def FromString(cls, data: bytes) -> Union[RangeResponse, Any]:
        """The decoded reply, or protobuf's own message when the input is unusual."""
        try:
            return decode_range_response(data)
        except (_Unusual, IndexError):
            return rpc_pb2.RangeResponse.FromString(data)


def _count_key_values(data: bytes) -> int:
    """How many KeyValues a RangeResponse holds (raises _Unusual for fields it does not know)."""
    count = 0
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        if tag == 0x12 or tag == 0x0A:  # noqa: PLR1714 - cheaper than a set on PyPy's JIT
            pos = _length_delimited(data, pos + 1)[1]
            if tag == 0x12:
                count += 1
        elif tag == 0x18 or tag == 0x20:  # noqa: PLR1714
            pos = _varint(data, pos + 1)[1]
        else:
            raise _Unusual
    return count


def decode_range_response(data: bytes) -> RangeResponse:
    """Raises ``_Unusual`` or IndexError for input it leaves to protobuf."""
    if type(data) is not bytes:
        data = bytes(data)  # the transport may reuse its buffer; the KeyValueList keeps this
    reply = RangeResponse()
    # Sized first: a list grown one KeyValue at a time allocates about nine times its final
    # size on the way (PyPy grows lists by an eighth), all of it for the garbage collector.
    numbers = [0] * (8 * _count_key_values(data))
    base = 0
    seen_header = False
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag == 0x12:
            start, stop = _length_delimited(data, pos)
            _scan_key_value(data, start, stop, numbers, base)
            base += 8
            pos = stop
        elif tag == 0x0A:
            if seen_header:
                raise _Unusual  # protobuf merges repeated sub-messages
            seen_header = True
            start, stop = _length_delimited(data, pos)
            reply.header = _header(data, start, stop)
            pos = stop
        elif tag == 0x18:
            value, pos = _varint(data, pos)
            reply.more = bool(value)
        elif tag == 0x20:
            value, pos = _varint(data, pos)
            reply.count = _int64(value)
        else:
            raise _Unusual
    if numbers:
        reply.kvs = KeyValueList(data, numbers)
    return reply


class PutResponse:
    """The fields of an ``etcdserverpb.PutResponse``; ``FromString`` as protobuf's."""

    __slots__ = ("header", "prev_kv")

    def __init__(self) -> None:
        self.header = ResponseHeader()
        self.prev_kv: KeyValue | None = None

    def HasField(self, name: str) -> bool:
        """Whether the reply carries ``prev_kv`` (the one field the client asks this of)."""
        if name != "prev_kv":
            raise ValueError(f"HasField({name!r}) is not supported here")
        return self.prev_kv is not None

    @classmethod
    def FromString(cls, data: bytes) -> Union[PutResponse, Any]:
        """The decoded reply, or protobuf's own message when the input is unusual."""
        try:
            return decode_put_response(data)
        except (_Unusual, IndexError):
            return rpc_pb2.PutResponse.FromString(data)


def decode_put_response(data: bytes) -> PutResponse:
    """Raises ``_Unusual`` or IndexError for input it leaves to protobuf."""
    reply = PutResponse()
    seen: set[int] = set()
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        if tag not in (0x0A, 0x12) or tag in seen:
            raise _Unusual  # unknown, or a sub-message twice (protobuf merges those)
        seen.add(tag)
        start, stop = _length_delimited(data, pos + 1)
        if tag == 0x0A:
            reply.header = _header(data, start, stop)
        else:
            reply.prev_kv = _key_value(data, start, stop)
        pos = stop
    return reply


def _length_prefix(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    out = bytearray()
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


class PutRequest:
    """An ``etcdserverpb.PutRequest`` of a key and a value only, encoded as protobuf encodes it
    (an empty value is left out); ``SerializeToString`` is all the transport asks of it."""

    __slots__ = ("_data",)

    def __init__(self, key: bytes, value: bytes) -> None:
        data = b"\x0a" + _length_prefix(len(key)) + key if key else b""
        if value:
            data += b"\x12" + _length_prefix(len(value)) + value
        self._data = data

    def SerializeToString(self) -> bytes:
        return self._data
