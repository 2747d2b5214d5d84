"""The specialised RangeResponse decoder reads exactly what protobuf reads, and hands anything
unusual to protobuf itself."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from puregrpc_etcd import _fast_kv_codec
from puregrpc_etcd._proto import kv_pb2, rpc_pb2

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)

key_values = st.builds(
    kv_pb2.KeyValue,
    key=st.binary(max_size=40),
    value=st.binary(max_size=300),
    create_revision=INT64,
    mod_revision=INT64,
    version=INT64,
    lease=INT64,
)
range_responses = st.builds(
    rpc_pb2.RangeResponse,
    header=st.one_of(
        st.none(),
        st.builds(
            rpc_pb2.ResponseHeader,
            cluster_id=UINT64,
            member_id=UINT64,
            revision=INT64,
            raft_term=UINT64,
        ),
    ),
    kvs=st.lists(key_values, max_size=6),
    more=st.booleans(),
    count=INT64,
)

KV_FIELDS = ("key", "value", "create_revision", "mod_revision", "version", "lease")
HEADER_FIELDS = ("cluster_id", "member_id", "revision", "raft_term")


def fields(reply: Any) -> tuple[Any, ...]:
    """Everything the client reads of a RangeResponse, from either decoder's result."""
    header = tuple(getattr(reply.header, name) for name in HEADER_FIELDS)
    kvs = tuple(tuple(getattr(kv, name) for name in KV_FIELDS) for kv in reply.kvs)
    return header, kvs, reply.more, reply.count


@settings(max_examples=200, deadline=None)
@given(reply=range_responses)
def test_decodes_what_protobuf_encodes(reply: rpc_pb2.RangeResponse) -> None:
    data = reply.SerializeToString()
    fast = _fast_kv_codec.decode_range_response(data)
    assert isinstance(fast, _fast_kv_codec.RangeResponse)
    assert fields(fast) == fields(rpc_pb2.RangeResponse.FromString(data))


@settings(max_examples=200, deadline=None)
@given(first=range_responses, second=range_responses)
def test_concatenated_messages_merge_as_protobuf_merges(
    first: rpc_pb2.RangeResponse, second: rpc_pb2.RangeResponse
) -> None:
    # Concatenation is protobuf's merge: repeated fields append, scalars take the last value,
    # a sub-message seen twice merges (that case goes to protobuf).
    data = first.SerializeToString() + second.SerializeToString()
    assert fields(_fast_kv_codec.RangeResponse.FromString(data)) == fields(
        rpc_pb2.RangeResponse.FromString(data)
    )


@settings(max_examples=200, deadline=None)
@given(reply=range_responses, data=st.data())
def test_damaged_input_decodes_as_protobuf_or_fails_as_protobuf(
    reply: rpc_pb2.RangeResponse, data: st.DataObject
) -> None:
    raw = bytearray(reply.SerializeToString())
    if raw:
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            raw[data.draw(st.integers(min_value=0, max_value=len(raw) - 1))] = data.draw(
                st.integers(min_value=0, max_value=255)
            )
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    damaged = bytes(raw[:cut])
    try:
        expected = fields(rpc_pb2.RangeResponse.FromString(damaged))
    except DecodeError:
        with pytest.raises(DecodeError):
            _fast_kv_codec.RangeResponse.FromString(damaged)
    else:
        assert fields(_fast_kv_codec.RangeResponse.FromString(damaged)) == expected


def test_unknown_fields_and_explicit_defaults() -> None:
    known = rpc_pb2.RangeResponse(count=3).SerializeToString()
    unknown_field = b"\xa8\x06\x01"  # field 101, varint 1
    data = known + unknown_field
    # Left to protobuf, which keeps the unknown field: the result is protobuf's own message.
    assert isinstance(_fast_kv_codec.RangeResponse.FromString(data), rpc_pb2.RangeResponse)
    explicit_zeros = b"\x18\x00\x20\x00\x12\x04\x0a\x00\x2a\x00"  # more=0, count=0, one empty kv
    fast = _fast_kv_codec.decode_range_response(explicit_zeros)
    assert fields(fast) == fields(rpc_pb2.RangeResponse.FromString(explicit_zeros))


def test_a_ten_byte_negative_revision() -> None:
    kv = kv_pb2.KeyValue(key=b"k", mod_revision=-1, lease=-(2**63))
    data = rpc_pb2.RangeResponse(kvs=[kv]).SerializeToString()
    (fast_kv,) = _fast_kv_codec.decode_range_response(data).kvs
    assert (fast_kv.mod_revision, fast_kv.lease) == (-1, -(2**63))


