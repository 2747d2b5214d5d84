"""The deadline heap behind unary timeouts: earliest first, finished calls skipped and pruned."""

from __future__ import annotations

import math

from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.grpc.call_state import CallState
from puregrpc_etcd.grpc.deadlines import DeadlineQueue


def test_calls_come_out_when_due_earliest_first_and_finished_ones_are_skipped() -> None:
    queue = DeadlineQueue()
    assert queue.next == math.inf
    late, early, finished = CallState(1), CallState(1), CallState(1)
    assert queue.add(late, 5.0, 5.0, live_calls=1)
    assert queue.add(early, 2.0, 2.0, live_calls=2)
    assert not queue.add(finished, 3.0, 3.0, live_calls=3)
    assert queue.next == 2.0
    finished.code = StatusCode.OK
    assert queue.expired(1.9) == []
    assert queue.expired(4.0) == [(early, 2.0)]
    assert queue.next == 5.0
    assert queue.expired(10.0) == [(late, 5.0)]
    assert len(queue) == 0


def test_finished_calls_are_pruned_so_the_heap_follows_the_calls_in_flight() -> None:
    queue = DeadlineQueue()
    live = CallState(1)
    queue.add(live, 1000.0, 1000.0, live_calls=1)
    for index in range(10_000):
        call = CallState(1)
        queue.add(call, 100.0 + index, 100.0, live_calls=2)
        call.code = StatusCode.OK
        assert len(queue) <= 2 * 2 + 64 + 1
    assert queue.expired(math.inf) == [(live, 1000.0)]
