"""Result types of leases, locks and elections: immutable, lease ids printed as unpadded hex."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from puregrpc_etcd.election import LeaderKey
from puregrpc_etcd.lease import (
    Lease,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
)
from puregrpc_etcd.lease._keepalive import KeptLease
from puregrpc_etcd.lock import Lock, lock_key
from puregrpc_etcd.types import ResponseHeader

HEADER = ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)


def test_lease_responses_print_ids_in_hex_and_are_immutable() -> None:
    granted = LeaseGrantResponse(HEADER, 0x694D7B5A4B5C1D0A, 5)
    renewed = LeaseKeepAliveResponse(HEADER, 0x0A, 5)
    status = LeaseTimeToLiveResponse(HEADER, 0x0A, 4, 5, [b"k"])
    assert repr(granted) == "LeaseGrantResponse(id=694d7b5a4b5c1d0a, ttl=5)"
    assert repr(renewed) == "LeaseKeepAliveResponse(id=a, ttl=5)"
    assert "id=a," in repr(status)
    assert granted != LeaseKeepAliveResponse(HEADER, 0x694D7B5A4B5C1D0A, 5)
    assert granted == LeaseGrantResponse(HEADER, 0x694D7B5A4B5C1D0A, 5)
    for result in (granted, renewed, status, LeaseRevokeResponse(HEADER)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.header = HEADER  # type: ignore[misc]
        assert not hasattr(result, "__dict__")


def test_lease_handle_reflects_its_kept_state() -> None:
    kept = KeptLease(0xBEEF, 10)
    lease = Lease(kept)
    assert (lease.id, lease.ttl) == (0xBEEF, 10)
    assert repr(lease) == "Lease(id=beef, ttl=10, alive)"
    kept.mark_lost()
    assert lease.lost.is_set()
    assert repr(lease) == "Lease(id=beef, ttl=10, lost)"


def test_lock_key_layout_matches_go() -> None:
    assert lock_key("jobs", 0x694D7B5A4B5C1D0A) == (b"jobs/", b"jobs/694d7b5a4b5c1d0a")
    assert lock_key(b"jobs", 0xA) == (b"jobs/", b"jobs/a")
    assert lock_key("jobs", 0xA, owner="worker-1") == (b"jobs/", b"jobs/worker-1")
    with pytest.raises(ValueError, match="empty"):
        lock_key("", 1)
    with pytest.raises(ValueError, match="empty"):
        lock_key("jobs", 1, owner="")
    with pytest.raises(TypeError):
        lock_key(7, 1)


def test_lock_and_leader_key_reprs() -> None:
    lock = Lock(b"jobs", b"jobs/a", 0xA, 42, trio.Event(), None, None)  # type: ignore[arg-type]
    assert repr(lock) == "Lock(key=b'jobs/a', lease_id=a, revision=42)"
    leader = LeaderKey(b"e", b"e/ff", 7, 0xFF)
    assert repr(leader) == "LeaderKey(name=b'e', key=b'e/ff', rev=7, lease=ff)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        leader.rev = 8  # type: ignore[misc]
