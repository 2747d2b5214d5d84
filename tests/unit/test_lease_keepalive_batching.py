"""Renewals that fall due close together go out together: one wake-up of the keeper for many
leases. Sending early is safe as long as deadlines count from the real send time."""

from __future__ import annotations

import pytest

from puregrpc_etcd.lease._keepalive import KeepAliveSchedule


def scheduled(*phases: float, ttl: float = 6.0) -> KeepAliveSchedule:
    """Leases 1, 2, ... next due at ``phases`` (each answered at phase - ttl/3)."""
    schedule = KeepAliveSchedule()
    for lease_id, phase in enumerate(phases, start=1):
        schedule.add(lease_id, ttl, now=phase - ttl / 3)
        schedule.due(phase - ttl / 3)
        schedule.answered(lease_id, ttl, now=phase - ttl / 3)
    return schedule


def test_leases_due_within_the_window_go_out_with_those_due_now() -> None:
    schedule = scheduled(10.0, 10.1, 10.25, 10.3)
    assert schedule.due(10.0) == [1]
    assert schedule.due(10.0, early=0.25) == [2, 3]
    assert schedule.next_send() == pytest.approx(10.3)


def test_the_window_is_at_most_a_tenth_of_a_lease_ttl() -> None:
    schedule = scheduled(10.0, 10.05, 10.2, ttl=1.5)
    assert schedule.due(10.0, early=0.25) == [1, 2]


def test_an_early_renewal_counts_its_deadline_from_when_it_was_sent() -> None:
    schedule = scheduled(10.0, 10.2)
    assert schedule.due(10.0, early=0.25) == [1, 2]
    assert schedule.answered(2, 6.0, now=10.05)
    schedule.discard(1)
    # Sent at 10.0, not at its due time 10.2: the server's clock restarted no earlier than that.
    assert schedule.next_deadline() == pytest.approx(16.0)
