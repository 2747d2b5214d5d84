"""Header coding for gRPC calls: request headers, the grpc-timeout codec, ``-bin`` base64,
grpc-message percent-encoding and the filtering of reserved headers. Pure functions and
small caches; no I/O."""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import List, Sequence, Tuple, Union

from hpack import NeverIndexedHeaderTuple

from .http2 import encode_header_list, encode_literal

__all__ = [
    "Metadata",
    "RequestHeaderTemplate",
    "decode_grpc_message",
    "decode_metadata",
    "decode_timeout",
    "encode_grpc_message",
    "encode_metadata",
    "encode_timeout",
    "metadata_block",
]

Metadata = Sequence[Tuple[str, Union[str, bytes]]]
HeaderList = List[Tuple[bytes, bytes]]

# The largest value the spec allows (at most 8 digits), and the units from finest to coarsest
# with their size in nanoseconds.
_MAX_TIMEOUT_VALUE = 99_999_999
_TIMEOUT_UNITS = (
    (b"n", 1),
    (b"u", 1_000),
    (b"m", 1_000_000),
    (b"S", 1_000_000_000),
    (b"M", 60_000_000_000),
    (b"H", 3_600_000_000_000),
)
_NANOSECONDS_BY_UNIT = dict(_TIMEOUT_UNITS)


def encode_timeout(seconds: float) -> bytes:
    """A grpc-timeout value: the finest unit whose value fits in 8 digits, rounded up so the
    server never gives up before the client does."""
    if seconds != seconds or seconds < 0:  # noqa: PLR0124 - NaN check without math import
        raise ValueError(f"timeout must be a non-negative number, not {seconds!r}")
    nanoseconds = (
        _MAX_TIMEOUT_VALUE * 3_600_000_000_000 if math.isinf(seconds) else math.ceil(seconds * 1e9)
    )
    for unit, size in _TIMEOUT_UNITS:
        value = -(-nanoseconds // size)
        if value <= _MAX_TIMEOUT_VALUE:
            return b"%d%s" % (value, unit)
    return b"%dH" % _MAX_TIMEOUT_VALUE


def decode_timeout(value: bytes | str) -> float:
    """Seconds from a grpc-timeout value; ValueError if it is malformed."""
    raw = value.encode("ascii") if isinstance(value, str) else value
    digits, unit = raw[:-1], raw[-1:]
    if not (1 <= len(digits) <= 8 and digits.isdigit()) or unit not in _NANOSECONDS_BY_UNIT:
        raise ValueError(f"malformed grpc-timeout {raw!r}")
    return int(digits) * _NANOSECONDS_BY_UNIT[unit] / 1e9


_KEY_PATTERN = re.compile(rb"[0-9a-z_.\-]+\Z")
# Printable ASCII and space; HTTP/2 forbids the rest (RFC 9113 8.2.1) and gRPC narrows it.
_ASCII_VALUE_PATTERN = re.compile(rb"[\x20-\x7e]*\Z")
_RESERVED_KEYS = frozenset(
    {
        b"content-type",
        b"te",
        b"user-agent",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)


def encode_metadata(metadata: Metadata) -> HeaderList:
    """Custom metadata as header pairs: keys checked against the spec's grammar, ``-bin``
    values base64 without padding. Raises TypeError/ValueError before any I/O."""
    headers: HeaderList = []
    for key, value in metadata:
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be str, not {type(key).__name__}")
        name = key.encode("ascii", "replace")
        if name.startswith((b":", b"grpc-")) or name in _RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved for the transport")
        if not _KEY_PATTERN.match(name):
            raise ValueError(f"invalid metadata key {key!r}: use 0-9 a-z _ - . only")
        if name.endswith(b"-bin"):
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"value of binary metadata {key!r} must be bytes")
            headers.append((name, base64.b64encode(value).rstrip(b"=")))
        else:
            if not isinstance(value, str):
                raise TypeError(f"value of metadata {key!r} must be str")
            encoded = value.encode("ascii", "replace")
            if not value.isascii() or not _ASCII_VALUE_PATTERN.match(encoded):
                raise ValueError(f"value of metadata {key!r} must be printable ASCII")
            headers.append((name, encoded))
    return headers


_BLOCK_CACHE_LIMIT = 64


def metadata_block(metadata: Metadata | None, cache: dict[object, bytes] | None = None) -> bytes:
    """Custom metadata as an HPACK header block (see encode_metadata), cached by value in
    ``cache``: a client sends the same few metadata tuples on every call. The cache is the
    channel's own, not this module's, because metadata carries auth tokens, which must not
    outlive their client."""
    if not metadata:
        return b""
    if cache is None:
        return encode_header_list(encode_metadata(metadata))
    try:
        block = cache.get(metadata)
    except TypeError:  # a list: not hashable, not cached
        return encode_header_list(encode_metadata(metadata))
    if block is None:
        block = encode_header_list(encode_metadata(metadata))
        if len(cache) >= _BLOCK_CACHE_LIMIT:
            cache.clear()
        cache[metadata] = block
    return block


def _decode_binary(value: bytes) -> bytes:
    # Duplicate -bin headers may arrive joined with "," (PROTOCOL-HTTP2.md).
    parts = value.split(b",")
    try:
        return b"".join(
            base64.b64decode(part.strip() + b"=" * (-len(part.strip()) % 4)) for part in parts
        )
    except (binascii.Error, ValueError):
        return value


# Headers that describe the transport rather than the application; never shown as metadata.
_HIDDEN_RESPONSE_HEADERS = frozenset(
    {
        b"content-type",
        b"grpc-status",
        b"grpc-message",
        b"grpc-encoding",
        b"grpc-accept-encoding",
        b"te",
        b"content-length",
    }
)


def decode_metadata(headers: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, str | bytes], ...]:
    """Application metadata from response headers or trailers: pseudo-headers and transport
    headers dropped (``grpc-status-details-bin`` kept), ``-bin`` values base64-decoded."""
    pairs: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name[:1] == b":" or name in _HIDDEN_RESPONSE_HEADERS:
            continue
        key = name.decode("ascii", "replace")
        if name.endswith(b"-bin"):
            pairs.append((key, _decode_binary(value)))
        else:
            pairs.append((key, value.decode("latin-1")))
    return tuple(pairs)


