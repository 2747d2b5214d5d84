"""Hostile servers against the sans-IO frame layer (issue 14): floods and degenerate frames
must end in a typed error within a bound, or cost only what they carry. Each test was checked
to fail with its fix reverted. Memory is measured with tracemalloc, work by counting; never
by the clock. The trio side (GOAWAY sent, other tasks and connections unhurt) is in
test_grpc_hostile_io.py."""

from __future__ import annotations

import struct
from typing import Callable

import pytest
from grpc_support import (
    OK_BLOCK,
    OK_HEADERS,
    ServerPeer,
    assert_connection_error,
    connect,
    opened,
    raw,
    start,
    u32,
)
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame

from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.grpc.framing import encode_message
from puregrpc_etcd.grpc.http2 import HeaderDecoder, Headers
from puregrpc_etcd.grpc.inbound import (
    FIELDS_PER_PASS,
    MAX_CONTINUATIONS,
    MAX_HEADER_BLOCK_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_PENDING_ACKS,
)
from puregrpc_etcd.grpc.protocol import GrpcProtocol

try:
    import tracemalloc
except ImportError:  # PyPy has none: its memory bounds are the same code, measured on CPython
    tracemalloc = None  # type: ignore[assignment]

DATA, HEADERS, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0x0, 0x1, 0x4, 0x6, 0x8, 0x9
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, ENHANCE_YOUR_CALM = 0x1, 0x3, 0xB
READ = 256 * 1024  # what the trio layer reads at most


def feed(protocol: GrpcProtocol, wire: bytes) -> None:
    """``wire`` in reads of at most 256 KiB, each processed to the end, as the reader does."""
    for start_at in range(0, len(wire), READ):
        protocol.receive_data(wire[start_at : start_at + READ])
        while protocol.backlogged:
            protocol.receive_data(b"")


def held_after(action: Callable[[], None]) -> int:
    """Bytes allocated by ``action`` and still alive after it."""
    if tracemalloc is None:
        pytest.skip("tracemalloc is not available on this interpreter (PyPy)")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


# -- CONTINUATION floods (RFC 9113 6.10, 10.5) ---------------------------------------------------


@pytest.mark.parametrize("piece", [b"", b"\x88"], ids=["empty", "one-byte"])
def test_a_continuation_flood_ends_the_connection_after_the_bound(piece: bytes) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    flood = raw(HEADERS, 0, 1, b"") + raw(CONTINUATION, 0, 1, piece) * (4 * MAX_CONTINUATIONS)
    protocol.receive_data(flood)
    assert_connection_error(server, protocol, calls, ENHANCE_YOUR_CALM)
    assert calls[0].details.endswith(
        f"more than {MAX_CONTINUATIONS} CONTINUATION frames in a block"
    )


def test_continuations_up_to_the_bound_are_accepted() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    block = server._encoder.encode([*OK_HEADERS, ("x-k", "v" * 200)])
    wire = raw(HEADERS, 0, 1, block[:1])
    wire += raw(CONTINUATION, 0, 1, b"") * (MAX_CONTINUATIONS - 2)
    wire += raw(CONTINUATION, 0, 1, block[1:-1]) + raw(CONTINUATION, END_HEADERS, 1, block[-1:])
    protocol.receive_data(wire + server.trailers(1))
    assert calls[0].code is StatusCode.OK
    assert calls[0].initial_metadata == (("x-k", "v" * 200),)


def test_a_header_block_larger_than_the_bound_ends_the_connection() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    piece = b"\x88" * 16384
    pieces = MAX_HEADER_BLOCK_SIZE // len(piece) + 1
    protocol.receive_data(raw(HEADERS, 0, 1, b"") + raw(CONTINUATION, 0, 1, piece) * pieces)
    assert_connection_error(server, protocol, calls, PROTOCOL_ERROR)


# -- DATA that carries nothing, or a message in crumbs -------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [raw(DATA, 0, 1, b""), raw(DATA, PADDED, 1, b"\x00"), raw(DATA, PADDED, 1, b"\x07" + bytes(7))],
    ids=["empty", "padded-empty", "padding-only"],
)
def test_empty_and_padding_only_data_frames_are_not_kept(frame: bytes) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    # Half a message pending, so the empty frames would join its pieces.
    protocol.receive_data(server.headers(1, OK_HEADERS) + server.data(1, encode_message(b"ab")[:6]))
    count = 20000
    held = held_after(lambda: feed(protocol, frame * count))
    assert held < 64 * 1024  # was about 200 bytes a frame: 4 MB
    assert protocol.failure is None
    protocol.receive_data(server.data(1, b"b") + server.trailers(1))
    assert calls[0].code is StatusCode.OK
    assert protocol.consume(calls[0]) == b"ab"
    # Every flow-controlled byte is handed back, none is held for the call.
    server.parse(protocol.data_to_send())
    assert calls[0].released


