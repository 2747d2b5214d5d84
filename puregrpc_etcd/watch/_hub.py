"""The one shared Watch stream of a client: the task that keeps it open, resumes every watcher
after a break (with a renewed auth token), and routes replies into each watcher's bounded
backlog without ever blocking.

A ``Subscription`` (``watch._backlog``) is one watcher's state as the hub sees it; ``watch.Watcher``
is its public face.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Awaitable, Callable, Dict, List, Optional

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import errors
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.watch._backlog import Subscription
from puregrpc_etcd.watch._state import (
    BROADCAST_ID,
    CANCELED,
    CREATED,
    EVENTS,
    OVERSIZED,
    PROGRESS,
    PROGRESS_ALL,
    REFUSED,
    Delivery,
    Router,
    cancel_error,
)

if TYPE_CHECKING:
    from puregrpc_etcd._caller import Caller
    from puregrpc_etcd._streams import EtcdStream


#: Reconnect delays: first retry after about RETRY_FIRST seconds, doubling up to RETRY_MAX.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: An unanswered progress request is sent again this often. etcd >= 3.5.8 drops a request,
#: without an answer, while a watcher of the stream is still catching up or starts at a revision
#: the store has not reached yet (``progressIfSync``); it answers a later one once it can.
PROGRESS_RESEND = 1.0

# Codes that no reconnect can cure; anything else (UNAVAILABLE, a server restart's CANCELLED or
# INTERNAL, no leader, ...) is a break to resume from.
_PERMANENT_CODES = frozenset(
    {
        StatusCode.INVALID_ARGUMENT,
        StatusCode.PERMISSION_DENIED,
        StatusCode.UNIMPLEMENTED,
        StatusCode.UNAUTHENTICATED,
    }
)


class _StreamOutcome:
    """One stream: the first failure seen, whether any reply came, the auth token it was opened
    with (``Caller.token_marker``), and the nursery of its tasks."""

    __slots__ = ("failure", "nursery", "opened", "opened_with", "renewed", "served")

    def __init__(self) -> None:
        self.failure: Optional[BaseException] = None
        self.served = False
        self.opened = False
        self.opened_with: object = None
        self.renewed = False
        self.nursery: Optional[trio.Nursery] = None

    def fail(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, errors.RpcError):
        return exc.code in _PERMANENT_CODES and not isinstance(exc, errors.UnavailableError)
    return not isinstance(exc, (errors.EtcdError, OSError, trio.BrokenResourceError, EOFError))


class WatchHub:
    """Keeps one Watch stream open while a client has watchers, and resumes them after breaks."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller
        self._subscriptions: Dict[Subscription, None] = {}
        self._running = False
        self._scope: Optional[trio.CancelScope] = None
        self._router: Optional[Router[Subscription]] = None
        self._to_create: Dict[Subscription, None] = {}
        self._to_cancel: List[int] = []
        self._work = trio.Event()
        self._progress_wanted = False
        self._progress_sent = False
        self._progress_arrived = trio.Event()
        #: How many Watch streams this hub has opened (one per connection break).
        self.streams_opened = 0
        #: How many replies came as fragments of a larger one (reassembled by the router).
        self.fragments_received = 0
        #: How many creates the server refused (permission, token, ...).
        self.creates_refused = 0

    @property
    def default_timeout(self) -> Optional[float]:
        """The client's default per-call timeout."""
        return self._caller.timeout

    @property
    def attached(self) -> int:
        """How many watchers the current stream carries (0: no stream is open). One read of
        the router, so other threads may look too (the python-etcd3 face does)."""
        router = self._router
        return router.attached if router is not None else 0

    # Called by watchers (synchronously: nothing here waits, so it is safe under cancellation).

    def add(self, subscription: Subscription) -> None:
        if not self._running:
            self._caller.nursery.start_soon(self._run)  # raises if the client is closed
            self._running = True
        self._subscriptions[subscription] = None
        self._request_create(subscription)

    def remove(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription, None)
        self._detach(subscription)
        subscription.close()
        if not any(sub.error is None for sub in self._subscriptions) and self._scope is not None:
            self._scope.cancel()  # nobody left to serve: close the stream

    def consumed(self, subscription: Subscription) -> None:
        """The consumer read from the backlog: re-create a paused watcher once half is free."""
        if subscription.paused and subscription.limits.resumable(
            subscription.pending_events, subscription.pending_bytes
        ):
            subscription.paused = False
            self._request_create(subscription)

    async def request_progress(self) -> None:
        """Ask the server for a progress notification and wait until it has been routed."""
        arrived = self._progress_arrived
        self._progress_wanted = True
        self._work.set()
        await arrived.wait()

    def _request_create(self, subscription: Subscription) -> None:
        if self._router is not None and subscription.active:
            self._to_create[subscription] = None
            self._work.set()

    def _detach(self, subscription: Subscription) -> None:
        self._to_create.pop(subscription, None)
        watch_id, subscription.watch_id = subscription.watch_id, None
        if watch_id is not None and self._router is not None and self._router.detach(watch_id):
            self._to_cancel.append(watch_id)
            self._work.set()

    # The stream task.

    async def _run(self) -> None:
        failures = 0
        # The token of the last stream that broke: renewed before the next stream opens, since
        # a restarted etcd forgets its simple tokens and refuses every create made with one.
        stale_token: object = None
        try:
            while any(sub.active or sub.paused for sub in self._subscriptions):
                outcome = _StreamOutcome()
                with trio.CancelScope() as scope:
                    self._scope = scope
                    await self._serve_one_stream(outcome, stale_token)
                self._scope = None
                if outcome.renewed:
                    stale_token = None
                if scope.cancelled_caught and outcome.failure is None:
                    continue  # closed while idle, or to carry a renewed token; reopened if needed
                failure = outcome.failure or errors.UnavailableError(
                    StatusCode.UNAVAILABLE, "the server ended the Watch stream"
                )
                if _is_permanent(failure):
                    for sub in list(self._subscriptions):
                        sub.fail(failure)
                    break
                if outcome.opened:
                    stale_token = outcome.opened_with
                if isinstance(failure, errors.NoLeaderError):
                    # require_leader: this member lost its leader; watch through another one.
                    await self._caller.channel.rotate()
                failures = 1 if outcome.served else failures + 1
                delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
                await trio.sleep(delay * random.uniform(0.5, 1.0))
        finally:
            self._running = False
            self._scope = None
            self._router = None
            closing = errors.EtcdError("the client is closed; the watch has ended")
            for sub in list(self._subscriptions):
                if sub.active or sub.paused:
                    sub.fail(closing)
            self._wake_progress_waiters()

    async def _serve_one_stream(self, outcome: _StreamOutcome, stale_token: object) -> None:
        """Serve one stream until it breaks, recording why in ``outcome``.

        The reader and the writer record their own failures instead of raising, so that only
        cancellations cross the nursery (no exception group to pick apart)."""
        caller = self._caller
        try:
            if stale_token is not None:
                await caller.renew_token(stale_token)
                outcome.renewed = True
            async with caller.stream(rpcs.WATCH) as stream:
                outcome.opened = True
                outcome.opened_with = caller.token_marker()
                self.streams_opened += 1
                limit = caller.channel.max_receive_message_size
                router: Router[Subscription] = Router(max_fragment_bytes=limit)
                self._router = router
                self._to_cancel.clear()
                self._to_create = {sub: None for sub in self._subscriptions if sub.active}
                self._progress_sent = False
                self._work.set()
                async with trio.open_nursery() as nursery:
                    outcome.nursery = nursery
                    nursery.start_soon(self._write_loop, stream, router, outcome)
                    try:
                        async for response in stream:
                            outcome.served = True
                            self._dispatch(router, response, outcome)
                    except Exception as exc:
                        outcome.fail(exc)
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            outcome.fail(exc)
        finally:
            outcome.nursery = None
            self._router = None
            for sub in self._subscriptions:
                sub.watch_id = None

    async def _write_loop(
        self,
        stream: EtcdStream[rpc_pb2.WatchResponse],
        router: Router[Subscription],
        outcome: _StreamOutcome,
    ) -> None:
        try:
            while True:
                work = self._work
                if self._progress_sent:
                    with trio.move_on_after(PROGRESS_RESEND):
                        await work.wait()
                    if not work.is_set():
                        self._progress_sent = False  # still unanswered: ask again
                else:
                    await work.wait()
                self._work = trio.Event()
                await self._send_pending(stream, router)
        except Exception as exc:
            outcome.fail(exc)

    async def _send_pending(
        self, stream: EtcdStream[rpc_pb2.WatchResponse], router: Router[Subscription]
    ) -> None:
        while self._to_cancel:
            watch_id = self._to_cancel.pop(0)
            cancel = rpc_pb2.WatchCancelRequest(watch_id=watch_id)
            await stream.send_message(rpc_pb2.WatchRequest(cancel_request=cancel))
        while self._to_create:
            subscription = next(iter(self._to_create))
            del self._to_create[subscription]
            if not subscription.active or subscription.watch_id is not None:
                continue
            watch_id = subscription.watch_id = router.attach(subscription)
            start = subscription.cursor.next_revision
            await stream.send_message(subscription.spec.create_request(watch_id, start))
        if self._progress_wanted and not self._progress_sent:
            self._progress_sent = True
            progress = rpc_pb2.WatchProgressRequest()
            await stream.send_message(rpc_pb2.WatchRequest(progress_request=progress))

    def _dispatch(
        self,
        router: Router[Subscription],
        response: rpc_pb2.WatchResponse,
        outcome: _StreamOutcome,
    ) -> None:
        if response.fragment:
            self.fragments_received += 1
        for delivery in router.receive(response):
            subscription = delivery.target
            kind = delivery.kind
            if kind == EVENTS:
                bound = subscription.on_events(delivery.events)
                if bound is not None:
                    self._overflow(subscription, bound)
            elif kind == PROGRESS:
                subscription.on_progress(delivery.revision, resumable=True)
            elif kind == PROGRESS_ALL:
                subscription.on_progress(delivery.revision, resumable=False)
            elif kind == CREATED:
                subscription.watch_id = delivery.watch_id
                subscription.on_created(delivery.revision)
            elif kind == REFUSED:
                self._refused(subscription, delivery, outcome)
            elif kind == CANCELED:
                # etcd keeps a watcher it cancelled (compacted history, for one) on the stream
                # until the client cancels it too, as Go's client does: until then it holds
                # server memory, and etcd >= 3.5.8 answers no progress request on the stream.
                self._to_cancel.append(delivery.watch_id)
                self._work.set()
                subscription.fail(cancel_error(delivery.compact_revision, delivery.cancel_reason))
            elif kind == OVERSIZED:
                self._detach(subscription)
                subscription.fail(_oversized_error(self._caller.channel.max_receive_message_size))
        if response.watch_id == BROADCAST_ID and not (response.created or response.canceled):
            self._progress_wanted = False
            self._progress_sent = False
            self._wake_progress_waiters()

    def _refused(
        self, subscription: Subscription, delivery: Delivery[Subscription], outcome: _StreamOutcome
    ) -> None:
        """A create the server refused: fail the watcher, unless the refusal may come from the
        token the stream was opened with (it may have expired, or the server restarted)."""
        self.creates_refused += 1
        error = cancel_error(delivery.compact_revision, delivery.cancel_reason)
        subscription.watch_id = None
        retry: Optional[Callable[[Subscription, _StreamOutcome], Awaitable[None]]] = None
        if outcome.opened_with is not None and not subscription.access_checked:
            if self._caller.is_stale_token(error):
                retry = self._renew_and_retry
            elif (
                isinstance(error, errors.PermissionDeniedError)
                and delivery.watch_id != BROADCAST_ID
            ):
                # Before 3.4.22 and 3.5.6 etcd answers a create made with an expired token
                # "permission denied" (under the id asked for): find out which one it is.
                retry = self._probe_and_retry
        if retry is None or outcome.nursery is None:
            subscription.fail(error)
            return
        subscription.access_checked = True  # once per creation: no loop of refusals
        outcome.nursery.start_soon(retry, subscription, outcome)

    async def _renew_and_retry(self, subscription: Subscription, outcome: _StreamOutcome) -> None:
        """The server refused the stream's token: renew it and reopen the stream with it."""
        try:
            await self._caller.renew_token(outcome.opened_with)
        except errors.EtcdError as error:
            outcome.fail(error)  # a break like any other (or the end, if no password works)
            return
        self._retry_create(subscription, outcome)

    async def _probe_and_retry(self, subscription: Subscription, outcome: _StreamOutcome) -> None:
        """Read (count only) what a refused watcher watches: ``_unary`` re-authenticates if the
        token expired, and a real lack of permission becomes that watcher's error."""
        spec = subscription.spec
        probe = rpc_pb2.RangeRequest(
            key=spec.key, range_end=spec.range_end, count_only=True, serializable=True
        )
        try:
            await self._caller.unary(rpcs.RANGE, probe)
        except errors.EtcdError as error:
            if _is_permanent(error):
                subscription.fail(error)
            else:
                outcome.fail(error)
            return
        self._retry_create(subscription, outcome)

    def _retry_create(self, subscription: Subscription, outcome: _StreamOutcome) -> None:
        if self._caller.token_marker() is outcome.opened_with:
            self._request_create(subscription)  # the token holds: ask again on this stream
        elif self._scope is not None:
            self._scope.cancel()  # a new stream, with the new token

    def _overflow(self, subscription: Subscription, bound: str) -> None:
        """Stop a watcher whose consumer fell behind: paused to be resumed, or failed."""
        self._detach(subscription)  # before fail(), which forgets the watch id to cancel
        if subscription.limits.on_overflow == "pause":
            subscription.paused = True
            subscription.pauses += 1
        else:
            subscription.fail(subscription.overflow_error(bound))

    def _wake_progress_waiters(self) -> None:
        arrived, self._progress_arrived = self._progress_arrived, trio.Event()
        arrived.set()


def _oversized_error(limit: int) -> errors.RpcError:
    return errors.RpcError(
        StatusCode.RESOURCE_EXHAUSTED,
        f"a watch reply sent in fragments grew larger than max_receive_message_size ({limit} "
        "bytes) before its last fragment; the watch was cancelled",
    )
