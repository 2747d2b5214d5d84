"""Sans-IO tests of the watch bookkeeping: resume points, id routing, fragments, progress."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc_etcd._proto import kv_pb2, rpc_pb2
from puregrpc_etcd.errors import CompactedError, NoLeaderError, PermissionDeniedError, RpcError
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.watch._state import (
    CANCELED,
    CREATED,
    EVENTS,
    OVERSIZED,
    PROGRESS,
    PROGRESS_ALL,
    REFUSED,
    Cursor,
    Router,
    WatchSpec,
    cancel_error,
)


def put(key: bytes, revision: int) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(key=key, value=b"v", mod_revision=revision, create_revision=revision)
    return kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv)


def reply(watch_id: int, revision: int, *events: kv_pb2.Event, **fields: object):
    header = rpc_pb2.ResponseHeader(revision=revision)
    return rpc_pb2.WatchResponse(header=header, watch_id=watch_id, events=events, **fields)


SPEC = WatchSpec(b"a", b"b", prev_kv=True, progress_notify=True, no_put=False, no_delete=True)


def test_create_request_carries_every_option_and_asks_for_fragments() -> None:
    request = SPEC.create_request(7, 42).create_request
    assert (request.key, request.range_end, request.start_revision) == (b"a", b"b", 42)
    assert request.watch_id == 7
    assert request.prev_kv
    assert request.progress_notify
    assert request.fragment
    assert list(request.filters) == [rpc_pb2.WatchCreateRequest.NODELETE]
    both = WatchSpec(b"k", b"", False, False, no_put=True, no_delete=True)
    assert len(both.create_request(1, 0).create_request.filters) == 2


def test_from_now_watch_resumes_after_created_header() -> None:
    cursor = Cursor(0)
    cursor.on_created(10)
    assert cursor.next_revision == 11
    assert cursor.revision == 10
    cursor.on_created(50)  # a re-creation on a new stream does not move it
    assert cursor.next_revision == 11


def test_explicit_start_revision_is_kept_through_creation() -> None:
    cursor = Cursor(5)
    cursor.on_created(100)
    assert cursor.next_revision == 5
    assert cursor.revision == 4


def test_catch_up_batch_uses_last_event_not_header() -> None:
    # Catch-up batches are stamped with the current store revision (here 1000) although they
    # hold only revisions up to 7: resuming from the header would skip 8..1000.
    cursor = Cursor(5)
    cursor.on_events([put(b"a", 5), put(b"a", 6), put(b"a", 7)])
    assert cursor.next_revision == 8


def test_progress_without_events_uses_header() -> None:
    cursor = Cursor(5)
    cursor.on_events([put(b"a", 7)])
    cursor.on_progress(20)
    assert cursor.next_revision == 21
    cursor.on_events([put(b"a", 15)])  # late events never move the cursor back
    assert cursor.next_revision == 21


def test_negative_start_revision_is_rejected() -> None:
    with pytest.raises(ValueError, match="start_revision"):
        Cursor(-1)


@given(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40))
def test_cursor_never_goes_back_and_ends_after_last_event(steps: list[int]) -> None:
    cursor = Cursor(1)
    revision = 0
    previous = cursor.next_revision
    for step in steps:
        revision += step
        cursor.on_events([put(b"k", revision)])
        assert cursor.next_revision >= previous
        previous = cursor.next_revision
    assert cursor.next_revision == revision + 1


def test_router_assigns_fresh_nonzero_ids() -> None:
    router: Router[str] = Router()
    first = router.attach("w")
    assert first != 0  # id 0 asks the server to choose
    assert router.detach(first)
    assert not router.detach(first)
    assert router.attach("w") not in (0, first)  # never reused on one stream


def test_router_routes_created_events_and_progress() -> None:
    router: Router[str] = Router()
    a, b = router.attach("a"), router.attach("b")
    [created] = router.receive(reply(a, 10, created=True))
    assert (created.target, created.kind, created.revision) == ("a", CREATED, 10)
    assert router.is_created(a)
    assert not router.is_created(b)
    [events] = router.receive(reply(a, 12, put(b"x", 11), put(b"y", 12)))
    assert events.kind == EVENTS
    assert [e.kv.mod_revision for e in events.events] == [11, 12]
    [progress] = router.receive(reply(a, 13))
    assert (progress.kind, progress.revision) == (PROGRESS, 13)


def test_broadcast_progress_reaches_only_created_watchers() -> None:
    router: Router[str] = Router()
    a, b = router.attach("a"), router.attach("b")
    router.receive(reply(a, 10, created=True))
    deliveries = router.receive(reply(-1, 20))
    assert [(d.target, d.kind, d.revision) for d in deliveries] == [("a", PROGRESS_ALL, 20)]
    router.receive(reply(b, 20, created=True))
    assert {d.target for d in router.receive(reply(-1, 21))} == {"a", "b"}


def test_replies_for_detached_or_unknown_ids_are_dropped() -> None:
    router: Router[str] = Router()
    a = router.attach("a")
    router.receive(reply(a, 10, created=True))
    router.detach(a)
    assert router.receive(reply(a, 11, put(b"x", 11))) == []
    assert router.receive(reply(a, 11, canceled=True)) == []
    assert router.receive(reply(99, 11, put(b"x", 11))) == []
    assert router.attached == 0


def test_fragments_are_merged_into_one_delivery() -> None:
    router: Router[str] = Router()
    a, b = router.attach("a"), router.attach("b")
    assert router.receive(reply(a, 30, put(b"x", 11), put(b"x", 12), fragment=True)) == []
    # Another watcher's reply in between does not disturb the pending fragments.
    [other] = router.receive(reply(b, 30, put(b"z", 13)))
    assert other.target == "b"
    assert router.receive(reply(a, 30, put(b"x", 13), fragment=True)) == []
    [merged] = router.receive(reply(a, 30, put(b"x", 14)))
    assert merged.kind == EVENTS
    assert [e.kv.mod_revision for e in merged.events] == [11, 12, 13, 14]
    [single] = router.receive(reply(a, 31, put(b"x", 15)))
    assert [e.kv.mod_revision for e in single.events] == [15]


def test_half_received_fragments_are_forgotten_on_detach() -> None:
    router: Router[str] = Router()
    a = router.attach("a")
    router.receive(reply(a, 30, put(b"x", 11), fragment=True))
    router.detach(a)
    a2 = router.attach("a")
    [delivery] = router.receive(reply(a2, 30, put(b"x", 11)))
    assert [e.kv.mod_revision for e in delivery.events] == [11]


def test_compaction_cancel_carries_compact_revision_and_detaches() -> None:
    router: Router[str] = Router()
    a = router.attach("a")
    router.receive(reply(a, 10, created=True))
    [cancel] = router.receive(reply(a, 10, canceled=True, compact_revision=7))
    assert (cancel.kind, cancel.compact_revision) == (CANCELED, 7)
    assert router.attached == 0
    assert router.receive(reply(a, 11, put(b"x", 11))) == []


DENIED = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"


@pytest.mark.parametrize("answered_id", [-1, "asked"], ids=["etcd>=3.5.6", "etcd<=3.5.5"])
def test_refused_create_is_matched_to_the_oldest_create_whatever_its_id(answered_id) -> None:
    # etcd 3.4.22+ and 3.5.6+ answer a refused create with id -1, older ones with the id asked.
    router: Router[str] = Router()
    a, b = router.attach("a"), router.attach("b")
    refused_id = a if answered_id == "asked" else answered_id
    [refused] = router.receive(
        reply(refused_id, 10, created=True, canceled=True, cancel_reason=DENIED)
    )
    assert (refused.target, refused.kind, refused.cancel_reason) == ("a", REFUSED, DENIED)
    assert refused.watch_id == refused_id
    assert router.attached == 1
    assert not router.detach(a)  # the server holds nothing: no cancel to send
    [created] = router.receive(reply(b, 10, created=True))
    assert (created.target, created.kind, created.watch_id) == ("b", CREATED, b)
    assert router.creating == 0
    # A progress broadcast (id -1, neither created nor canceled) is not taken for a refusal.
    [progress] = router.receive(reply(-1, 11))
    assert (progress.target, progress.kind) == ("b", PROGRESS_ALL)


def test_a_refusal_between_creates_fails_only_the_watcher_that_asked() -> None:
    router: Router[str] = Router()
    ids = [router.attach(name) for name in "abc"]
    answers = [
        reply(ids[0], 5, created=True),
        reply(-1, 5, created=True, canceled=True, cancel_reason=DENIED),
        reply(ids[2], 5, created=True),
    ]
    kinds = [(d.target, d.kind) for answer in answers for d in router.receive(answer)]
    assert kinds == [("a", CREATED), ("b", REFUSED), ("c", CREATED)]
    [events] = router.receive(reply(ids[2], 6, put(b"c", 6)))
    assert events.target == "c"
    assert router.receive(reply(-1, 7, created=True)) == []  # answers no create of ours


def test_created_reply_under_another_id_is_followed() -> None:
    router: Router[str] = Router()
    a = router.attach("a")
    [created] = router.receive(reply(40, 10, created=True))  # a server that chose its own id
    assert created.watch_id == 40
    [events] = router.receive(reply(40, 11, put(b"x", 11)))
    assert events.target == "a"
    assert router.receive(reply(a, 11, put(b"x", 11))) == []
    assert router.detach(40)


def test_reply_to_a_create_detached_on_the_way_is_dropped_and_keeps_the_order() -> None:
    router: Router[str] = Router()
    a, b = router.attach("a"), router.attach("b")
    assert router.detach(a)  # the create was sent: cancel it after its answer
    assert router.receive(reply(a, 10, created=True)) == []
    [created] = router.receive(reply(b, 10, created=True))
    assert created.target == "b"


def test_fragments_held_beyond_the_bound_fail_that_watcher_only() -> None:
    big = kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv_pb2.KeyValue(key=b"k", value=b"v" * 600))
    router: Router[str] = Router(max_fragment_bytes=2000)
    a, b = router.attach("a"), router.attach("b")
    for watch_id in (a, b):
        router.receive(reply(watch_id, 1, created=True))
    assert router.receive(reply(a, 30, big, big, fragment=True)) == []
    [oversized] = router.receive(reply(a, 30, big, big, fragment=True))
    assert (oversized.target, oversized.kind) == ("a", OVERSIZED)
    # What ``a`` held was let go: ``b`` may hold as much again.
    assert router.receive(reply(b, 30, big, big, fragment=True)) == []
    [merged] = router.receive(reply(b, 30, big))
    assert len(merged.events) == 3
    # Endless empty fragments count too (each costs its header and flags).
    for _ in range(1000):
        deliveries = router.receive(reply(b, 30, fragment=True))
        if deliveries:
            break
    assert [d.kind for d in deliveries] == [OVERSIZED]


def test_cancel_error_for_compaction() -> None:
    error = cancel_error(17, "")
    assert isinstance(error, CompactedError)
    assert error.compact_revision == 17


def test_cancel_error_reads_grpc_go_status_rendering() -> None:
    reason = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    error = cancel_error(0, reason)
    assert isinstance(error, PermissionDeniedError)
    assert error.code is StatusCode.PERMISSION_DENIED
    assert error.details == "etcdserver: permission denied"


def test_cancel_error_without_reason_is_still_an_error() -> None:
    error = cancel_error(0, "")
    assert isinstance(error, RpcError)
    assert error.code is StatusCode.CANCELLED
    assert "without giving a reason" in error.details
    assert isinstance(cancel_error(0, "etcdserver: no leader"), NoLeaderError)
