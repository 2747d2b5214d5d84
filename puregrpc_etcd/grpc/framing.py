"""gRPC message framing: the 5-byte prefix (compressed flag, big-endian length) and an
incremental decoder that accepts DATA payloads cut anywhere. Pure and synchronous."""

from __future__ import annotations

import struct

from .status import StatusCode

__all__ = ["PREFIX_SIZE", "FramingError", "MessageDecoder", "encode_message"]

_PREFIX = struct.Struct(">BI")
PREFIX_SIZE = _PREFIX.size

# Pieces of an unfinished message smaller than this are copied into one buffer rather than
# kept as views (a view costs about 200 bytes), as are pieces that are views on a buffer more
# than _PIN_RATIO times their size, which they would keep alive: an unfinished message then
# holds at most about _PIN_RATIO times its own size, however a server cuts it into frames. Our
# reads are 256 KiB and a DATA frame at most 16 KiB, so the views normal servers give are kept.
_SMALL_PIECE = 1024
_PIN_RATIO = 16


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
    the limit fails as soon as its prefix arrives, before any of its body is stored. The
    pieces of an incomplete message are kept as they came and joined once, when it is whole:
    a message of megabytes in 16 KiB frames is copied once, not once per frame, and comes out
    as bytes, which protobuf's C parser reads without a copy of its own (it copies a
    memoryview or bytearray first). Small pieces are gathered in a bytearray instead, so a
    message cut into one-byte frames costs its size, not 200 bytes a byte (see _SMALL_PIECE).
    """

    __slots__ = ("_chunks", "_length", "_max_message_size", "_size")

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._chunks: list[bytes | bytearray | memoryview] = []
        self._size = 0
        self._length = -1  # of the body whose prefix has arrived, else -1

    @property
    def buffered(self) -> int:
        """Bytes of a message not yet complete."""
        return self._size

    @property
    def partial_bytes(self) -> int:
        """Bytes received of an unfinished message, its prefix included; 0 between messages."""
        return self._size + (PREFIX_SIZE if self._length >= 0 else 0)

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Messages completed by ``data``; FramingError if the stream is invalid."""
        chunks = self._chunks
        if not chunks and len(data) >= PREFIX_SIZE:
            # The common case, a chunk holding exactly one whole message: one copy.
            flag, length = _PREFIX.unpack_from(data)
            if len(data) == PREFIX_SIZE + length:
                self._check(flag, length)
                return [bytes(data[PREFIX_SIZE:])]
        messages: list[bytes] = []
        size = len(data)
        if not size:
            return messages
        if size < _SMALL_PIECE or (
            type(data) is memoryview and len(data.obj) > _PIN_RATIO * size  # type: ignore[arg-type]
        ):
            last = chunks[-1] if chunks else None
            if type(last) is bytearray:
                last += data
            else:
                chunks.append(bytearray(data))
        else:
            chunks.append(data)
        self._size += size
        while True:
            if self._length < 0:
                if self._size < PREFIX_SIZE:
                    break
                flag, length = _PREFIX.unpack(self._take(PREFIX_SIZE))
                self._check(flag, length)
                self._length = length
            if self._size < self._length:
                break
            messages.append(self._take(self._length))
            self._length = -1
        return messages

    def _take(self, count: int) -> bytes:
        """The first ``count`` buffered bytes, removed from the buffer."""
        chunks = self._chunks
        pieces: list[bytes | bytearray | memoryview] = []
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