def test_a_message_cut_into_one_byte_frames_costs_about_its_size() -> None:
    server = ServerPeer()
    protocol = connect(server, initial_window_size=1 << 20)
    call = start(protocol, limit=1 << 20)
    server.parse(protocol.data_to_send())
    body = bytes(range(256)) * 256  # 64 KiB
    wire = encode_message(body)
    crumbs = b"".join(raw(DATA, 0, 1, wire[i : i + 1]) for i in range(len(wire) - 1))
    protocol.receive_data(server.headers(1, OK_HEADERS))
    held = held_after(lambda: feed(protocol, crumbs))
    assert held < 4 * len(body)  # was about 200 bytes a byte: 13 MB
    protocol.receive_data(raw(DATA, 0, 1, wire[-1:]) + server.trailers(1))
    assert protocol.consume(call) == body


def test_small_pieces_do_not_keep_whole_reads_alive() -> None:
    """A 2 KiB piece of a message per 256 KiB read (the rest ignored frames) must not hold
    the read: pieces are copied when their buffer is much larger than they are."""
    server = ServerPeer()
    protocol = connect(server, initial_window_size=1 << 20)
    call = start(protocol, limit=1 << 20)
    server.parse(protocol.data_to_send())
    body = b"m" * (40 * 2048)
    wire = encode_message(body)
    filler = raw(0xBB, 0, 0, bytes(16000)) * 16  # an unknown type: ignored (RFC 9113 5.5)
    protocol.receive_data(server.headers(1, OK_HEADERS))

    def trickle() -> None:
        for start_at in range(0, len(wire) - 1, 2048):
            piece = wire[start_at : min(start_at + 2048, len(wire) - 1)]
            protocol.receive_data(raw(DATA, 0, 1, piece) + filler)

    held = held_after(trickle)
    assert held < 4 * len(body)  # each piece kept a 256 KiB read alive: 10 MB
    assert protocol.consume(call) is None
    protocol.receive_data(raw(DATA, 0, 1, wire[-1:]) + server.trailers(1))
    assert protocol.consume(call) == body


# -- a reply cut short -------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [3, 5, 7], ids=["in-the-prefix", "after-the-prefix", "in-the-body"])
def test_an_ok_end_in_the_middle_of_a_message_is_internal(cut: int) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    whole = encode_message(b"done")
    partial = encode_message(b"abcdef")[:cut]
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + server.data(1, whole + partial) + server.trailers(1)
    )
    call = calls[0]
    assert call.code is StatusCode.INTERNAL
    assert call.details == (
        f"the server ended the call OK after {cut} bytes of an unfinished message"
    )
    assert call.error is not None
    assert call.error.code is StatusCode.INTERNAL
    assert protocol.consume(call) == b"done"  # what did arrive whole is still readable


def test_an_error_end_in_the_middle_of_a_message_keeps_the_servers_status() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(
        server.headers(1, OK_HEADERS)
        + server.data(1, encode_message(b"abcdef")[:7])
        + server.trailers(1, 8, "too big")
    )
    assert calls[0].code is StatusCode.RESOURCE_EXHAUSTED
    assert calls[0].details == "too big"


# -- acknowledgements owed, past what a write takes ------------------------------------------------


@pytest.mark.parametrize(
    "frame", [raw(PING, 0, 0, b"12345678"), raw(SETTINGS, 0, 0, b"")], ids=["PING", "SETTINGS"]
)
def test_acks_owed_beyond_the_bound_end_the_connection(frame: bytes) -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    feed(protocol, frame * (MAX_PENDING_ACKS + 1))
    frames = server.parse(protocol.data_to_send())
    assert len(frames) == MAX_PENDING_ACKS + 1  # the acks owed, then the GOAWAY
    assert isinstance(frames[-1], GoAwayFrame)
    assert frames[-1].error_code == ENHANCE_YOUR_CALM
    assert calls[0].code is StatusCode.UNAVAILABLE


def test_acks_taken_by_writes_do_not_count_against_the_bound() -> None:
    server = ServerPeer()
    protocol, _ = opened(server)
    for _ in range(3):
        protocol.receive_data(raw(PING, 0, 0, b"12345678") * MAX_PENDING_ACKS)
        pings = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, PingFrame)]
        assert len(pings) == MAX_PENDING_ACKS
    assert protocol.failure is None


# -- siblings: per-frame work that grew with the number of calls, and the stream window ----------


def test_data_beyond_the_stream_window_resets_only_that_call() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 2)  # 64 KiB stream windows (grpc_support.connect)
    flood = server.data(1, encode_message(b"x" * 1000) * 200)  # 200 KB, never credited
    protocol.receive_data(server.headers(1, OK_HEADERS) + flood)
    assert calls[0].code is StatusCode.INTERNAL
    assert calls[0].details == "the server sent more than the stream window"
    assert calls[0].queued_bytes <= 64 * 1024
    resets = [f for f in server.parse(protocol.data_to_send()) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, FLOW_CONTROL_ERROR)]
    protocol.receive_data(server.reply(3, b"fine"))
    assert calls[1].code is StatusCode.OK
    assert protocol.failure is None


