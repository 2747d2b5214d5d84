"""The error a call ends with after retries: the class from what the server said, and words
that say whether a write may have been applied and what the first attempt met."""

from __future__ import annotations

import puregrpc_etcd as etcd
from puregrpc_etcd._outcome import final_error
from puregrpc_etcd.grpc.status import RpcError, StatusCode

PUT = "/etcdserverpb.KV/Put"
RANGE = "/etcdserverpb.KV/Range"
SILENT = "no reply from 10.0.0.1:2379 for 7.0 s (keepalive ping unanswered within 5 s)"


def unavailable(details: str, *, not_processed: bool = False) -> RpcError:
    return RpcError(StatusCode.UNAVAILABLE, details, not_processed=not_processed)


def test_a_write_cut_off_after_sending_may_have_been_applied() -> None:
    error = unavailable(SILENT)
    typed = final_error(error, error, PUT, repeatable=False)
    assert type(typed) is etcd.UnavailableError
    assert typed.details == f"{SILENT}; the Put may have been applied"
    assert str(typed).endswith("the Put may have been applied")
    assert typed.not_processed is False
    assert typed.__cause__ is error


def test_a_read_or_an_unsent_write_says_nothing_of_the_kind() -> None:
    error = unavailable(SILENT)
    assert final_error(error, error, RANGE, repeatable=True).details == SILENT
    unsent = unavailable("cannot connect to any endpoint: x: refused", not_processed=True)
    typed = final_error(unsent, unsent, PUT, repeatable=False)
    assert type(typed) is etcd.ConnectionFailedError
    assert "applied" not in typed.details


def test_no_leader_keeps_its_class_and_was_not_applied() -> None:
    error = unavailable("etcdserver: no leader")
    typed = final_error(error, error, PUT, repeatable=False)
    assert type(typed) is etcd.NoLeaderError
    assert typed.details == "etcdserver: no leader"


def test_a_later_failure_also_says_what_the_first_attempt_met() -> None:
    first = unavailable(SILENT)
    last = unavailable("cannot connect to any endpoint: x: no settings", not_processed=True)
    typed = final_error(last, first, RANGE, repeatable=True)
    assert type(typed) is etcd.ConnectionFailedError
    assert typed.details == f"{last.details} (after: {SILENT})"
