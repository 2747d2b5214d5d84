"""The gRPC message framing: prefix encoding and the incremental decoder."""

from __future__ import annotations

import platform
import struct
import subprocess
import sys

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


def test_the_heap_is_primed_once_for_each_new_largest_message() -> None:
    primer = framing._HeapPrimer()
    primer.prime(300_000)
    assert primer._primed == 300_000
    primer.prime(200_000)  # smaller: nothing to do
    assert primer._primed == 300_000
    primer.prime(10 * 2**20)
    assert primer._primed == 10 * 2**20
    # glibc adjusts for blocks up to 32 MiB only (with their overhead): from a message of 16 MiB
    # on, the block is capped below that, and nothing larger is primed again.
    assert framing._PRIME_MAX <= 32 * 2**20 - 8192
    primer.prime(16 * 2**20)
    primer.prime(40 * 2**20)
    assert primer._primed > 2**40


def test_a_large_message_primes_the_heap_when_its_prefix_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primed: list[int] = []
    monkeypatch.setattr(framing._HeapPrimer, "prime", lambda self, length: primed.append(length))
    size = framing.LARGE_MESSAGE
    decoder = MessageDecoder(2 * size)
    data = encode_message(b"s" * (size - 1)) + encode_message(b"l" * size)
    assert decoder.feed(data[:size]) == []
    assert primed == []  # one byte short of large
    assert decoder.feed(data[size : size + 10]) == [b"s" * (size - 1)]
    assert primed == [size]
    assert decoder.feed(data[size + 10 :]) == [b"l" * size]


_REPEATED_REPLIES = """
import resource, sys
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.grpc import framing
if sys.argv[1] == "unprimed":
    framing._HeapPrimer.prime = lambda self, length: None
reply = rpc_pb2.RangeResponse(count=10_000)
for index in range(10_000):
    reply.kvs.add(key=b"bench/prefix/%08d" % index, value=b"v" * 256, mod_revision=index + 1)
wire = framing.encode_message(reply.SerializeToString())
del reply
faults = []
for round in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    decoder = framing.MessageDecoder(2**26)
    pieces = [wire[start : start + 16384] for start in range(0, len(wire), 16384)]
    (message,) = [m for piece in pieces for m in decoder.feed(memoryview(piece))]
    parsed = rpc_pb2.RangeResponse.FromString(message)
    assert len(parsed.kvs) == 10_000
    del message, parsed, pieces
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sorted(faults[8:])[4])
"""


@pytest.mark.skipif(
    platform.python_implementation() != "CPython" or platform.libc_ver()[0] != "glibc",
    reason="glibc's thresholds and protobuf's C parser (upb) are what this is about",
)
def test_repeated_large_replies_reuse_the_heap() -> None:
    # A 2.9 MB reply joined and parsed, then dropped, sixteen times in a fresh process: without
    # the primer glibc gave the memory back after each one (about 1,500 page faults each).
    def median_faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _REPEATED_REPLIES, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return int(done.stdout)

    primed = median_faults("primed")
    assert primed < 100, f"{primed} page faults per reply (unprimed: {median_faults('unprimed')})"
