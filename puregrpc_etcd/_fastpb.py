"""RangeResponse and PutResponse decoders and a PutRequest encoder for pure-Python protobuf
(PyPy), where protobuf's own parse of a 10,000-key reply costs tens of milliseconds and a
put's messages a tenth of its client time. Reads only the fields etcd sends; anything else
(an unknown field, an odd wire type, a repeated sub-message) is left to protobuf itself."""

from __future__ import annotations

from typing import Any, List, Tuple, Union

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

_SIGN = 1 << 63
_WRAP = 1 << 64


class _Unusual(Exception):
    """Input this decoder does not handle; protobuf decides."""


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
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
    return value - _WRAP if value >= _SIGN else value


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


def _key_value(data: bytes, pos: int, end: int) -> KeyValue:
    kv = KeyValue()
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag in (0x0A, 0x2A):  # key, value
            length = data[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(data, pos)
            stop = pos + length
            if stop > end:
                raise _Unusual
            if tag == 0x0A:
                kv.key = data[pos:stop]
            else:
                kv.value = data[pos:stop]
            pos = stop
        elif tag == 0x10:
            value, pos = _varint(data, pos)
            kv.create_revision = _int64(value)
        elif tag == 0x18:
            value, pos = _varint(data, pos)
            kv.mod_revision = _int64(value)
        elif tag == 0x20:
            value, pos = _varint(data, pos)
            kv.version = _int64(value)
        elif tag == 0x30:
            value, pos = _varint(data, pos)
            kv.lease = _int64(value)
        else:
            raise _Unusual
    if pos != end:
        raise _Unusual
    return kv


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
        self.kvs: List[KeyValue] = []
        self.more = False
        self.count = 0

    @classmethod
    def FromString(cls, data: bytes) -> Union[RangeResponse, Any]:
        """The decoded reply, or protobuf's own message when the input is unusual."""
        try:
            return decode_range_response(data)
        except (_Unusual, IndexError):
            return rpc_pb2.RangeResponse.FromString(data)


def decode_range_response(data: bytes) -> RangeResponse:
    """Raises ``_Unusual`` or IndexError for input it leaves to protobuf."""
    reply = RangeResponse()
    kvs = reply.kvs
    seen_header = False
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag == 0x12:
            start, stop = _length_delimited(data, pos)
            kvs.append(_key_value(data, start, stop))
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
