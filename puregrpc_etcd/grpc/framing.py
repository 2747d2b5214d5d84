"""gRPC message framing: the 5-byte prefix (compressed flag, big-endian length) and an
incremental decoder that accepts DATA payloads cut anywhere. Pure and synchronous."""

from __future__ import annotations

import struct

from .status import StatusCode

__all__ = ["PREFIX_SIZE", "FramingError", "MessageDecoder", "encode_message"]

_PREFIX = struct.Struct(">BI")
PREFIX_SIZE = _PREFIX.size


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
    """

    __slots__ = ("_buffer", "_max_message_size")

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Messages completed by ``data``; FramingError if the stream is invalid."""
        buffer = self._buffer
        if not buffer and len(data) >= PREFIX_SIZE:
            # The common case, a chunk holding exactly one whole message, without copying twice.
            flag, length = _PREFIX.unpack_from(data)
            if len(data) == PREFIX_SIZE + length:
                self._check(flag, length)
                return [bytes(data[PREFIX_SIZE:])]
        buffer += data
        messages: list[bytes] = []
        offset = 0
        available = len(buffer)
        while available - offset >= PREFIX_SIZE:
            flag, length = _PREFIX.unpack_from(buffer, offset)
            self._check(flag, length)
            end = offset + PREFIX_SIZE + length
            if end > available:
                break
            messages.append(bytes(buffer[offset + PREFIX_SIZE:end]))
            offset = end
        if offset:
            del buffer[:offset]
        return messages

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
