"""The gRPC message framing: prefix encoding and the incremental decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puregrpc_etcd.grpc.framing import FramingError, MessageDecoder, encode_message
from puregrpc_etcd.grpc.status import StatusCode

LIMIT = 4096


def test_prefix_is_flag_then_big_endian_length() -> None:
    assert encode_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encode_message(b"") == b"\x00\x00\x00\x00\x00"


def test_one_whole_message_per_chunk() -> None:
    decoder = MessageDecoder(LIMIT)
    assert decoder.feed(encode_message(b"hello")) == [b"hello"]
    assert decoder.buffered == 0


def test_empty_messages_and_many_in_one_chunk() -> None:
    decoder = MessageDecoder(LIMIT)
    data = encode_message(b"") + encode_message(b"x") + encode_message(b"")
    assert decoder.feed(data) == [b"", b"x", b""]


def test_prefix_split_across_chunks() -> None:
    decoder = MessageDecoder(LIMIT)
    data = encode_message(b"split")
    assert decoder.feed(data[:2]) == []
    assert decoder.buffered == 2
    assert decoder.feed(data[2:7]) == []
    assert decoder.feed(data[7:]) == [b"split"]
    assert decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_any_chunking_gives_the_same_messages(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_message(message) for message in messages)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    decoder = MessageDecoder(LIMIT)
    decoded: list[bytes] = []
    for start, end in zip(points, points[1:]):
        decoded += decoder.feed(stream[start:end])
    assert decoded == messages
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=40))
def test_garbage_gives_messages_or_a_clean_error_with_bounded_memory(chunks: list[bytes]) -> None:
    decoder = MessageDecoder(LIMIT)
    codes = []
    for chunk in chunks:
        try:
            messages = decoder.feed(chunk)
        except FramingError as exc:
            codes.append(exc.code)
            break
        assert all(len(message) <= LIMIT for message in messages)
        assert decoder.buffered <= LIMIT + 5
    assert set(codes) <= {StatusCode.INTERNAL, StatusCode.RESOURCE_EXHAUSTED}


def test_size_limit_fails_on_the_prefix_alone() -> None:
    decoder = MessageDecoder(10)
    assert decoder.feed(encode_message(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(FramingError) as caught:
        decoder.feed(struct.pack(">BI", 0, 11))
    assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert "11 vs. 10" in caught.value.message


def test_huge_declared_length_is_refused_before_buffering() -> None:
    decoder = MessageDecoder(LIMIT)
    with pytest.raises(FramingError) as caught:
        decoder.feed(struct.pack(">BI", 0, 2**32 - 1) + b"\x00" * 100)
    assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED


def test_compressed_flag_without_encoding_is_internal() -> None:
    decoder = MessageDecoder(LIMIT)
    with pytest.raises(FramingError) as caught:
        decoder.feed(b"\x01\x00\x00\x00\x01z")
    assert caught.value.code is StatusCode.INTERNAL


def test_invalid_flag_is_internal() -> None:
    with pytest.raises(FramingError) as caught:
        MessageDecoder(LIMIT).feed(b"\x02\x00\x00\x00\x00")
    assert caught.value.code is StatusCode.INTERNAL


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_messages_from_views_come_out_as_bytes(messages: list[bytes], cuts: list[int]) -> None:
    # The reader hands over views of what it received; protobuf's C parser copies anything
    # but bytes before it parses, so every message is bytes, however it was cut.
    stream = b"".join(encode_message(message) for message in messages)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    decoder = MessageDecoder(LIMIT)
    decoded: list[bytes] = []
    for start, end in zip(points, points[1:]):
        decoded += decoder.feed(memoryview(stream)[start:end])
        assert decoder.buffered <= LIMIT + 5
    assert decoded == messages
    assert all(type(message) is bytes for message in decoded)
    assert decoder.buffered == 0