_UNRESERVED_MESSAGE_BYTES = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_grpc_message(message: str) -> bytes:
    """A status message as grpc-message: UTF-8, then percent-encoding of everything outside
    printable ASCII and of ``%`` itself."""
    return b"".join(
        bytes((byte,)) if byte in _UNRESERVED_MESSAGE_BYTES else b"%%%02X" % byte
        for byte in message.encode("utf-8")
    )


_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def decode_grpc_message(value: bytes) -> str:
    """The text of a grpc-message header. Broken escapes stay as they are and invalid UTF-8
    becomes U+FFFD: the spec forbids failing or dropping the message."""
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    unescaped = _PERCENT_ESCAPE.sub(lambda match: bytes((int(match.group(1), 16),)), value)
    return unescaped.decode("utf-8", "replace")


_TIMEOUT_FIELD = encode_literal(b"grpc-timeout", b"", never_indexed=True)[:-1]


class RequestHeaderTemplate:
    """The request headers of one connection, built once: per method, the reserved headers
    are cached, and only grpc-timeout and custom metadata change from call to call."""

    __slots__ = ("_authority", "_block_by_method", "_by_method", "_scheme", "_tail", "_tail_block")

    def __init__(self, *, scheme: str, authority: str, user_agent: str) -> None:
        self._scheme = scheme.encode("ascii")
        self._authority = (
            authority.encode("idna") if not authority.isascii() else (authority.encode("ascii"))
        )
        self._tail: HeaderList = [
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
            (b"user-agent", user_agent.encode("ascii", "replace")),
        ]
        self._by_method: dict[str, HeaderList] = {}
        self._tail_block = encode_header_list(self._tail)
        self._block_by_method: dict[str, bytes] = {}

    def build(self, method: str, timeout: float | None, metadata: HeaderList | None) -> HeaderList:
        """Headers for one call; ``metadata`` is already encoded by encode_metadata."""
        reserved = self._by_method.get(method)
        if reserved is None:
            if not method.startswith("/"):
                raise ValueError(f"method must look like /package.Service/Method, not {method!r}")
            reserved = [
                (b":method", b"POST"),
                (b":scheme", self._scheme),
                (b":path", method.encode("ascii")),
                (b":authority", self._authority),
            ]
            self._by_method[method] = reserved
        headers = reserved.copy()
        if timeout is not None:
            # Never indexed: each call's value differs and would churn the HPACK table.
            headers.append(NeverIndexedHeaderTuple(b"grpc-timeout", encode_timeout(timeout)))
        headers += self._tail
        if metadata:
            headers += metadata
        return headers

    def block(self, method: str, timeout: float | None, metadata: bytes) -> bytes:
        """The HPACK header block of one call, in ``build``'s order; ``metadata`` comes from
        ``metadata_block``. Only grpc-timeout is encoded per call (never indexed: each value
        differs and would churn the server's table)."""
        reserved = self._block_by_method.get(method)
        if reserved is None:
            reserved = encode_header_list(self.build(method, None, None)[:4])
            self._block_by_method[method] = reserved
        if timeout is None:
            return reserved + self._tail_block + metadata
        value = encode_timeout(timeout)
        # A grpc-timeout value is at most 9 bytes: its length fits the 7-bit prefix.
        return b"".join(
            (reserved, _TIMEOUT_FIELD, bytes((len(value),)), value, self._tail_block, metadata)
        )
