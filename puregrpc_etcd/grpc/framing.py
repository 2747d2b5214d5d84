"""gRPC message framing: the 5-byte prefix (compressed flag, big-endian length) and an
incremental decoder that accepts DATA payloads cut anywhere. Pure and synchronous."""

from __future__ import annotations

import struct
from typing import Union

from google.protobuf.internal import api_implementation

from .status import StatusCode

__all__ = [
    "PREFIX_SIZE",
    "FramingError",
    "MessageDecoder",
    "Payload",
    "encode_message",
    "recycle",
]

_PREFIX = struct.Struct(">BI")
PREFIX_SIZE = _PREFIX.size
#: A received message: bytes, or for large ones a bytearray or a memoryview of the front of one
#: (see MessageDecoder).
Payload = Union[bytes, bytearray, memoryview]

# Pure-Python protobuf parses bytes only, so large messages are assembled in place only for
# protobuf's C parser; and never above 64 MiB, so that a length prefix alone cannot make us
# allocate gigabytes.
IN_PLACE_MIN = 256 * 1024 if api_implementation.Type() != "python" else 2**63
_IN_PLACE_MAX = 64 * 1024 * 1024


class _SpareBuffer:
    """One buffer for large messages, kept from one message to the next (process-wide).

    Without it, a client reading a 2.9 MB range in a loop took 1,300-1,600 page faults per
    call (1.5-3 ms): glibc's malloc found the reply's buffer and the parsed message's arena
    (upb copies every string, 3.8 MB) free together at the top of its heap, more than its trim
    threshold, gave them back to the kernel, and the next reply faulted them in again. With the
    buffer kept, only the arena comes and goes above it, and that stays below the threshold,
    which glibc sets to twice the largest block it has recently unmapped. So a buffer of a size
    not seen before is let go once rather than kept: freeing it is what raises the threshold.

    A buffer is taken when a message starts (``take``) and handed back once the message has
    been parsed (``recycle``). list.pop and list.append keep it safe for trio runs in several
    threads; at most a buffer or two is kept, of at most 64 MiB.
    """

    __slots__ = ("_largest_let_go", "_parser_copies", "_spares")

    def __init__(self) -> None:
        self._spares: list[bytearray] = []
        self._largest_let_go = 0
        self._parser_copies: bool | None = None

    def take(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes (and at most twice that)."""
        try:
            spare = self._spares.pop()
        except IndexError:
            return bytearray(size)
        if size <= len(spare) <= 2 * size:
            return spare
        return bytearray(size)

    def give(self, payload: Payload) -> None:
        buffer = payload.obj if isinstance(payload, memoryview) else payload
        if not isinstance(buffer, bytearray) or self._spares:
            return
        if len(buffer) > self._largest_let_go:
            self._largest_let_go = len(buffer)
            return
        if self._parser_copies is None:
            self._parser_copies = _parser_copies()
        if self._parser_copies:
            self._spares.append(buffer)


def _parser_copies() -> bool:
    """Whether protobuf's parser copies what it reads from a buffer (upb does): a parser that
    kept pointers into it would see them change when the buffer is reused."""
    from google.protobuf import wrappers_pb2

    original = b"kept" * 16
    buffer = bytearray(wrappers_pb2.BytesValue(value=original).SerializeToString())
    try:
        parsed = wrappers_pb2.BytesValue.FromString(memoryview(buffer))  # type: ignore[arg-type]
    except Exception:  # a parser that reads bytes only never gets these buffers
        return False
    buffer[2:] = b"\0" * (len(buffer) - 2)
    return parsed.value == original


_SPARE = _SpareBuffer()


def recycle(payload: Payload) -> None:
    """Hand back the buffer of a large message once it has been parsed (see _SpareBuffer);
    nothing may read ``payload`` afterwards. Small (bytes) messages are ignored."""
    if type(payload) is not bytes:
        _SPARE.give(payload)


def encode_message(payload: bytes) -> bytes:
    """One uncompressed Length-Prefixed-Message."""
    return _PREFIX.pack(0, len(payload)) + payload


class FramingError(Exception):
    """The response stream cannot be decoded; ``code`` is the status for that call."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MessageDecoder:
    """Cuts a byte stream into messages.

    ``feed`` returns the messages completed by the new bytes. A message is held only while
    incomplete, so ``buffered`` never exceeds the size limit plus a prefix: a length above
    the limit fails as soon as its prefix arrives, before any of its body is stored.

    The pieces of an incomplete message are kept as they came and joined once, when it is
    whole. A large message (``in_place_min`` bytes up to 64 MiB) is instead copied into a
    buffer as its pieces arrive, while the server is still sending: a join of megabytes at the
    end would add its cost (mostly fresh pages) to the call's latency. The buffer is the spare
    one when it fits (see _SpareBuffer), and the message comes out as that bytearray, or a
    memoryview of its front when the buffer is longer; protobuf's C parser (upb) reads either.
    """

    __slots__ = ("_body", "_chunks", "_in_place_min", "_length", "_max_message_size", "_size")

    def __init__(self, max_message_size: int, *, in_place_min: int | None = None) -> None:
        self._max_message_size = max_message_size
        self._in_place_min = IN_PLACE_MIN if in_place_min is None else in_place_min
        self._chunks: list[bytes | memoryview] = []
        self._size = 0
        self._length = -1  # of the body whose prefix has arrived, else -1
        self._body: bytearray | None = None  # a large message being assembled, of _size bytes

    @property
    def buffered(self) -> int:
        """Bytes of a message not yet complete."""
        return self._size

    def feed(self, data: bytes | memoryview) -> list[Payload]:
        """Messages completed by ``data``; FramingError if the stream is invalid."""
        chunks = self._chunks
        if self._body is None and not chunks and len(data) >= PREFIX_SIZE:
            # The common case, a chunk holding exactly one whole message: one copy.
            flag, length = _PREFIX.unpack_from(data)
            if len(data) == PREFIX_SIZE + length:
                self._check(flag, length)
                return [bytes(data[PREFIX_SIZE:])]
        messages: list[Payload] = []
        if self._body is not None:
            data = self._fill(data, messages)
        if not data:
            return messages
        chunks.append(data)
        self._size += len(data)
        while True:
            if self._length < 0:
                if self._size < PREFIX_SIZE:
                    break
                flag, length = _PREFIX.unpack(self._take(PREFIX_SIZE))
                self._check(flag, length)
                self._length = length
            if self._size < self._length:
                if self._in_place_min <= self._length <= _IN_PLACE_MAX:
                    self._start_in_place()
                break
            messages.append(self._take(self._length))
            self._length = -1
        return messages

    def _start_in_place(self) -> None:
        body = _SPARE.take(self._length)
        have = self._size
        body[:have] = self._take(have)
        self._body = body
        self._size = have

    def _fill(self, data: bytes | memoryview, messages: list[Payload]) -> bytes | memoryview:
        """Copy ``data`` into the message being assembled; returns what is left over."""
        body = self._body
        assert body is not None
        filled = self._size
        length = self._length
        room = length - filled
        if len(data) < room:
            body[filled : filled + len(data)] = data
            self._size = filled + len(data)
            return b""
        view = memoryview(data)
        body[filled:length] = view[:room]
        messages.append(body if len(body) == length else memoryview(body)[:length])
        self._body = None
        self._size = 0
        self._length = -1
        return view[room:]

    def _take(self, count: int) -> bytes:
        """The first ``count`` buffered bytes, removed from the buffer."""
        chunks = self._chunks
        pieces: list[bytes | memoryview] = []
        needed = count
        used = 0
        while needed:
            chunk = chunks[used]
            if len(chunk) <= needed:
                pieces.append(chunk)
                needed -= len(chunk)
                used += 1
            else:
                view = memoryview(chunk)
                pieces.append(view[:needed])
                chunks[used] = view[needed:]
                needed = 0
        del chunks[:used]
        self._size -= count
        return b"".join(pieces)

    def _check(self, flag: int, length: int) -> None:
        if flag == 1:
            raise FramingError(
                StatusCode.INTERNAL,
                "compressed message received but no grpc-encoding was negotiated",
            )
        if flag != 0:
            raise FramingError(StatusCode.INTERNAL, f"invalid compressed flag {flag}")
        if length > self._max_message_size:
            raise FramingError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"received message larger than max ({length} vs. {self._max_message_size})",
            )
