"""The gRPC message framing: prefix encoding and the incremental decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puregrpc_etcd.grpc import framing
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
    in_place_min=st.integers(min_value=0, max_value=64),
)
def test_in_place_assembly_gives_the_same_messages(
    messages: list[bytes], cuts: list[int], in_place_min: int
) -> None:
    stream = b"".join(encode_message(message) for message in messages)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    decoder = MessageDecoder(LIMIT, in_place_min=in_place_min)
    decoded: list[bytes | bytearray] = []
    for start, end in zip(points, points[1:]):
        decoded += decoder.feed(memoryview(stream)[start:end])
        assert decoder.buffered <= LIMIT + 5
    assert decoded == messages
    assert decoder.buffered == 0


def test_a_large_message_is_assembled_in_place_as_it_arrives() -> None:
    body = bytes(range(256)) * 8
    data = encode_message(body) + encode_message(b"next")
    decoder = MessageDecoder(LIMIT, in_place_min=1024)
    assert decoder.feed(data[:700]) == []
    assert decoder.buffered == 695  # the prefix is not counted once read
    assert decoder.feed(data[700:1500]) == []
    first, second = decoder.feed(data[1500:])
    assert type(first) is bytearray
    assert first == body
    assert second == b"next"
    assert decoder.buffered == 0


def _fresh_spare(
    monkeypatch: pytest.MonkeyPatch, *, parser_copies: bool = True, largest_let_go: int = 0
) -> framing._SpareBuffer:
    """A new spare buffer in place of the process's, as if the parser copies (or not) and
    sizes up to ``largest_let_go`` had been let go already."""
    spare = framing._SpareBuffer()
    spare._parser_copies = parser_copies
    spare._largest_let_go = largest_let_go
    monkeypatch.setattr(framing, "_SPARE", spare)
    return spare


def _large(size: int, fill: int) -> tuple[bytes, list[bytes]]:
    """A message of ``size`` bytes, and its framing cut in two so it is assembled in place."""
    body = bytes([fill]) * size
    data = encode_message(body)
    return body, [data[:600], data[600:]]


def test_the_buffer_of_a_large_message_is_reused_once_its_size_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spare = _fresh_spare(monkeypatch)
    decoder = MessageDecoder(LIMIT * 4, in_place_min=1024)

    def receive(size: int, fill: int) -> framing.Payload:
        body, pieces = _large(size, fill)
        assert decoder.feed(pieces[0]) == []
        (message,) = decoder.feed(pieces[1])
        assert message == body
        return message

    first = receive(4000, 1)
    framing.recycle(first)  # a size not seen before is let go (glibc learns the size)
    assert spare._spares == []
    second = receive(4000, 2)
    assert second is not first
    framing.recycle(second)
    assert spare._spares == [second]
    third = receive(3000, 3)  # fits the spare: a view of its front
    assert isinstance(third, memoryview)
    assert third.obj is second
    assert len(third) == 3000
    framing.recycle(third)
    assert spare._spares == [second]
    fourth = receive(9000, 4)  # too large for the spare: a new buffer, the spare dropped
    assert type(fourth) is bytearray
    assert spare._spares == []
    framing.recycle(b"small messages are bytes and never kept")
    assert spare._spares == []


def test_two_messages_assembled_at_once_never_share_the_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spare = _fresh_spare(monkeypatch, largest_let_go=10_000)
    framing.recycle(bytearray(5000))
    assert len(spare._spares) == 1
    one, two = (
        MessageDecoder(LIMIT * 4, in_place_min=1024),
        MessageDecoder(LIMIT * 4, in_place_min=1024),
    )
    body_one, pieces_one = _large(4000, 1)
    body_two, pieces_two = _large(4000, 2)
    assert one.feed(pieces_one[0]) == []
    assert two.feed(pieces_two[0]) == []  # the spare is taken: this one gets a new buffer
    (first,) = one.feed(pieces_one[1])
    (second,) = two.feed(pieces_two[1])
    assert first == body_one
    assert second == body_two


def test_no_buffer_is_kept_for_a_parser_that_does_not_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spare = _fresh_spare(monkeypatch, parser_copies=False, largest_let_go=10_000)
    framing.recycle(bytearray(4000))
    assert spare._spares == []


def test_a_reply_parsed_from_a_reused_buffer_keeps_its_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # protobuf's parsers copy what they read: a reply must not change when its buffer is
    # filled with the next one (_parser_copies checks the same at run time).
    from puregrpc_etcd._proto import rpc_pb2
    from puregrpc_etcd.grpc.call import _decode

    _fresh_spare(monkeypatch)
    assert framing._parser_copies()
    decoder = MessageDecoder(2**20, in_place_min=1024)

    def reply(value: bytes) -> rpc_pb2.RangeResponse:
        response = rpc_pb2.RangeResponse(count=50)
        for index in range(50):
            response.kvs.add(key=b"key/%02d" % index, value=value)
        data = encode_message(response.SerializeToString())
        assert decoder.feed(data[:700]) == []
        (message,) = decoder.feed(data[700:])
        return _decode(rpc_pb2.RangeResponse, message)

    replies = [reply(bytes([65 + n]) * 100) for n in range(4)]
    assert framing._SPARE._spares  # the buffer went round
    for n, parsed in enumerate(replies):
        assert [kv.value for kv in parsed.kvs] == [bytes([65 + n]) * 100] * 50
