"""A watcher's backlog and revisions without a network: what the consumer has been handed, in
order, what the watcher would resume from after a break, and when a slow consumer overflows."""

from __future__ import annotations

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd._proto import kv_pb2
from puregrpc_etcd.watch._backlog import BacklogLimits, Subscription, WatchOverflowError
from puregrpc_etcd.watch._state import WatchSpec


def put(key: bytes, revision: int, value: bytes = b"", prev: bytes | None = None) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(
        key=key, value=value, mod_revision=revision, create_revision=revision, version=1
    )
    event = kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv)
    if prev is not None:
        event.prev_kv.CopyFrom(kv_pb2.KeyValue(key=key, value=prev))
    return event


def subscription(
    start_revision: int = 0,
    *,
    max_events: int = 100,
    max_bytes: int = 1 << 20,
    on_overflow: str = "raise",
    prev_kv: bool = False,
) -> Subscription:
    spec = WatchSpec(
        b"k", b"", prev_kv=prev_kv, progress_notify=False, no_put=False, no_delete=False
    )
    limits = BacklogLimits(max_events, max_bytes, on_overflow)
    return Subscription(spec, start_revision, limits, key=b"k")


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


def test_overflow_counts_events_once_the_consumer_is_behind() -> None:
    sub = subscription(max_events=3)
    sub.on_created(10)
    assert sub.on_events([put(b"a", 11), put(b"b", 12)]) is None
    assert sub.on_events([put(b"c", 13)]) is None  # at the bound, not over it
    assert sub.on_events([put(b"d", 14)]) == "max_backlog"
    assert (sub.pending_events, sub.pending_bytes) == (4, 4)
    error = sub.overflow_error("max_backlog")
    assert (error.key, error.bound, error.limit, error.revision) == (b"k", "max_backlog", 3, 14)
    assert "watch again from revision 15" in str(error)


def test_one_big_revision_for_a_consumer_that_is_not_behind_is_let_through() -> None:
    sub = subscription(max_events=3)
    sub.on_created(10)
    # Say a delete of a whole prefix: one revision, more events than the bound.
    assert sub.on_events([put(bytes([97 + i]), 11) for i in range(5)]) is None
    assert sub.on_events([put(b"z", 12)]) == "max_backlog"  # now the consumer is behind


def test_overflow_counts_keys_values_and_previous_values() -> None:
    sub = subscription(max_bytes=100, prev_kv=True)
    sub.on_created(10)
    assert sub.on_events([put(b"k1", 11, b"x" * 40, prev=b"y" * 10)]) is None
    assert sub.pending_bytes == 2 + 40 + 2 + 10
    assert sub.on_events([put(b"k2", 12, b"x" * 44)]) is None  # 100: at the bound
    assert sub.on_events([put(b"k3", 13, b"x")]) == "max_backlog_bytes"
    error = sub.overflow_error("max_backlog_bytes")
    assert (error.bound, error.limit, error.revision) == ("max_backlog_bytes", 100, 13)
    assert "bytes" in str(error)


def test_reading_releases_the_counts_and_allows_a_resume_at_half() -> None:
    sub = subscription(max_events=4, max_bytes=1000, on_overflow="pause", prev_kv=True)
    sub.on_created(10)
    for revision in range(11, 17):
        sub.on_events([put(b"key", revision, b"v" * 10, prev=b"p" * 5)])
    sub.on_progress(20, resumable=True)
    assert (sub.pending_events, sub.pending_bytes) == (6, 6 * 21)
    limits = sub.limits
    assert not limits.resumable(sub.pending_events, sub.pending_bytes)
    for _ in range(4):
        sub.pop()
    assert (sub.pending_events, sub.pending_bytes) == (2, 2 * 21)
    assert limits.resumable(sub.pending_events, sub.pending_bytes)
    assert limits.resumable(2, 500)
    assert not limits.resumable(2, 501)
    assert drain(sub) == [(15, 15), (16, 16)]
    # The progress notification behind them is not an event.
    assert (sub.pending_events, sub.pending_bytes, sub.delivered_revision) == (0, 0, 20)


def test_close_forgets_the_backlog_and_its_counts() -> None:
    sub = subscription()
    sub.on_created(10)
    sub.on_events([put(b"a", 11, b"v")])
    sub.close()
    assert (len(sub.backlog), sub.pending_events, sub.pending_bytes) == (0, 0, 0)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_backlog must"):
        BacklogLimits(0, 1, "raise")
    with pytest.raises(ValueError, match="max_backlog_bytes"):
        BacklogLimits(1, 0, "pause")
    with pytest.raises(TypeError, match="max_backlog_bytes"):
        BacklogLimits(1, 1.5, "raise")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_backlog"):
        BacklogLimits(True, 1, "raise")
    with pytest.raises(ValueError, match="on_overflow"):
        BacklogLimits(1, 1, "drop")


def test_the_overflow_error_is_public_and_an_etcd_error() -> None:
    assert etcd.WatchOverflowError is WatchOverflowError
    assert issubclass(WatchOverflowError, etcd.EtcdError)
