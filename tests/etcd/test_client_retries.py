"""The retry and re-authentication rules of Client._unary, driven by a scripted channel.

No etcd here: the channel answers each call with the next scripted reply or gRPC error, and
pytest-trio's ``autojump_clock`` (a MockClock) makes backoff and deadlines exact and instant.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.client import Client
from puregrpc_etcd.grpc import RpcError, StatusCode

RANGE = rpcs.RANGE
PUT = rpcs.PUT


class ScriptedChannel:
    """Answers calls from a script; each entry is a reply, an RpcError, or (seconds, entry)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, float | None, tuple[tuple[str, str], ...]]] = []
        self.rotations = 0
        self.endpoints = ["a:1", "b:2"]

    async def unary_unary(
        self, method: str, request: Any, reply_type: Any, *, timeout: float | None, metadata: Any
    ) -> Any:
        self.calls.append((method, timeout, metadata))
        outcome = self.script.pop(0)
        if isinstance(outcome, tuple):
            delay, outcome = outcome
            await trio.sleep(delay)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def rotate(self) -> None:
        self.rotations += 1


def make_client(channel: ScriptedChannel, **options: Any) -> Client:
    settings: dict[str, Any] = {
        "username": None,
        "password": None,
        "timeout": None,
        "retries": 3,
        "retry_backoff": (0.1, 1.0),
        "metadata": None,
        "require_leader": False,
    }
    settings.update(options)
    client = Client(**settings)
    client._channel = channel  # type: ignore[assignment]
    return client


def unavailable(details: str = "connection lost", *, not_processed: bool = False) -> RpcError:
    return RpcError(StatusCode.UNAVAILABLE, details, not_processed=not_processed)


REPLY = rpc_pb2.RangeResponse(count=1)
PUT_REPLY = rpc_pb2.PutResponse()


async def test_reads_retry_on_unavailable_with_growing_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    channel = ScriptedChannel(unavailable(), unavailable("etcdserver: leader changed"), REPLY)
    client = make_client(channel)
    started = trio.current_time()
    reply = await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert reply.count == 1
    assert len(channel.calls) == 3
    # Two backoffs, each between half and all of 0.1 and then 0.2 seconds.
    assert 0.15 <= trio.current_time() - started <= 0.3
    assert channel.rotations == 2


async def test_writes_are_not_repeated_unless_never_sent(autojump_clock: trio.abc.Clock) -> None:
    channel = ScriptedChannel(unavailable())
    client = make_client(channel)
    with pytest.raises(etcd.UnavailableError) as caught:
        await client._unary(PUT, rpc_pb2.PutRequest())
    assert caught.value.not_processed is False
    assert len(channel.calls) == 1
    never_sent = ScriptedChannel(
        unavailable(not_processed=True), unavailable("etcdserver: no leader"), PUT_REPLY
    )
    client = make_client(never_sent)
    await client._unary(PUT, rpc_pb2.PutRequest())
    assert len(never_sent.calls) == 3


async def test_retries_run_out(autojump_clock: trio.abc.Clock) -> None:
    channel = ScriptedChannel(*[unavailable(not_processed=True)] * 3)
    client = make_client(channel, retries=2)
    with pytest.raises(etcd.UnavailableError):
        await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert len(channel.calls) == 3
    disabled = ScriptedChannel(unavailable(not_processed=True))
    with pytest.raises(etcd.UnavailableError):
        await make_client(disabled, retries=0)._unary(RANGE, rpc_pb2.RangeRequest())
    assert len(disabled.calls) == 1


async def test_other_errors_are_never_retried(autojump_clock: trio.abc.Clock) -> None:
    for error, expected in (
        (
            RpcError(
                StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
            ),
            etcd.FutureRevisionError,
        ),
        (
            RpcError(StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large"),
            etcd.RequestTooLargeError,
        ),
        (RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), etcd.DeadlineExceededError),
    ):
        channel = ScriptedChannel(error)
        with pytest.raises(expected):
            await make_client(channel)._unary(RANGE, rpc_pb2.RangeRequest())
        assert len(channel.calls) == 1


async def test_one_deadline_bounds_every_attempt(autojump_clock: trio.abc.Clock) -> None:
    channel = ScriptedChannel((0.45, unavailable()), (0.45, unavailable()), REPLY)
    client = make_client(channel, retry_backoff=(0.1, 0.1))
    with pytest.raises(etcd.UnavailableError):
        await client._unary(RANGE, rpc_pb2.RangeRequest(), timeout=1.0)
    first, second = channel.calls[0][1], channel.calls[1][1]
    assert first == 1.0
    assert second is not None
    assert 0.45 <= second <= 0.5  # what was left of the one second after a backoff
    assert len(channel.calls) == 2  # no time was left for a third attempt's backoff + call
    default = ScriptedChannel(REPLY)
    await make_client(default, timeout=2.5)._unary(RANGE, rpc_pb2.RangeRequest())
    assert default.calls[0][1] == 2.5


async def test_reauthenticates_once_on_a_stale_token(autojump_clock: trio.abc.Clock) -> None:
    token_reply = rpc_pb2.AuthenticateResponse(token="t2")
    stale = RpcError(StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
    channel = ScriptedChannel(stale, token_reply, REPLY)
    client = make_client(channel, username="u", password="p")
    client._set_token("t1")
    await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert [call[0] for call in channel.calls] == [RANGE.path, rpcs.AUTHENTICATE.path, RANGE.path]
    assert ("token", "t1") in channel.calls[0][2]
    assert ("token", "t2") in channel.calls[2][2]
    again = ScriptedChannel(stale, token_reply, stale)
    client = make_client(again, username="u", password="p")
    with pytest.raises(etcd.InvalidAuthTokenError):
        await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert len(again.calls) == 3


async def test_auth_not_enabled_means_no_token(autojump_clock: trio.abc.Clock) -> None:
    channel = ScriptedChannel(
        RpcError(StatusCode.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"),
        REPLY,
    )
    client = make_client(channel, username="u", password="p")
    await client._authenticate()
    await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert all(key != "token" for key, _ in channel.calls[1][2])


async def test_cancellation_is_not_an_error(autojump_clock: trio.abc.Clock) -> None:
    channel = ScriptedChannel((10.0, REPLY))
    client = make_client(channel)
    with trio.move_on_after(1.0) as scope:
        await client._unary(RANGE, rpc_pb2.RangeRequest())
    assert scope.cancelled_caught
