"""The snapshot stream's size and trailing SHA-256 checks, fed chunk by chunk without a server."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc_etcd._snapshot import SnapshotVerifier
from puregrpc_etcd.errors import EtcdError


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


def feed_like_etcd(verifier: SnapshotVerifier, database: bytes, chunks: list[bytes]) -> None:
    """etcd's order: database chunks with the bytes still to come, then the digest alone."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        verifier.feed(chunk, len(database) - sent)
    verifier.feed(hashlib.sha256(database).digest(), 0)


@given(st.binary(min_size=1, max_size=3000), st.lists(st.integers(0, 3000), max_size=40))
def test_any_chunking_of_a_whole_snapshot_verifies(database: bytes, cuts: list[int]) -> None:
    verifier = SnapshotVerifier()
    feed_like_etcd(verifier, database, chunked(database, cuts))
    verifier.check()
    assert verifier.received == verifier.total == len(database) + 32


@given(st.binary(min_size=64, max_size=2000), st.integers(0, 10_000))
def test_one_flipped_byte_is_caught(database: bytes, position: int) -> None:
    corrupt = bytearray(database)
    corrupt[position % len(corrupt)] ^= 0x01
    verifier = SnapshotVerifier()
    verifier.feed(bytes(corrupt), 0)
    verifier.feed(hashlib.sha256(database).digest(), 0)
    with pytest.raises(EtcdError, match="SHA-256"):
        verifier.check()


def test_a_stream_cut_short_is_incomplete() -> None:
    database = bytes(range(256)) * 40
    verifier = SnapshotVerifier()
    verifier.feed(database[:4096], len(database) - 4096)
    with pytest.raises(EtcdError, match="incomplete"):
        verifier.check()


def test_an_empty_stream_is_an_error() -> None:
    with pytest.raises(EtcdError, match="without sending any data"):
        SnapshotVerifier().check()
