"""HTTP/2 wire pieces for a gRPC client (RFC 9113, RFC 7541): frame headers, the frames a
client sends, HPACK literals for request headers, and an HPACK decoder that skips the work
for header blocks it has already decoded. Pure functions and small objects; no I/O."""

from __future__ import annotations

import struct
from typing import Dict, List, Sequence, Tuple

import hpack
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

Headers = Tuple[Tuple[bytes, bytes], ...]

__all__ = [
    "HeaderDecoder",
    "Http2Error",
    "encode_header_list",
    "encode_literal",
    "frame",
    "settings_frame",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = struct.Struct(">IBI")  # (length << 8 | type), flags, stream id
FRAME_HEADER_SIZE = FRAME_HEADER.size
_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")
_SETTING = struct.Struct(">HI")

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9

END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# Settings and error codes (RFC 9113 sections 6.5.2 and 7) are h2's enums, as plain ints: they
# are compared and packed on the hot path.
HEADER_TABLE_SIZE = int(SettingCodes.HEADER_TABLE_SIZE)
ENABLE_PUSH = int(SettingCodes.ENABLE_PUSH)
MAX_CONCURRENT_STREAMS = int(SettingCodes.MAX_CONCURRENT_STREAMS)
INITIAL_WINDOW_SIZE = int(SettingCodes.INITIAL_WINDOW_SIZE)
MAX_FRAME_SIZE = int(SettingCodes.MAX_FRAME_SIZE)
MAX_HEADER_LIST_SIZE = int(SettingCodes.MAX_HEADER_LIST_SIZE)

PROTOCOL_ERROR = int(ErrorCodes.PROTOCOL_ERROR)
FLOW_CONTROL_ERROR = int(ErrorCodes.FLOW_CONTROL_ERROR)
STREAM_CLOSED = int(ErrorCodes.STREAM_CLOSED)
FRAME_SIZE_ERROR = int(ErrorCodes.FRAME_SIZE_ERROR)
COMPRESSION_ERROR = int(ErrorCodes.COMPRESSION_ERROR)


def error_name(error_code: int) -> str:
    """The RFC's name of an HTTP/2 error code (``error code N`` for one it does not define)."""
    try:
        return ErrorCodes(error_code).name
    except ValueError:
        return f"error code {error_code}"


DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
DEFAULT_MAX_FRAME_SIZE = 16384


class Http2Error(Exception):
    """The peer broke the protocol; the connection ends with this error code."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return FRAME_HEADER.pack(len(payload) << 8 | frame_type, flags, stream_id) + payload


def frame_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    return FRAME_HEADER.pack(length << 8 | frame_type, flags, stream_id)


def settings_frame(values: Dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(error_code))


def goaway_frame(last_stream_id: int, error_code: int) -> bytes:
    return frame(GOAWAY, 0, 0, _U32_PAIR.pack(last_stream_id, error_code))


def parse_settings(payload: memoryview) -> List[Tuple[int, int]]:
    if len(payload) % 6:
        raise Http2Error(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
    return [_SETTING.unpack_from(payload, offset) for offset in range(0, len(payload), 6)]


def parse_u32(payload: memoryview, what: str) -> int:
    if len(payload) != 4:
        raise Http2Error(FRAME_SIZE_ERROR, f"{what} payload must be 4 bytes")
    value: int = _U32.unpack(payload)[0]
    return value


def parse_goaway(payload: memoryview) -> Tuple[int, int, bytes]:
    if len(payload) < 8:
        raise Http2Error(FRAME_SIZE_ERROR, "GOAWAY payload shorter than 8 bytes")
    last_stream_id, error_code = _U32_PAIR.unpack_from(payload)
    return last_stream_id & 0x7FFFFFFF, error_code, bytes(payload[8:])


def strip_padding(payload: memoryview, flags: int) -> memoryview:
    """The payload of a DATA or HEADERS frame without its padding (PADDED flag)."""
    if not flags & PADDED:
        return payload
    if not payload:
        raise Http2Error(PROTOCOL_ERROR, "padded frame without a pad length")
    pad = payload[0]
    if pad >= len(payload):
        raise Http2Error(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - pad]


# -- HPACK encoding: literals only, so requests never touch the server's dynamic table and a
# header block can be built once and reused for every call.


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _integer(len(data), 7, 0) + data


# Static-table indexes (RFC 7541 appendix A) of the names and pairs requests use.
_STATIC_PAIRS = {(b":method", b"POST"): 3, (b":scheme", b"http"): 6, (b":scheme", b"https"): 7}
_STATIC_NAMES = {
    b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6, b"content-type": 31,
    b"user-agent": 58,
}  # fmt: skip


def encode_literal(name: bytes, value: bytes, *, never_indexed: bool = False) -> bytes:
    """One header field, from the static table when it is there whole, else as a literal
    that the decoder does not add to its dynamic table."""
    if not never_indexed:
        index = _STATIC_PAIRS.get((name, value))
        if index is not None:
            return bytes((0x80 | index,))
    first = 0x10 if never_indexed else 0x00
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        return _integer(name_index, 4, first) + _string(value)
    return bytes((first,)) + _string(name) + _string(value)


def encode_header_list(headers: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """A header block for ``headers`` (``hpack.NeverIndexedHeaderTuple`` stays never-indexed)."""
    return b"".join(
        encode_literal(name, value, never_indexed=isinstance(header, hpack.NeverIndexedHeaderTuple))
        for header in headers
        for name, value in (header,)
    )


# Bytes that are each a whole "indexed header field" (RFC 7541 6.1): 0x80 is invalid and 0xFF
# starts a multi-byte index.
_ONE_BYTE_INDEXED = bytes(range(0x81, 0xFF))
_CACHE_LIMIT = 256
# Servers' repeated blocks are a few bytes (grpc-go indexes its fields); a longer one is not
# kept, so that the cache holds little however a server builds its blocks.
_CACHED_BLOCK_MAX = 64


class HeaderDecoder:
    """HPACK decoding with a cache. A block made only of one-byte indexed fields neither
    changes the dynamic table nor depends on anything but it, so its result is kept until a
    block that may change the table is decoded. Servers repeat such blocks on every reply."""

    __slots__ = ("_cache", "_decoder")

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._cache: Dict[bytes, Headers] = {}

    def decode(self, block: bytes) -> Headers:
        cache = self._cache
        headers = cache.get(block)
        if headers is not None:
            return headers
        try:
            decoded = self._decoder.decode(block, raw=True)
        except hpack.OversizedHeaderListError as exc:
            raise Http2Error(PROTOCOL_ERROR, f"header list too large: {exc}") from None
        except hpack.HPACKError as exc:
            raise Http2Error(COMPRESSION_ERROR, f"header block cannot be decoded: {exc}") from None
        headers = tuple((bytes(name), bytes(value)) for name, value in decoded)
        if block.translate(None, _ONE_BYTE_INDEXED):
            cache.clear()
        elif len(cache) < _CACHE_LIMIT and len(block) <= _CACHED_BLOCK_MAX:
            cache[block] = headers
        return headers
