"""The KV result types: immutable, equal by value, cheap to build from protobuf."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from puregrpc_etcd._proto import kv_pb2, rpc_pb2
from puregrpc_etcd.types import (
    GetResponse,
    KeyValue,
    KeyValues,
    ResponseHeader,
    key_value,
    response_header,
)


def make_pb(key: bytes, value: bytes = b"v", revision: int = 5) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=key,
        value=value,
        create_revision=revision,
        mod_revision=revision + 1,
        version=2,
        lease=7,
    )


def test_key_value_reads_every_field() -> None:
    kv = key_value(make_pb(b"a/b"))
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (
        b"a/b",
        b"v",
        5,
        6,
        2,
        7,
    )
    assert kv == KeyValue(b"a/b", b"v", 5, 6, 2, 7)
    assert hash(kv) == hash(KeyValue(b"a/b", b"v", 5, 6, 2, 7))
    assert kv != KeyValue(b"a/b", b"w", 5, 6, 2, 7)


def test_key_value_is_immutable() -> None:
    kv = KeyValue(b"k", b"v")
    with pytest.raises(AttributeError):
        kv.value = b"x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        kv._pb = make_pb(b"z")
    with pytest.raises(AttributeError):
        kv.other = 1  # type: ignore[attr-defined]


def test_a_namespace_is_cut_from_the_key() -> None:
    kv = key_value(make_pb(b"ns/key"), b"ns/")
    assert kv.key == b"key"
    assert isinstance(kv, KeyValue)
    assert kv == KeyValue(b"key", b"v", 5, 6, 2, 7)


def test_key_value_pickles_and_has_a_short_repr() -> None:
    kv = KeyValue(b"k", b"x" * 1000, 1, 2, 3, 4)
    assert pickle.loads(pickle.dumps(kv)) == kv
    text = repr(kv)
    assert "1000 bytes" in text
    assert len(text) < 200


def test_key_values_is_a_lazy_read_only_list() -> None:
    reply = rpc_pb2.RangeResponse(kvs=[make_pb(b"p/%d" % i) for i in range(5)])
    kvs = KeyValues(reply.kvs, b"p/")
    assert len(kvs) == 5
    assert [kv.key for kv in kvs] == [b"0", b"1", b"2", b"3", b"4"]
    assert kvs[-1].key == b"4"
    assert [kv.key for kv in kvs[1:3]] == [b"1", b"2"]
    assert kvs == list(kvs)
    assert kvs != []
    assert KeyValues([]) == []
    with pytest.raises(IndexError):
        kvs[5]
    with pytest.raises(TypeError):
        hash(kvs)


def test_response_types_are_frozen_and_slotted() -> None:
    header = response_header(
        rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
    )
    assert header == ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
    response = GetResponse(header, KeyValues([]), False, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.count = 3  # type: ignore[misc]
    assert not hasattr(response, "__dict__")