def test_a_goaway_flood_walks_only_the_calls_it_refuses() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 50)
    walked = 0

    class CountingDict(dict):  # type: ignore[type-arg]
        def __reversed__(self):  # type: ignore[no-untyped-def]
            nonlocal walked
            for key in super().__reversed__():
                walked += 1
                yield key

        def items(self):  # type: ignore[no-untyped-def]
            nonlocal walked
            walked += len(self)
            return super().items()

    protocol.calls = CountingDict(protocol.calls)
    protocol.receive_data(server.goaway(2**31 - 1) * 1000 + server.goaway(95))
    assert walked <= 1000 + 5  # one look per GOAWAY, then the two it refuses and a stop
    assert [call.code for call in calls[-2:]] == [StatusCode.UNAVAILABLE] * 2
    assert all(call.code is None for call in calls[:-2])


def test_connection_window_updates_wake_senders_only_when_they_wait_for_it() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 20)
    protocol.send_blocked.update(calls)
    protocol.receive_data(raw(WINDOW_UPDATE, 0, 0, u32(1)) * 1000)
    assert len(protocol.changed) == 0  # the window was open: no sender waits for it
    protocol._send_window = 0
    protocol.receive_data(raw(WINDOW_UPDATE, 0, 0, u32(1)) * 1000)
    assert len(protocol.changed) == len(calls)  # was len(calls) per update: 20,000
    # The same for a stream's window: only the call whose window opens is woken, once.
    protocol.changed.clear()
    calls[0].send_window = 0
    protocol.receive_data(raw(WINDOW_UPDATE, 0, 1, u32(1)) + raw(WINDOW_UPDATE, 0, 3, u32(1)))
    protocol.receive_data(raw(WINDOW_UPDATE, 0, 1, u32(1)) * 1000)
    assert protocol.changed == [calls[0]]


def test_initial_window_changes_are_applied_once_per_settings_frame() -> None:
    server = ServerPeer()
    protocol, calls = opened(server, 3)
    protocol.send_blocked.update(calls)
    before = [call.send_window for call in calls]
    flips = b"".join(struct.pack(">HI", 0x4, 65535 + n % 2) for n in range(2000))
    protocol.receive_data(raw(SETTINGS, 0, 0, flips + struct.pack(">HI", 0x4, 70000)))
    assert [call.send_window for call in calls] == [window + 70000 - 65535 for window in before]
    assert len(protocol.changed) == len(calls)  # woken once, not once per setting: 6003
    # The check still sees the largest value the frame set, however briefly: with 100 bytes
    # of credit beyond its initial window, stream 1 would overflow at 2^31-1.
    protocol.receive_data(raw(WINDOW_UPDATE, 0, 1, u32(100)))
    protocol.receive_data(raw(SETTINGS, 0, 0, struct.pack(">HIHI", 0x4, 2**31 - 1, 0x4, 10)))
    assert_connection_error(server, protocol, calls, FLOW_CONTROL_ERROR)


def test_a_read_of_costly_header_blocks_is_processed_in_bounded_passes() -> None:
    server = ServerPeer()
    protocol, calls = opened(server)
    protocol.receive_data(server.rst(1, 8))  # closed: its header blocks are decoded, then dropped
    block = OK_BLOCK + b"\x81" * 1000  # 1000 indexed fields, each a byte
    blocks = raw(HEADERS, END_HEADERS, 1, block) * 40
    decoded = [0]  # header fields decoded in each pass

    class CountingDecoder(HeaderDecoder):
        __slots__ = ()

        def decode(self, block: bytes) -> Headers:
            headers = super().decode(block)
            decoded[-1] += len(headers)
            return headers

    protocol._decoder = CountingDecoder(MAX_HEADER_LIST_SIZE)
    protocol.receive_data(blocks + server.reply(1))
    while protocol.backlogged:
        decoded.append(0)
        protocol.receive_data(b"")
    assert len(decoded) > 1
    assert max(decoded) < FIELDS_PER_PASS + len(block)
    assert sum(decoded) >= 40 * 1000
    assert protocol.failure is None
    assert calls[0].code is StatusCode.CANCELLED  # our reset; nothing after it changes that


def test_the_header_cache_keeps_only_short_blocks() -> None:
    decoder = HeaderDecoder(MAX_HEADER_LIST_SIZE)

    def decode_distinct_blocks() -> None:
        for n in range(300):  # all-indexed blocks, so each would be cached
            decoder.decode(b"\x81" * 1000 + bytes((0x82 + n % 60, 0x82 + n // 60)))

    assert held_after(decode_distinct_blocks) < 1024 * 1024  # was 23 MB
    assert decoder.decode(b"\x88\x81") == ((b":status", b"200"), (b":authority", b""))
