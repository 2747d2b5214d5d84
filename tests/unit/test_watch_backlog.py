"""A watcher's backlog and revisions without a network: what the consumer has been handed, in
order, and what the watcher would resume from after a break."""

from __future__ import annotations

from puregrpc_etcd._proto import kv_pb2
from puregrpc_etcd._watch_hub import Subscription
from puregrpc_etcd._watch_state import WatchSpec


def put(key: bytes, revision: int) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(key=key, mod_revision=revision, create_revision=revision, version=1)
    return kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv)


def subscription(start_revision: int = 0) -> Subscription:
    spec = WatchSpec(b"k", b"", prev_kv=False, progress_notify=False, no_put=False, no_delete=False)
    return Subscription(spec, start_revision, max_backlog=100)


def drain(sub: Subscription) -> list[tuple[int, int]]:
    """(event revision, consumer revision after it) for every event in the backlog."""
    handed = []
    while sub.backlog:
        event = sub.pop()
        if event is not None:
            handed.append((event.kv.mod_revision, sub.delivered_revision))
    return handed


def test_created_sets_both_revisions_for_a_from_now_watch() -> None:
    sub = subscription()
    sub.on_created(41)
    assert sub.ready.is_set()
    assert (sub.cursor.next_revision, sub.delivered_revision) == (42, 41)


def test_a_revision_is_complete_only_after_its_last_event() -> None:
    sub = subscription()
    sub.on_created(10)
    sub.on_events([put(b"a", 11), put(b"b", 12), put(b"c", 12), put(b"d", 13)])
    assert sub.cursor.next_revision == 14  # received: resume after all of them
    assert sub.delivered_revision == 10  # nothing handed to the consumer yet
    assert drain(sub) == [(11, 11), (12, 11), (12, 12), (13, 13)]


def test_progress_behind_unread_events_is_applied_in_order() -> None:
    sub = subscription()
    sub.on_created(10)
    sub.on_events([put(b"a", 11)])
    sub.on_progress(20, resumable=True)
    sub.on_progress(25, resumable=True)  # consecutive notifications collapse into one
    assert len(sub.backlog) == 2
    assert sub.delivered_revision == 10
    assert drain(sub) == [(11, 11)]
    assert sub.delivered_revision == 25
    assert sub.cursor.next_revision == 26


def test_progress_reply_to_a_request_does_not_move_the_resume_point() -> None:
    sub = subscription()
    sub.on_created(10)
    sub.on_progress(30, resumable=False)
    assert sub.delivered_revision == 30  # shown to the consumer at once: nothing is unread
    assert sub.cursor.next_revision == 11  # but a resume still asks from 11
    # Late events (etcd < 3.5.8 can answer ahead of them) are still delivered.
    sub.on_events([put(b"a", 29)])
    assert drain(sub) == [(29, 30)]
    assert sub.cursor.next_revision == 30


def test_explicit_start_revision_shows_the_revision_before_it() -> None:
    sub = subscription(start_revision=5)
    sub.on_created(100)
    assert (sub.cursor.next_revision, sub.delivered_revision) == (5, 4)


def test_fail_and_close_wake_the_consumer_state() -> None:
    sub = subscription()
    error = RuntimeError("boom")
    sub.fail(error)
    sub.fail(RuntimeError("later"))  # the first error stays
    assert sub.error is error
    assert sub.ready.is_set()
    assert not sub.active
    other = subscription()
    other.close()
    assert other.closed
    assert not other.active