put_responses = st.builds(
    rpc_pb2.PutResponse,
    header=st.one_of(
        st.none(),
        st.builds(rpc_pb2.ResponseHeader, cluster_id=UINT64, revision=INT64, raft_term=UINT64),
    ),
    prev_kv=st.one_of(st.none(), key_values),
)


def put_fields(reply: Any) -> tuple[Any, ...]:
    header = tuple(getattr(reply.header, name) for name in HEADER_FIELDS)
    prev = reply.prev_kv if reply.HasField("prev_kv") else None
    return header, None if prev is None else tuple(getattr(prev, name) for name in KV_FIELDS)


@settings(max_examples=200, deadline=None)
@given(reply=put_responses, again=st.one_of(st.none(), put_responses))
def test_put_replies_decode_as_protobuf_decodes_them(
    reply: rpc_pb2.PutResponse, again: rpc_pb2.PutResponse | None
) -> None:
    data = reply.SerializeToString() + (again.SerializeToString() if again else b"")
    assert put_fields(_fast_kv_codec.PutResponse.FromString(data)) == put_fields(
        rpc_pb2.PutResponse.FromString(data)
    )
    if again is None:
        assert isinstance(_fast_kv_codec.decode_put_response(data), _fast_kv_codec.PutResponse)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=300), value=st.binary(max_size=70_000))
def test_put_requests_encode_as_protobuf_encodes_them(key: bytes, value: bytes) -> None:
    expected = rpc_pb2.PutRequest(key=key, value=value).SerializeToString()
    assert _fast_kv_codec.PutRequest(key, value).SerializeToString() == expected


def _varint(value: int) -> bytes:
    return _VarintBytes(value & (2**64 - 1))


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


# The fields of a KeyValue as anyone might write them: any order, repeated, or left out.
key_value_fields = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([1, 5]), st.binary(max_size=20)),
        st.tuples(st.sampled_from([2, 3, 4, 6]), st.one_of(INT64, st.integers(0, 2**28))),
    ),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(kvs=st.lists(key_value_fields, max_size=4))
def test_key_values_in_any_field_order_decode_as_protobuf_decodes_them(
    kvs: list[list[tuple[int, bytes | int]]],
) -> None:
    # etcd writes fields in number order, which the decoder reads without a loop; any other
    # order, or a field twice (the last one counts), takes the general path.
    data = b"".join(
        _field(2, b"".join(_field(number, value) for number, value in kv)) for kv in kvs
    )
    fast = _fast_kv_codec.decode_range_response(data)
    assert fields(fast) == fields(rpc_pb2.RangeResponse.FromString(data))


def test_kvs_reads_as_a_list() -> None:
    stored = [kv_pb2.KeyValue(key=b"k%d" % i, value=b"v" * i, mod_revision=i + 1) for i in range(5)]
    data = rpc_pb2.RangeResponse(kvs=stored, count=5).SerializeToString()
    kvs = _fast_kv_codec.decode_range_response(data).kvs

    def plain(items: Any) -> list[tuple[Any, ...]]:
        return [tuple(getattr(kv, name) for name in KV_FIELDS) for kv in items]

    assert len(kvs) == 5
    assert plain(kvs) == plain(stored)
    assert plain([kvs[0], kvs[4], kvs[-1], kvs[-5]]) == plain(
        [stored[0], stored[4], stored[-1], stored[-5]]
    )
    assert plain(kvs[1:3]) == plain(stored[1:3])
    assert plain(kvs[::-2]) == plain(stored[::-2])
    assert kvs[7:] == []
    for index in (5, -6):
        with pytest.raises(IndexError):
            kvs[index]
    empty = _fast_kv_codec.decode_range_response(rpc_pb2.RangeResponse(count=0).SerializeToString())
    assert len(empty.kvs) == 0
    assert list(empty.kvs) == []


def test_a_reply_in_a_buffer_the_transport_reuses_is_kept() -> None:
    # The KeyValues are made when read, from the reply's bytes: a buffer the transport reuses
    # (a bytearray, or a view of one) must be copied first.
    stored = [kv_pb2.KeyValue(key=b"key", value=b"value", version=1)]
    wire = rpc_pb2.RangeResponse(kvs=stored).SerializeToString()
    for buffer in (bytearray(wire), memoryview(bytearray(wire))):
        reply = _fast_kv_codec.RangeResponse.FromString(buffer)  # type: ignore[arg-type]
        buffer[:] = b"\xee" * len(wire)
        (kv,) = reply.kvs
        assert (kv.key, kv.value, kv.version) == (b"key", b"value", 1)
